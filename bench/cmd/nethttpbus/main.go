// Command nethttpbus runs the net/http + encoding/json bus (package
// bench/nethttpbus) for load tests: POST /api/v1/events/batch and POST
// /api/v1/events over net/http, and jimbot.EventBus/Subscribe over gRPC. It
// listens on loopback only and stops by itself after -duration, or on
// SIGINT/SIGTERM (draining what it accepted to the subscribers).
//
//	go run ./bench/cmd/nethttpbus -http-addr 127.0.0.1:8082 -grpc-addr 127.0.0.1:50052
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/jimbot/jimbus/bench/nethttpbus"
)

func main() {
	httpAddr := flag.String("http-addr", "127.0.0.1:8082", "HTTP listen address (loopback only)")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:50052", "gRPC listen address (loopback only)")
	duration := flag.Duration("duration", 10*time.Minute, "stop after this long (0: only on SIGINT/SIGTERM)")
	flag.Parse()
	if err := run(*httpAddr, *grpcAddr, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "nethttpbus:", err)
		os.Exit(1)
	}
}

func run(httpAddr, grpcAddr string, duration time.Duration) error {
	for _, a := range []string{httpAddr, grpcAddr} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	httpLn, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	grpcLn, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		httpLn.Close()
		return err
	}
	bus := nethttpbus.New(nethttpbus.Options{})
	gs := grpc.NewServer()
	bus.Register(gs)
	if err := bus.Start(httpLn); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(grpcLn) }()
	fmt.Fprintf(os.Stderr, "nethttpbus: serving http://%s and gRPC %s for %v\n", httpLn.Addr(), grpcLn.Addr(), duration)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("gRPC: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = bus.Stop(sctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
		<-stopped
	}
	if serr := <-served; serr != nil && !errors.Is(serr, grpc.ErrServerStopped) {
		err = errors.Join(err, serr)
	}
	return err
}

// checkLoopback refuses an address beyond this machine: a benchmark server
// has no authentication and no business on a network.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("address %q is not loopback: benchmark servers listen on 127.0.0.1 only", addr)
	}
	return nil
}
