package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures an embedded single-node JetStream server.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps the streams; required. Events
	// survive a restart of the process that uses the same directory.
	StoreDir string
	// SyncInterval is how the store reaches the disk. 0 (the default)
	// syncs every write before JetStream acknowledges it, so an event
	// answered ok survives a power loss. A positive value syncs that often
	// instead: faster, but an operating-system crash or power loss can lose
	// up to that much acknowledged data (a process crash alone loses
	// nothing: the writes are in the kernel's cache).
	SyncInterval time.Duration
	// Listen, when set (host:port; port 0 picks one), also serves NATS
	// clients on it, e.g. other jimbus instances joining with --nats-url.
	// Default "": in-process connections only, no socket.
	Listen string
	// ServerName names the server in NATS. Default "jimbus".
	ServerName string
	// MaxStore bounds the disk JetStream may use, in bytes. Default 0: the
	// server's default (most of the free disk).
	MaxStore int64
	// MaxPayload is the largest message the server accepts, in bytes; a
	// larger event is stored as a deadletter event without its body.
	// Default 8 MiB.
	MaxPayload int32
	// Logger receives the server's notices, warnings and errors (debug and
	// trace are dropped). Default nil: the server logs nothing.
	Logger *slog.Logger
}

// DefaultMaxPayload is the default of EmbeddedOptions.MaxPayload.
const DefaultMaxPayload = 8 << 20

// Embedded is a NATS server with JetStream running inside this process. Its
// lifecycle is Start then Stop; Stop is idempotent.
type Embedded struct {
	opts    EmbeddedOptions
	srv     *server.Server
	started atomic.Bool
	stopped atomic.Bool
}

// NewEmbedded validates opts and prepares the server; it starts nothing.
func NewEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("jetstream: the embedded server needs a store directory (--nats-store)")
	}
	if opts.SyncInterval < 0 {
		return nil, fmt.Errorf("jetstream: SyncInterval is %v; want 0 (sync always) or more", opts.SyncInterval)
	}
	if opts.MaxPayload < 0 || opts.MaxStore < 0 {
		return nil, errors.New("jetstream: negative MaxPayload or MaxStore")
	}
	if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("jetstream: cannot create the store directory: %w", err)
	}
	if opts.ServerName == "" {
		opts.ServerName = DefaultName
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	so := &server.Options{
		ServerName:        opts.ServerName,
		JetStream:         true,
		StoreDir:          opts.StoreDir,
		JetStreamMaxStore: opts.MaxStore,
		MaxPayload:        opts.MaxPayload,
		NoSigs:            true,
		NoLog:             opts.Logger == nil,
		DontListen:        opts.Listen == "",
	}
	if opts.SyncInterval == 0 {
		so.SyncAlways = true
	} else {
		so.SyncInterval = opts.SyncInterval
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("jetstream: bad listen address %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("jetstream: bad listen port in %q", opts.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		so.Host, so.Port = host, p
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("jetstream: cannot create the embedded NATS server: %w", err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(serverLogger{opts.Logger}, false, false, false)
	}
	return &Embedded{opts: opts, srv: srv}, nil
}

// Start starts the server and waits until it accepts connections and
// JetStream is ready, at most until ctx ends.
func (e *Embedded) Start(ctx context.Context) error {
	if e.stopped.Load() {
		return errors.New("jetstream: embedded server started after Stop")
	}
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("jetstream: embedded server already started")
	}
	e.srv.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !e.srv.ReadyForConnections(wait) || !e.srv.JetStreamEnabled() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		return fmt.Errorf("jetstream: the embedded NATS server in %s did not become ready in %v", e.opts.StoreDir, wait)
	}
	return nil
}

// Stop shuts the server down (JetStream flushes its store) and waits for
// it. Stop is idempotent; ctx is not used: shutting down is bounded by the
// server itself.
func (e *Embedded) Stop(context.Context) error {
	if !e.stopped.CompareAndSwap(false, true) {
		return nil
	}
	if e.started.Load() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	return nil
}

// ClientURL is the URL other clients join with; "" when the server does not
// listen (EmbeddedOptions.Listen empty) or is not started.
func (e *Embedded) ClientURL() string {
	if e.opts.Listen == "" || !e.started.Load() {
		return ""
	}
	return e.srv.ClientURL()
}

// serverLogger passes the NATS server's log to slog.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) {
	s.l.Info("nats-server: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Warn("nats-server: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error("nats-server: fatal: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error("nats-server: " + fmt.Sprintf(format, v...))
}
func (serverLogger) Debugf(string, ...any) {}
func (serverLogger) Tracef(string, ...any) {}
