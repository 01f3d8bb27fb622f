package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/jimbot/jimbus/ingest/decode"
	"github.com/jimbot/jimbus/route"
)

const (
	defaultMaxBody     = 10 << 20
	defaultPublishWait = 250 * time.Millisecond
	// DefaultMaxQueuedBytes is Options.MaxQueuedBytes's default.
	DefaultMaxQueuedBytes   = 128 << 20
	defaultRetryAfter       = 1
	defaultDedupWindow      = 10 * time.Minute
	defaultDedupMaxEntries  = 1 << 20
	defaultCommandQueueSize = 1024
	defaultReadTimeout      = 30 * time.Second
	defaultIdleTimeout      = 2 * time.Minute
	defaultVersion          = "dev"

	// workerIdle is fasthttp's MaxIdleWorkerDuration: idle worker
	// goroutines end after it, and its pool's cleaner goroutine notices a
	// stop only after sleeping it, so Stop waits that long too.
	workerIdle = 100 * time.Millisecond
)

// Options configures a Server. The zero value works; every field documents
// its default.
type Options struct {
	// MaxBody refuses request bodies of MaxBody bytes or more (also after
	// Content-Encoding is undone) with 413, from the Content-Length before
	// the body is read. Default 10 MiB: CONTRACT section 1 says a body of
	// 10 MiB or more is never answered ok.
	MaxBody int
	// ReadTimeout bounds reading one request (headers and body). Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Default 2m.
	IdleTimeout time.Duration
	// PublishWait is how long a request waits, retrying with short sleeps,
	// while the fan-out answers route.ErrFull, before it answers 503.
	// Default 250ms; negative: no wait.
	PublishWait time.Duration
	// MaxQueuedBytes bounds the memory held by the requests accepted and
	// not yet sent to every subscriber (route.Budget, charged with each
	// batch's route.Batch.Bytes): beyond it the fan-out counts as full, so
	// requests wait PublishWait and then answer 503 with Retry-After, and a
	// subscriber that falls behind cannot make the process grow without
	// bound. Default 128 MiB; negative: no limit.
	MaxQueuedBytes int64
	// RetryAfter is the Retry-After of a 503, in seconds. Default 1.
	RetryAfter int
	// DedupWindow is how long a delivered event's (source, event_id, client
	// timestamp) is remembered to drop resends. Default 10m; negative turns
	// deduplication off.
	DedupWindow time.Duration
	// DedupMaxEntries bounds the events remembered (16 bytes each, rounded
	// down to a power of two, at least 256); once full, a new event takes the
	// place of the oldest of its bucket of 4, shortening the window for it
	// (counted in jimbus_ingest_dedup_evicted_total). Default 1<<20 (16 MiB).
	DedupMaxEntries int
	// CommandQueueSize is the most command lines waiting for a poll.
	// Default 1024.
	CommandQueueSize int
	// Version is reported by GET /health. Default "dev".
	Version string
	// Registerer receives the metrics; nil: they are kept but not
	// registered.
	Registerer prometheus.Registerer
	// Gatherer is served by GET /metrics; nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Logger receives the few log lines (start, stop, handler panics, and
	// fasthttp's own at debug level). Default slog.Default().
	Logger *slog.Logger
	// DecodeOptions configures the decoder (limits, typed view). Its
	// KeyHint is the server's own: what is set here is not used.
	DecodeOptions decode.Options
	// AuthSecret, when not empty, is required on every request except GET
	// /health, as "Authorization: Bearer <secret>" or "X-API-Key: <secret>"
	// (compared in constant time); without it the answer is 401. BalatroMCP
	// cannot send it: use it only where no unmodified game posts. Default:
	// no authentication.
	AuthSecret string
	// Capture, when set, is given every request to the event endpoints and
	// the command poll (after authentication, before decoding), for
	// `jimbus --capture`. Default: none.
	Capture Capturer
	// Health, when set, is asked by GET /health: an error answers 503
	// {"status":"unhealthy","error":...} (the fan-out backend cannot take
	// events). Default: always healthy while serving.
	Health func() error
}

