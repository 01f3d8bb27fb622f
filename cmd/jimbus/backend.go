package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	"github.com/jimbot/jimbus/jetstream"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// backendFlags holds the `jimbus serve` flags that choose and configure the
// fan-out backend: the in-memory rings (memory, the default) or NATS
// JetStream.
type backendFlags struct {
	kind          string
	natsURL       string
	embedded      bool
	store         string
	listen        string
	stream        string
	replicas      int
	maxAge        time.Duration
	maxBytes      int64
	sync          string
	maxPending    int
	ackTimeout    time.Duration
	ackWait       time.Duration
	maxAckPending int
	inactive      time.Duration
	commands      bool
}

// Values of --backend.
const (
	backendMemory    = "memory"
	backendJetStream = "jetstream"
)

func (f *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kind, "backend", backendMemory,
		"fan-out backend: memory (in-process rings, nothing kept across restarts) or jetstream (NATS JetStream: durable, several instances)")
	fs.StringVar(&f.natsURL, "nats-url", "",
		"with --backend=jetstream: the NATS server or cluster to join, comma-separated URLs (default "+jetstream.DefaultURL+" unless --nats-embedded)")
	fs.BoolVar(&f.embedded, "nats-embedded", false,
		"with --backend=jetstream: run a single-node JetStream server inside jimbus, storing in --nats-store")
	fs.StringVar(&f.store, "nats-store", "", "with --nats-embedded: the directory JetStream stores the events in")
	fs.StringVar(&f.listen, "nats-listen", "",
		"with --nats-embedded: also serve NATS clients (other jimbus instances) on this host:port; empty: in-process only")
	fs.StringVar(&f.stream, "nats-stream", jetstream.DefaultStream, "JetStream stream of the events (subjects jimbus.<topic>)")
	fs.IntVar(&f.replicas, "nats-replicas", 1, "servers that store the stream (1, or 3 or 5 in a cluster)")
	fs.DurationVar(&f.maxAge, "nats-max-age", jetstream.DefaultMaxAge, "drop stored events older than this (0: no age limit)")
	fs.Int64Var(&f.maxBytes, "nats-max-bytes", jetstream.DefaultMaxBytes, "drop the oldest events once the stream is larger, in bytes (0: no size limit)")
	fs.StringVar(&f.sync, "nats-sync", "always",
		"with --nats-embedded: 'always' syncs every write to disk before JetStream acknowledges it (an ok survives power loss); "+
			"a duration (e.g. 2m) syncs that often instead, faster but an OS crash can lose what was acknowledged since")
	fs.IntVar(&f.maxPending, "nats-max-pending", jetstream.DefaultMaxPending,
		"most events published and awaiting JetStream's acknowledgement; beyond it requests get 503")
	fs.DurationVar(&f.ackTimeout, "nats-ack-timeout", jetstream.DefaultAckTimeout,
		"how long a request waits for JetStream to acknowledge its events before it is answered 503")
	fs.DurationVar(&f.ackWait, "nats-ack-wait", jetstream.DefaultAckWait,
		"how long a durable subscriber has to acknowledge an event before it is delivered again")
	fs.IntVar(&f.maxAckPending, "nats-max-ack-pending", jetstream.DefaultMaxAckPending,
		"most events delivered to a durable subscriber and not acknowledged")
	fs.DurationVar(&f.inactive, "nats-consumer-inactive", jetstream.DefaultConsumerInactive,
		"remove a durable subscription (subscriber_id) unused for this long (0: never)")
	fs.BoolVar(&f.commands, "nats-commands", true,
		"with --backend=jetstream: relay gRPC SendCommand through NATS to the command queue of every instance (one game per cluster)")
}

// backend is the fan-out that serve runs: what ingest publishes to, what the
// EventBus service serves subscriber streams from, and its lifecycle.
type backend struct {
	// name is "memory" or "jetstream".
	name string
	// publisher is what ingest.New takes.
	publisher route.Publisher
	// subs is what grpcout.NewServiceWith takes.
	subs grpcout.Subscriptions
	// memory is the in-memory bus (nil with jetstream).
	memory *grpcout.Bus
	// jetstream is the JetStream bus (nil with memory).
	jetstream *jetstream.Bus
	// start starts the backend (the embedded server first); call it before
	// ingest starts.
	start func(context.Context) error
	// stop stops the backend (the embedded server last); call it after
	// ingest stopped.
	stop func(context.Context) error
	// healthy reports whether the backend can take events: nil or why not.
	healthy func() error
	// commands returns the CommandQueue of the EventBus service (SendCommand)
	// given the queue the game of this instance polls: that queue itself
	// with memory, the relay through NATS with jetstream and --nats-commands.
	// Call it before start.
	commands func(local *ingest.Commands) grpcout.CommandQueue
	// typedWanted is the decoder's decode.Options.TypedWanted: whether a
	// subscriber wants the typed view now. nil: always (a durable stream's
	// future readers cannot say).
	typedWanted func() bool
}

// checkCommand refuses a command that the game's queue would refuse, before
// it is relayed.
func checkCommand(cmd *jimbotpb.Command) error {
	_, err := ingest.CommandLine(cmd.GetType(), cmd.GetLine(), cmd.GetPayloadJson())
	return err
}

func localCommands(local *ingest.Commands) grpcout.CommandQueue { return local }

