package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jimbot/jimbus/bench/fastsonic"
	"github.com/jimbot/jimbus/bench/nethttpbus"
	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	jimbotpb "github.com/jimbot/jimbus/proto"
)

// Server is one server under test, listening on 127.0.0.1 ports chosen by
// the kernel.
type Server struct {
	// Name is the server's name in benchmark names: jimbus, fastsonic,
	// discard or nethttp.
	Name string
	// HTTPAddr is the HTTP listener's address (host:port).
	HTTPAddr string
	// GRPCAddr is the gRPC listener's address (EventBus); empty for a server
	// without subscribers.
	GRPCAddr string
	// Subscribe runs a Subscribe call in process, without the network: the
	// EventBus service's own handler, with st as the stream. Nil for a
	// server without subscribers.
	Subscribe func(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch]) error
	// View is the payload view the benchmarks' subscribers ask for.
	View jimbotpb.PayloadView

	stop func(ctx context.Context) error
}

// Stop stops the server, draining what it accepted to the connected
// subscribers, and waits for its goroutines, or until ctx is done.
func (s *Server) Stop(ctx context.Context) error { return s.stop(ctx) }

// JimBusOptions configures StartJimBus. The zero value is the defaults of
// `jimbus serve`.
type JimBusOptions struct {
	Ingest ingest.Options
	Fanout grpcout.Options
}

// discardLogger drops every record: the benchmarks measure the event path.
var discardLogger = slog.New(slog.DiscardHandler)

// listenLoopback listens on a free port of 127.0.0.1.
func listenLoopback() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}

// StartJimBus wires and starts JimBus as cmd/jimbus does (newServer, start):
// the fan-out, the HTTP ingest publishing to it, and a gRPC server with the
// EventBus service and health; the coordinator is left out. Metrics go to a
// registry of their own, as in the binary, so that their cost is measured.
func StartJimBus(opts JimBusOptions) (*Server, error) {
	reg := prometheus.NewRegistry()
	fo := opts.Fanout
	fo.NoTypedView = opts.Ingest.DecodeOptions.NoTypedView
	if fo.Registerer == nil {
		fo.Registerer = reg
	}
	if fo.Logger == nil {
		fo.Logger = discardLogger
	}
	bus, err := grpcout.New(fo)
	if err != nil {
		return nil, fmt.Errorf("cannot create the fan-out: %w", err)
	}
	ino := opts.Ingest
	if ino.DecodeOptions.TypedWanted == nil {
		// As cmd/jimbus: typed views only while a subscriber wants them.
		ino.DecodeOptions.TypedWanted = bus.WantsTypedView
	}
	if ino.Registerer == nil {
		ino.Registerer, ino.Gatherer = reg, reg
	}
	if ino.Logger == nil {
		ino.Logger = discardLogger
	}
	if ino.Version == "" {
		ino.Version = "bench"
	}
	ing, err := ingest.New(ino, bus)
	if err != nil {
		return nil, fmt.Errorf("cannot create the HTTP ingest: %w", err)
	}
	gs := grpc.NewServer(grpcout.ServerOption())
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	svc := grpcout.NewService(bus, ing, ing.Commands())
	svc.Register(gs)

	httpLn, err := listenLoopback()
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP: %w", err)
	}
	grpcLn, err := listenLoopback()
	if err != nil {
		httpLn.Close()
		return nil, fmt.Errorf("cannot listen for gRPC: %w", err)
	}
	ctx := context.Background()
	if err := bus.Start(ctx); err != nil {
		httpLn.Close()
		grpcLn.Close()
		return nil, fmt.Errorf("cannot start the fan-out: %w", err)
	}
	if err := ing.Start(ctx, httpLn); err != nil {
		httpLn.Close()
		grpcLn.Close()
		_ = bus.Stop(ctx)
		return nil, fmt.Errorf("cannot start the HTTP ingest: %w", err)
	}
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- gs.Serve(grpcLn) }()
	hs.SetServingStatus("jimbot.EventBus", healthpb.HealthCheckResponse_SERVING)

	return &Server{
		Name:      "jimbus",
		HTTPAddr:  httpLn.Addr().String(),
		GRPCAddr:  grpcLn.Addr().String(),
		Subscribe: svc.Subscribe,
		// The order of cmd/jimbus's shutdown: ingest, fan-out, gRPC.
		stop: func(ctx context.Context) error {
			hs.Shutdown()
			var errs []error
			if err := ing.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("ingest: %w", err))
			}
			if err := bus.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("fan-out: %w", err))
			}
			errs = append(errs, stopGRPC(ctx, gs, grpcDone))
			return errors.Join(errs...)
		},
	}, nil
}

// stopGRPC stops gs gracefully, or at once when ctx is done first.
func stopGRPC(ctx context.Context, gs *grpc.Server, served <-chan error) error {
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	var err error
	select {
	case <-stopped:
	case <-ctx.Done():
		gs.Stop()
		<-stopped
		err = fmt.Errorf("gRPC: graceful stop: %w", ctx.Err())
	}
	if serr := <-served; serr != nil && !errors.Is(serr, grpc.ErrServerStopped) {
		err = errors.Join(err, fmt.Errorf("gRPC: %w", serr))
	}
	return err
}

// StartFastSonic starts the bare fasthttp + sonic decode-and-discard
// baseline (package fastsonic), or with discard the read-and-discard HTTP
// ceiling.
func StartFastSonic(discard bool) (*Server, error) {
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	s := fastsonic.New(fastsonic.Options{Discard: discard})
	if err := s.Start(ln); err != nil {
		ln.Close()
		return nil, err
	}
	name := "fastsonic"
	if discard {
		name = "discard"
	}
	return &Server{Name: name, HTTPAddr: ln.Addr().String(), stop: s.Stop}, nil
}

// StartNetHTTPBus starts the net/http + encoding/json bus (package
// nethttpbus) with its gRPC server.
func StartNetHTTPBus() (*Server, error) {
	httpLn, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	grpcLn, err := listenLoopback()
	if err != nil {
		httpLn.Close()
		return nil, err
	}
	bus := nethttpbus.New(nethttpbus.Options{})
	gs := grpc.NewServer()
	bus.Register(gs)
	if err := bus.Start(httpLn); err != nil {
		httpLn.Close()
		grpcLn.Close()
		return nil, err
	}
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- gs.Serve(grpcLn) }()
	return &Server{
		Name:      "nethttp",
		HTTPAddr:  httpLn.Addr().String(),
		GRPCAddr:  grpcLn.Addr().String(),
		Subscribe: bus.Subscribe,
		stop: func(ctx context.Context) error {
			err := bus.Stop(ctx)
			return errors.Join(err, stopGRPC(ctx, gs, grpcDone))
		},
	}, nil
}

// StopTimeout bounds the Stop of a benchmark's servers.
const StopTimeout = 10 * time.Second