// Capturer records requests byte-exact (jimbus --capture writes them in
// the load tester's capture format). Capture runs on the request path: it
// must copy what it keeps and must not block for long.
type Capturer interface {
	Capture(ctx *fasthttp.RequestCtx, receivedAt time.Time)
}

// ErrStopped is returned by Start and Serve once Stop was called.
var ErrStopped = errors.New("ingest: server stopped")

// processStart is when the process initialised this package; /health counts
// uptime from it.
var processStart = time.Now()

// Server is the HTTP ingress. See the package doc.
type Server struct {
	opts Options
	pub  route.Publisher
	dec  *decode.Decoder
	dd   *dedup // nil when deduplication is off
	// budget bounds the bytes of the batches in flight (MaxQueuedBytes).
	budget *route.Budget
	cmds   *Commands
	relay  CommandQueue // nil: POST /api/v1/commands fills cmds directly
	m      *metrics
	log    *slog.Logger
	hs     *fasthttp.Server

	metricsHandler fasthttp.RequestHandler // nil without a Gatherer
	handler        fasthttp.RequestHandler

	// Precomputed answers.
	healthPrefix []byte
	retryAfter   []byte
	bodyFull     []byte
	bodyTooLarge []byte
	fullMessage  string
	secretSum    [sha256.Size]byte // SHA-256 of Options.AuthSecret
	bodyLimit    int               // the largest body accepted: MaxBody-1

	now      func() time.Time // the clock; tests replace it
	epoch    time.Time        // monotonic origin of the dedup clock
	grpcHint atomic.Uint32

	stopping atomic.Bool  // new requests answer 503
	inflight atomic.Int64 // handlers and gRPC publishes running

	mu        sync.Mutex
	stopped   bool
	shutdown  bool
	listeners []net.Listener
	wg        sync.WaitGroup // Serve calls
}

// New returns a server that publishes to pub. It validates opts and starts
// nothing.
func New(opts Options, pub route.Publisher) (*Server, error) {
	if pub == nil {
		return nil, errors.New("ingest: nil publisher")
	}
	switch {
	case opts.MaxBody < 0:
		return nil, fmt.Errorf("ingest: MaxBody %d is negative", opts.MaxBody)
	case opts.RetryAfter < 0:
		return nil, fmt.Errorf("ingest: RetryAfter %d is negative", opts.RetryAfter)
	case opts.DedupMaxEntries < 0:
		return nil, fmt.Errorf("ingest: DedupMaxEntries %d is negative", opts.DedupMaxEntries)
	case opts.CommandQueueSize < 0:
		return nil, fmt.Errorf("ingest: CommandQueueSize %d is negative", opts.CommandQueueSize)
	case opts.ReadTimeout < 0 || opts.IdleTimeout < 0:
		return nil, errors.New("ingest: negative timeout")
	}
	if opts.MaxBody == 0 {
		opts.MaxBody = defaultMaxBody
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = defaultReadTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	if opts.PublishWait == 0 {
		opts.PublishWait = defaultPublishWait
	}
	if opts.MaxQueuedBytes == 0 {
		opts.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = defaultRetryAfter
	}
	if opts.DedupWindow == 0 {
		opts.DedupWindow = defaultDedupWindow
	}
	if opts.DedupMaxEntries == 0 {
		opts.DedupMaxEntries = defaultDedupMaxEntries
	}
	if opts.CommandQueueSize == 0 {
		opts.CommandQueueSize = defaultCommandQueueSize
	}
	if opts.Version == "" {
		opts.Version = defaultVersion
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}

	s := &Server{
		opts:   opts,
		pub:    pub,
		budget: route.NewBudget(opts.MaxQueuedBytes),
		cmds:   NewCommands(opts.CommandQueueSize),
		log:    opts.Logger,
		now:    time.Now,
		epoch:  time.Now(),
	}
	dopts := opts.DecodeOptions
	dopts.KeyHint = nil
	if opts.DedupWindow > 0 {
		s.dd = newDedup(int64(opts.DedupWindow), opts.DedupMaxEntries)
		dopts.KeyHint = s.dd.prefetchKey
	}
	s.dec = decode.New(dopts)
	m, err := newMetrics(opts.Registerer, s.dd, s.cmds, s.budget)
	if err != nil {
		return nil, fmt.Errorf("ingest: cannot register metrics: %w", err)
	}
	s.m = m
	s.cmds.queued, s.cmds.served, s.cmds.refused = m.commandsQueued, m.commandsServed, m.commandsRefused
	if opts.Gatherer != nil {
		s.metricsHandler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorHandling:      promhttp.ContinueOnError,
			DisableCompression: true, // small, and always with Content-Length
		}))
	}

	s.healthPrefix = append([]byte(`{"status":"healthy","version":"`), appendJSONString(nil, []byte(opts.Version))...)
	s.healthPrefix = append(s.healthPrefix, `","uptime_seconds":`...)
	s.retryAfter = strconv.AppendInt(nil, int64(opts.RetryAfter), 10)
	wait := max(opts.PublishWait, 0)
	s.fullMessage = fmt.Sprintf("event pipeline full for %v; retry later (subscribers are behind: raise --max-queued-bytes or --ring-size, or add subscribers)", wait)
	s.bodyFull = errorBody(s.fullMessage)
	s.bodyLimit = opts.MaxBody - 1
	s.bodyTooLarge = errorBody(fmt.Sprintf("request body of %d bytes or more (--max-body)", opts.MaxBody))
	s.secretSum = sha256.Sum256([]byte(opts.AuthSecret))
	s.handler = s.handle

	s.hs = &fasthttp.Server{
		Handler:                      s.handler,
		ErrorHandler:                 s.onReadError,
		ExpectHandler:                s.onExpect,
		Name:                         "jimbus",
		MaxRequestBodySize:           max(s.bodyLimit, 1),
		ReadTimeout:                  opts.ReadTimeout,
		IdleTimeout:                  opts.IdleTimeout,
		ReadBufferSize:               8 << 10,
		MaxIdleWorkerDuration:        workerIdle,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{opts.Logger},
	}
	return s, nil
}

