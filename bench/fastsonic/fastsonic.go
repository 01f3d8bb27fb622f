// Package fastsonic provides the "bare fasthttp + sonic" baseline of the
// JimBus benchmarks: a fasthttp server that decodes BalatroMCP event posts
// with sonic into a plain Go struct and throws the result away, answering
// {"status":"ok"}. It is the least an HTTP ingest of these bodies can cost on
// a given machine, so JimBus's ingest is measured as a fraction of it. With
// Options.Discard it does not even decode: the body is read and dropped,
// which gives the HTTP ceiling.
//
// What it does not do, and JimBus does: validate every event, keep unknown
// keys and the payload byte-exact, repair the mod's invalid tokens, build
// protobuf events with a typed view, drop resends, route, and hand the events
// to subscribers.
//
// # Concurrency
//
// A Server is safe for concurrent use by fasthttp's workers; the decoded
// struct aliases the request body and never outlives the handler.
package fastsonic

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/bytedance/sonic"
	"github.com/valyala/fasthttp"
)

// Event is one decoded event: the fields a consumer needs, payload raw.
type Event struct {
	Type      string                 `json:"type"`
	Source    string                 `json:"source"`
	EventID   string                 `json:"event_id"`
	Timestamp float64                `json:"timestamp"`
	Payload   sonic.NoCopyRawMessage `json:"payload"`
}

// Batch is the body of POST /api/v1/events/batch.
type Batch struct {
	Events []Event `json:"events"`
}

// Decode decodes body into b, reusing b.Events; the strings alias body.
func (b *Batch) Decode(body []byte) error {
	b.Events = b.Events[:0]
	return sonic.UnmarshalString(bytesString(body), b)
}

// DecodeEvent decodes the body of POST /api/v1/events, one event, into ev;
// the strings alias body.
func DecodeEvent(body []byte, ev *Event) error {
	return sonic.UnmarshalString(bytesString(body), ev)
}

// Options configures a Server. The zero value works.
type Options struct {
	// Discard answers ok without decoding: the HTTP ceiling. Default
	// false: every body is decoded with sonic.
	Discard bool
	// MaxBody is the largest request body; fasthttp answers 413 beyond it.
	// Default 10 MiB, as JimBus.
	MaxBody int
}

// Server is the baseline HTTP server.
type Server struct {
	opts  Options
	hs    *fasthttp.Server
	pool  sync.Pool // *Batch, reused so that the baseline is as fast as it can be
	once  sync.Once
	mu    sync.Mutex
	lns   []net.Listener
	wg    sync.WaitGroup
	stops bool
}

var (
	bodyOK          = []byte(`{"status":"ok"}`)
	bodyBadJSON     = []byte(`{"status":"error","error":"invalid JSON"}`)
	bodyNotFound    = []byte(`{"status":"error","error":"not found"}`)
	contentTypeJSON = []byte("application/json")
	pathBatch       = "/api/v1/events/batch"
	pathEvent       = "/api/v1/events"
)

// ErrStopped is returned by Start once Stop was called.
var ErrStopped = errors.New("fastsonic: server stopped")

// New returns a server; it starts nothing.
func New(opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 10 << 20
	}
	s := &Server{opts: opts}
	s.pool.New = func() any { return &Batch{Events: make([]Event, 0, 64)} }
	// The same settings as JimBus's ingest server, so that only the
	// handlers differ.
	s.hs = &fasthttp.Server{
		Handler:                      s.Handler(),
		Name:                         "fastsonic",
		MaxRequestBodySize:           opts.MaxBody,
		ReadTimeout:                  30 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		ReadBufferSize:               8 << 10,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
	}
	return s
}

// Handler returns the request handler: POST /api/v1/events/batch and POST
// /api/v1/events decode (unless Options.Discard) and answer ok; anything
// else answers 404.
func (s *Server) Handler() fasthttp.RequestHandler {
	if s.opts.Discard {
		return s.discard
	}
	return s.decode
}

func (s *Server) discard(ctx *fasthttp.RequestCtx) {
	_ = ctx.PostBody()
	answer(ctx, fasthttp.StatusOK, bodyOK)
}

func (s *Server) decode(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		answer(ctx, fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	body := ctx.PostBody()
	var err error
	switch string(ctx.Path()) {
	case pathBatch:
		b := s.pool.Get().(*Batch)
		err = b.Decode(body)
		s.pool.Put(b) // its strings alias fasthttp's body buffer: never read again
	case pathEvent:
		var ev Event
		err = DecodeEvent(body, &ev)
	default:
		answer(ctx, fasthttp.StatusNotFound, bodyNotFound)
		return
	}
	if err != nil {
		answer(ctx, fasthttp.StatusOK, bodyBadJSON)
		return
	}
	answer(ctx, fasthttp.StatusOK, bodyOK)
}

func answer(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.SetBodyRaw(body)
}

// bytesString views b as a string without copying: sonic.Unmarshal would
// copy the whole body first. The string must not outlive b.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Start serves ln in a new goroutine; Stop ends it.
func (s *Server) Start(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stops {
		return ErrStopped
	}
	s.lns = append(s.lns, ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(ln)
	}()
	return nil
}

// Stop closes the listeners and the idle connections, waits for the
// requests in flight and the serving goroutines, or until ctx is done. It
// may be called more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stops = true
	lns := s.lns
	s.mu.Unlock()
	var err error
	s.once.Do(func() {
		err = s.hs.ShutdownWithContext(ctx)
		// A Serve goroutine that had not registered its listener yet
		// when Shutdown ran returns once its listener is closed.
		for _, ln := range lns {
			_ = ln.Close()
		}
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