// build creates the backend the flags choose; it starts nothing. mem
// configures the memory backend (the existing ring and subscriber flags);
// with jetstream only its MaxBatchEvents and MaxSubscribers apply.
func (f *backendFlags) build(mem grpcout.Options, reg prometheus.Registerer, logger *slog.Logger) (backend, error) {
	switch strings.ToLower(f.kind) {
	case backendMemory:
		if f.embedded || f.natsURL != "" {
			return backend{}, errors.New("--nats-url and --nats-embedded need --backend=jetstream")
		}
		mem.Registerer, mem.Logger = reg, logger
		bus, err := grpcout.New(mem)
		if err != nil {
			return backend{}, fmt.Errorf("cannot create the fan-out: %w", err)
		}
		return backend{
			name: backendMemory, publisher: bus, subs: bus, memory: bus,
			start: bus.Start, stop: bus.Stop, healthy: func() error { return nil }, commands: localCommands,
			typedWanted: bus.WantsTypedView,
		}, nil
	case backendJetStream:
	default:
		return backend{}, fmt.Errorf("bad --backend %q: want memory or jetstream", f.kind)
	}

	opts := jetstream.Options{
		URL:                 f.natsURL,
		Stream:              f.stream,
		Replicas:            f.replicas,
		MaxAge:              f.maxAge,
		MaxBytes:            f.maxBytes,
		MaxPending:          f.maxPending,
		AckTimeout:          f.ackTimeout,
		AckWait:             f.ackWait,
		MaxAckPending:       f.maxAckPending,
		ConsumerInactive:    f.inactive,
		MaxBatchEvents:      mem.MaxBatchEvents,
		MaxSubscribers:      mem.MaxSubscribers,
		MaxSubscriberLabels: mem.MaxSubscriberLabels,
		NoTypedView:         mem.NoTypedView,
		Registerer:          reg,
		Logger:              logger,
	}
	// On the flags 0 means no limit, as JetStream's own configuration.
	if f.maxAge == 0 {
		opts.MaxAge = -1
	}
	if f.maxBytes == 0 {
		opts.MaxBytes = -1
	}
	if f.inactive == 0 {
		opts.ConsumerInactive = -1
	}
	for name, v := range map[string]time.Duration{"--nats-max-age": f.maxAge, "--nats-ack-timeout": f.ackTimeout,
		"--nats-ack-wait": f.ackWait, "--nats-consumer-inactive": f.inactive} {
		if v < 0 {
			return backend{}, fmt.Errorf("%s must not be negative, got %v", name, v)
		}
	}
	if f.maxBytes < 0 {
		return backend{}, fmt.Errorf("--nats-max-bytes must not be negative, got %d", f.maxBytes)
	}
	syncEvery, err := parseSync(f.sync)
	if err != nil {
		return backend{}, err
	}

	var emb *jetstream.Embedded
	switch {
	case f.embedded && f.natsURL != "":
		return backend{}, errors.New("--nats-embedded and --nats-url exclude each other: run the server inside jimbus, or join one")
	case f.embedded:
		if f.store == "" {
			return backend{}, errors.New("--nats-embedded needs --nats-store DIR: where JetStream keeps the events")
		}
		if f.replicas > 1 {
			return backend{}, fmt.Errorf("--nats-replicas=%d needs a cluster: the embedded server is a single node", f.replicas)
		}
		emb, err = jetstream.NewEmbedded(jetstream.EmbeddedOptions{
			StoreDir:     f.store,
			SyncInterval: syncEvery,
			Listen:       f.listen,
			Logger:       logger.With("component", "nats-server"),
		})
		if err != nil {
			return backend{}, err
		}
		opts.Embedded = emb
	default:
		if f.store != "" || f.listen != "" {
			return backend{}, errors.New("--nats-store and --nats-listen need --nats-embedded")
		}
		if syncEvery != 0 {
			logger.Warn("--nats-sync applies to --nats-embedded only: a NATS server's own sync_interval decides when a joined cluster syncs")
		}
	}
	bus, err := jetstream.New(opts)
	if err != nil {
		return backend{}, fmt.Errorf("cannot create the JetStream fan-out: %w", err)
	}
	b := backend{name: backendJetStream, publisher: bus, subs: bus, jetstream: bus, healthy: bus.Healthy,
		commands: localCommands}
	if f.commands {
		b.commands = func(local *ingest.Commands) grpcout.CommandQueue {
			bus.RelayCommands(local, checkCommand)
			return bus
		}
	}
	b.start = func(ctx context.Context) error {
		if emb != nil {
			if err := emb.Start(ctx); err != nil {
				return err
			}
		}
		if err := bus.Start(ctx); err != nil {
			if emb != nil {
				_ = emb.Stop(ctx)
			}
			return err
		}
		return nil
	}
	b.stop = func(ctx context.Context) error {
		err := bus.Stop(ctx)
		if emb != nil {
			err = errors.Join(err, emb.Stop(ctx))
		}
		return err
	}
	return b, nil
}

// parseSync parses --nats-sync: "always" is 0 (sync every write), else a
// positive duration.
func parseSync(s string) (time.Duration, error) {
	if strings.EqualFold(s, "always") {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad --nats-sync %q: want always or a positive duration such as 2m", s)
	}
	return d, nil
}

// watchHealth sets the grpc.health.v1 status of services ("" is the
// server's) from healthy every interval, logging each change, until the
// returned stop function is called; stop waits for it.
func watchHealth(hs *health.Server, healthy func() error, every time.Duration, logger *slog.Logger, services ...string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var last error
		for {
			err := healthy()
			switch {
			case err != nil && (last == nil || err.Error() != last.Error()):
				logger.Warn("backend unhealthy", "err", err)
			case err == nil && last != nil:
				logger.Info("backend healthy again")
			}
			last = err
			st := healthpb.HealthCheckResponse_SERVING
			if err != nil {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
			for _, s := range services {
				hs.SetServingStatus(s, st)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