// Handler returns the request handler, for tests and benchmarks that drive
// it without a listener.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handler }

// Commands returns the queue of command lines served to the game's poll.
func (s *Server) Commands() *Commands { return s.cmds }

// Start serves ln in a new goroutine and returns; Stop ends it. ctx is only
// checked here, not kept.
func (s *Server) Start(ctx context.Context, ln net.Listener) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(ln); err != nil {
		return err
	}
	s.log.Info("ingest: serving HTTP", "addr", ln.Addr().String())
	go func() {
		defer s.wg.Done()
		if err := s.hs.Serve(ln); err != nil {
			s.log.Error("ingest: HTTP server failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Serve serves ln until Stop; it returns nil after Stop and the listener's
// error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.begin(ln); err != nil {
		return err
	}
	defer s.wg.Done()
	return s.hs.Serve(ln)
}

func (s *Server) begin(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	return nil
}

// Stop shuts the server down: new requests answer 503 with Retry-After and
// Connection: close, in-flight ones finish, then the listeners close. It
// waits for the serving goroutines or until ctx is done. It may be called
// more than once, and concurrently.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		s.stopping.Store(true)
		s.log.Info("ingest: stopping")
	}
	s.mu.Unlock()

	// A request increments inflight before it checks stopping (and a
	// refused one decrements it at once), so once inflight is 0 here every
	// later request answers 503.
	for s.inflight.Load() > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ingest: requests still in flight: %w", err)
		}
		time.Sleep(time.Millisecond)
	}

	s.mu.Lock()
	var err error
	served := len(s.listeners) > 0
	if !s.shutdown {
		err = s.hs.ShutdownWithContext(ctx)
		// Serve may not have registered its listener with fasthttp yet.
		for _, ln := range s.listeners {
			_ = ln.Close()
		}
		s.shutdown = err == nil
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("ingest: server goroutines still running: %w", ctx.Err())
	}
	if served {
		// fasthttp's worker-pool cleaner cannot be joined; it exits within
		// workerIdle of the pool's stop.
		t := time.NewTimer(workerIdle + 20*time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ingest: shutdown: %w", err)
	}
	return nil
}

// fasthttpLogger sends fasthttp's log lines to slog at debug level: they
// are about single broken connections.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
	}
}
