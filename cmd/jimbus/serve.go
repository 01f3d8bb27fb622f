package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/jimbot/jimbus/coord"
	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	"github.com/jimbot/jimbus/ingest/decode"
)

// config is everything `jimbus serve` reads from flags and environment.
type config struct {
	httpAddr, grpcAddr string
	logFormat          string
	logLevel           string
	shutdownTimeout    time.Duration
	debugAddr          string

	maxBody       int
	publishWait   time.Duration
	maxQueued     int64
	dedupWindow   time.Duration
	dedupMax      int
	commandQueue  int
	maxEvents     int
	typedView     bool
	ringShards    int
	ringSize      int
	queueSize     int
	maxBatch      int
	slowPolicy    string
	slowBlockWait time.Duration
	maxSubs       int

	limits  limitFlags
	sec     securityFlags
	coord   coordFlags
	capture captureFlags
	backend backendFlags
}

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address (BalatroMCP posts to localhost:8080)")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address (EventBus, ResourceCoordinator, health, reflection)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "longest graceful shutdown on SIGTERM/SIGINT")
	fs.IntVar(&c.maxBody, "max-body", 10<<20, "largest request body in bytes; larger is answered 413")
	fs.DurationVar(&c.publishWait, "publish-wait", 250*time.Millisecond, "how long a request waits for room in a full pipeline before 503")
	fs.Int64Var(&c.maxQueued, "max-queued-bytes", ingest.DefaultMaxQueuedBytes, "most memory (bytes, estimated) held by accepted requests that subscribers have not received yet; "+
		"beyond it requests wait --publish-wait, then get 503 with Retry-After; -1: no bound")
	fs.DurationVar(&c.dedupWindow, "dedup-window", 10*time.Minute, "how long a (source, event_id, timestamp) is remembered to drop resends")
	fs.IntVar(&c.dedupMax, "dedup-max", 1<<20, "most event ids remembered for deduplication")
	fs.IntVar(&c.commandQueue, "command-queue", 1024, "most commands waiting for the game's poll")
	fs.IntVar(&c.maxEvents, "max-batch", 10000, "most events in one batch request")
	fs.BoolVar(&c.typedView, "typed-view", true, "build each known payload's typed oneof view for the subscribers that want it (SubscribeRequest.payload_view TYPED or UNSPECIFIED; "+
		"payload_json is always sent, and while no subscriber wants the view it is not built); false: never, and TYPED subscriptions are refused")
	fs.IntVar(&c.ringShards, "ring-shards", 0, "number of ring shards (0: 2 x GOMAXPROCS)")
	fs.IntVar(&c.ringSize, "ring-size", 4096, "batches each ring shard holds")
	fs.IntVar(&c.queueSize, "subscriber-queue", 1024, "batches queued per subscriber")
	fs.IntVar(&c.maxBatch, "send-batch", 256, "most events in one gRPC message to a subscriber")
	fs.StringVar(&c.slowPolicy, "slow-subscriber", "block", "when a subscriber's queue is full: block, drop-oldest or disconnect")
	fs.DurationVar(&c.slowBlockWait, "slow-block-timeout", 2*time.Second, "with --slow-subscriber=block, how long to wait before disconnecting it")
	fs.IntVar(&c.maxSubs, "max-subscribers", 1024, "most concurrent subscribers")
	c.limits.register(fs)
	c.sec.register(fs)
	c.coord.register(fs)
	c.capture.register(fs)
	c.backend.register(fs)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q: want text or json", format)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jimbus serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.register(fs)
	fs.Usage = usageWithEnv(fs, "Usage: jimbus [serve] [flags]\n\nRuns the event bus and the resource coordinator.\n\nFlags:\n")
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "jimbus:", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jimbus: unexpected arguments %q\n", fs.Args())
		return 2
	}
	logger, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "jimbus:", err)
		return 2
	}
	s, err := newServer(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := s.start(ctx); err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	<-ctx.Done()
	logger.Info("shutting down", "timeout", cfg.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := s.shutdown(sctx); err != nil {
		logger.Error("unclean shutdown", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// server is the wired service: coordinator, fan-out, ingest, gRPC.
type server struct {
	cfg    config
	logger *slog.Logger
	reg    *prometheus.Registry

	sec        *security
	coord      *coord.Server // nil with --coord=false
	backend    backend
	bus        *grpcout.Bus // the memory backend's bus; nil with --backend=jetstream
	stopHealth func()
	ingest     *ingest.Server
	grpc       *grpc.Server
	health     *health.Server

	capture *capturer    // nil without --capture
	debug   *debugServer // nil without --debug-addr

	httpLn, grpcLn net.Listener
	grpcDone       chan error
}

func newServer(cfg config, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, logger: logger, reg: prometheus.NewRegistry(), grpcDone: make(chan error, 1)}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := cfg.validateLimits(); err != nil {
		return nil, err
	}
	var err error
	if s.sec, err = cfg.sec.load(logger); err != nil {
		return nil, err
	}

	if cfg.coord.enabled() {
		opts, err := cfg.coord.options(logger.With("component", "coord"), s.reg)
		if err != nil {
			return nil, err
		}
		if s.coord, err = coord.New(opts); err != nil {
			return nil, fmt.Errorf("cannot create the coordinator: %w", err)
		}
	}

	policy, err := grpcout.ParsePolicy(cfg.slowPolicy)
	if err != nil {
		return nil, err
	}
	s.backend, err = cfg.backend.build(grpcout.Options{
		Shards:         cfg.ringShards,
		RingSize:       cfg.ringSize,
		QueueSize:      cfg.queueSize,
		MaxBatchEvents: cfg.maxBatch,
		SlowPolicy:     policy,
		BlockTimeout:   cfg.slowBlockWait,
		MaxSubscribers: cfg.maxSubs,
		NoTypedView:    !cfg.typedView,
	}, s.reg, logger.With("component", "fanout"))
	if err != nil {
		return nil, fmt.Errorf("cannot create the fan-out: %w", err)
	}
	s.bus = s.backend.memory

	if s.capture, err = cfg.capture.open(); err != nil {
		return nil, err
	}
	iopts := ingest.Options{
		MaxBody:          cfg.maxBody,
		PublishWait:      cfg.publishWait,
		MaxQueuedBytes:   cfg.maxQueued,
		DedupWindow:      cfg.dedupWindow,
		DedupMaxEntries:  cfg.dedupMax,
		CommandQueueSize: cfg.commandQueue,
		Version:          version,
		Registerer:       s.reg,
		Gatherer:         s.reg,
		Logger:           logger.With("component", "ingest"),
		DecodeOptions:    decode.Options{MaxEvents: cfg.maxEvents, NoTypedView: !cfg.typedView, TypedWanted: s.backend.typedWanted, MaxDepth: cfg.limits.maxDepth, MaxStringLen: cfg.limits.maxString},
		AuthSecret:       string(s.sec.secret),
	}
	if s.capture != nil {
		iopts.Capture = s.capture
	}
	iopts.Health = s.backend.healthy
	s.ingest, err = ingest.New(iopts, s.backend.publisher)
	if err != nil {
		return nil, fmt.Errorf("cannot create the HTTP ingest: %w", err)
	}

	gopts, err := grpcServerOptions(s.sec, s.reg)
	if err != nil {
		return nil, err
	}
	s.grpc = grpc.NewServer(gopts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	// Commands from gRPC and from POST /api/v1/commands take the same way:
	// straight into the queue the game polls, or (jetstream) through the
	// cluster into every instance's queue.
	cmds := s.backend.commands(s.ingest.Commands())
	if cmds != grpcout.CommandQueue(s.ingest.Commands()) {
		s.ingest.RelayCommands(cmds)
	}
	grpcout.NewServiceWith(s.backend.subs, s.ingest, cmds).
		LimitPatterns(cfg.limits.maxPatterns).Register(s.grpc)
	if s.coord != nil {
		s.coord.Register(s.grpc)
	}
	return s, nil
}

// start listens and serves; it starts coordinator -> fan-out -> ingest.
func (s *server) start(ctx context.Context) error {
	var err error
	if s.grpcLn, err = net.Listen("tcp", s.cfg.grpcAddr); err != nil {
		return fmt.Errorf("cannot listen for gRPC: %w", err)
	}
	if s.httpLn, err = net.Listen("tcp", s.cfg.httpAddr); err != nil {
		s.grpcLn.Close()
		return fmt.Errorf("cannot listen for HTTP: %w", err)
	}
	if c := httpTLS(s.sec); c != nil {
		s.httpLn = tls.NewListener(s.httpLn, c)
	}
	warnIfExposed(s.logger, s.sec, s.httpLn.Addr().String(), s.grpcLn.Addr().String())
	if s.debug, err = startDebug(s.cfg.debugAddr, s.logger); err != nil {
		s.httpLn.Close()
		s.grpcLn.Close()
		return err
	}
	if s.coord != nil {
		if err := s.coord.Start(ctx); err != nil {
			return fmt.Errorf("cannot start the coordinator: %w", err)
		}
	}
	if err := s.backend.start(ctx); err != nil {
		return fmt.Errorf("cannot start the fan-out (%s): %w", s.backend.name, err)
	}
	if err := s.ingest.Start(ctx, s.httpLn); err != nil {
		return fmt.Errorf("cannot start the HTTP ingest: %w", err)
	}
	go func() { s.grpcDone <- s.grpc.Serve(s.grpcLn) }()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.stopHealth = watchHealth(s.health, s.backend.healthy, time.Second, s.logger.With("component", "fanout"), "jimbot.EventBus")
	s.logger.Info("jimbus serving", "version", version, "http", s.httpLn.Addr().String(),
		"grpc", s.grpcLn.Addr().String(), "backend", s.backend.name, "coordinator", s.coord != nil,
		"auth", s.sec.secret != nil, "tls", s.sec.tls != nil)
	return nil
}

// shutdown stops in reverse order: ingest first (new requests get 503,
// in-flight ones finish), then the fan-out drains every ring to the
// connected subscribers and ends their streams, then gRPC stops, then the
// coordinator.
func (s *server) shutdown(ctx context.Context) error {
	if s.stopHealth != nil {
		s.stopHealth()
	}
	s.health.Shutdown()
	var errs []error
	if err := s.ingest.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if err := s.backend.stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("fan-out: %w", err))
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		<-stopped
		errs = append(errs, fmt.Errorf("gRPC: graceful stop: %w", ctx.Err()))
	}
	if err := <-s.grpcDone; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		errs = append(errs, fmt.Errorf("gRPC: %w", err))
	}
	if s.coord != nil {
		if err := s.coord.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("coordinator: %w", err))
		}
	}
	if err := s.debug.stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("debug listener: %w", err))
	}
	if s.capture != nil {
		if err := s.capture.Close(); err != nil {
			errs = append(errs, fmt.Errorf("capture: %w", err))
		}
	}
	return errors.Join(errs...)
}

// warnIfExposed logs when a listener is reachable beyond this machine while
// no authentication is configured (and, with authentication, when the
// secret would cross the network in clear text).
func warnIfExposed(logger *slog.Logger, sec *security, addrs ...string) {
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		if host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		switch {
		case sec.secret == nil:
			logger.Warn("listening beyond loopback without authentication: anyone who can reach this address can publish and subscribe",
				"addr", a, "hint", "bind 127.0.0.1, set --auth-token-file, or put the bus behind a trusted network")
		case sec.tls == nil:
			logger.Warn("listening beyond loopback with authentication but without TLS: the shared secret crosses the network in clear text",
				"addr", a, "hint", "set --tls-cert and --tls-key")
		}
	}
}
