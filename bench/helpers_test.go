package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/jimbot/jimbus/ingest"
	"github.com/jimbot/jimbus/ingest/decode"
	jimbotpb "github.com/jimbot/jimbus/proto"
)

var conc = flag.Int("conc", 32, "concurrent requests (RunParallel goroutines, one keep-alive connection each) of the HTTP benchmarks")

const (
	pathBatch = "/api/v1/events/batch"
	pathEvent = "/api/v1/events"

	batchEvents = 50
)

// readTestdata reads a file of the repository's testdata/balatromcp.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "balatromcp", name))
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// smallEvents are change events as the mod writes them (float timestamps,
// uuid event ids), from the reference captures.
var smallEvents = []string{
	`{"type":"MONEY_CHANGED","version":1,"source":"BalatroMCP","payload":{"difference":9,"old_value":14,"new_value":23},"event_id":"d2ad2084-5024-4431-9258-8b53b0a9e4f1","timestamp":266945.45746667}`,
	`{"type":"SCORE_CHANGED","version":1,"source":"BalatroMCP","payload":{"new_chips":356,"old_mult":0,"new_mult":0,"old_chips":0},"event_id":"305f1852-41d2-439f-ad7a-e04a21d3b6c0","timestamp":260427.39506666}`,
	`{"type":"HAND_PLAYED","version":1,"source":"BalatroMCP","payload":{"hand_number":1,"hands_remaining":3},"event_id":"0c4eb218-b3bc-4c9d-90e3-1759a600c2d7","timestamp":259925.96796666}`,
	`{"type":"PHASE_CHANGED","version":1,"source":"BalatroMCP","payload":{"old_phase":"UNKNOWN_STATE_1","new_phase":"UNKNOWN_STATE_2"},"event_id":"cf7d9421-c055-4f50-b5ee-99468dbd14a8","timestamp":259925.98926666}`,
	`{"type":"HEARTBEAT","version":1,"source":"BalatroMCP","payload":{"version":"0.1.0","game_state":"1","uptime":248396.08406667,"headless":false},"event_id":"330c2213-f909-4049-8803-3aa2d7cbea07","timestamp":248396.10536667}`,
	`{"type":"CARDS_DISCARDED","version":1,"source":"BalatroMCP","payload":{"discards_remaining":3},"event_id":"8f0cd596-6986-4ef8-bc24-75f51e50625b","timestamp":269953.72186667}`,
	`{"type":"ROUND_CHANGED","version":1,"source":"BalatroMCP","payload":{"ante":2,"round":6},"event_id":"1299a991-fbb7-4571-8d7e-32ec613fe80f","timestamp":269953.74316667}`,
}

// idKey precedes an event id; the last 12 hex digits of the uuid are
// rewritten on every request (stampIDs).
var idKey = []byte(`"event_id":"`)

const (
	uuidLen   = 36
	stampFrom = 24 // the last group of a uuid: 12 hex digits
)

// appendEvent appends ev and returns the offset of its stamped id digits.
func appendEvent(tb testing.TB, dst, ev []byte) ([]byte, int) {
	i := bytes.LastIndex(ev, idKey)
	if i < 0 || len(ev) < i+len(idKey)+uuidLen {
		tb.Fatalf("no event_id in %.60s", ev)
	}
	off := len(dst) + i + len(idKey) + stampFrom
	return append(dst, ev...), off
}

// batchBody is a 50-event batch like the mod's after a state change: one
// GAME_STATE (8.9 KB, with the 52-card deck) and 49 small events, a
// JOKERS_CHANGED every 8th; about 25 KB. offs are the offsets of the id
// digits that stampIDs rewrites.
func batchBody(tb testing.TB) (body []byte, offs []int) {
	tb.Helper()
	state := readTestdata(tb, "event_GAME_STATE.initial.json")
	jokers := readTestdata(tb, "event_JOKERS_CHANGED.json")
	body = []byte(`{"source":"BalatroMCP","timestamp":1751439182000,"batch_id":"de39f1f4-7dfc-49c0-b364-72c1dbe6fd38","events":[`)
	for i := range batchEvents {
		if i > 0 {
			body = append(body, ',')
		}
		ev := []byte(smallEvents[i%len(smallEvents)])
		switch {
		case i == 0:
			ev = state
		case i%8 == 7:
			ev = jokers
		}
		var off int
		body, off = appendEvent(tb, body, ev)
		offs = append(offs, off)
	}
	body = append(body, "]}"...)
	return body, offs
}

// eventBody is one small event, as POST /api/v1/events carries it.
func eventBody(tb testing.TB) (body []byte, offs []int) {
	body, off := appendEvent(tb, nil, readTestdata(tb, "event_HEARTBEAT.json"))
	return body, []int{off}
}

// requestSeq numbers requests across the process, so that every request's
// event ids are new to JimBus's resend window, whatever the benchmark.
var requestSeq atomic.Uint64

const hexDigits = "0123456789abcdef"

// stampIDs writes 12 hex digits of (n, event index) into each event id.
func stampIDs(body []byte, offs []int, n uint64) {
	for j, off := range offs {
		v := n<<6 | uint64(j)
		for k := 11; k >= 0; k-- {
			body[off+k] = hexDigits[v&0xf]
			v >>= 4
		}
	}
}

// newClient returns a fasthttp client for addr with up to conns keep-alive
// connections.
func newClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                addr,
		MaxConns:            conns,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        30 * time.Second,
		MaxIdleConnDuration: time.Minute,
		MaxConnWaitTimeout:  30 * time.Second,
	}
}

var okPrefix = []byte(`{"status":"ok"`)

// post sends body once (its ids stamped fresh) and checks the answer. A 503
// (the pipeline stayed full: the server kept nothing) is retried after a
// millisecond, as a client honouring Retry-After would, for up to a minute;
// retries counts them.
func post(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, offs []int) error {
	stampIDs(req.Body(), offs, requestSeq.Add(1))
	for try := 0; ; try++ {
		if err := hc.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != fasthttp.StatusServiceUnavailable || try == 60_000 {
			break
		}
		retries.Add(1)
		time.Sleep(time.Millisecond)
	}
	if resp.StatusCode() != fasthttp.StatusOK || !bytes.HasPrefix(resp.Body(), okPrefix) {
		return fmt.Errorf("answer %d %q", resp.StatusCode(), resp.Body())
	}
	return nil
}

// retries counts the requests answered 503 and sent again.
var retries atomic.Int64

// newRequest returns a POST of a copy of body to addr+path.
func newRequest(addr, path string, body []byte) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	return req
}

// parallelism is -conc in units of GOMAXPROCS, rounded up (RunParallel
// starts parallelism×GOMAXPROCS goroutines).
func parallelism() int { return (max(*conc, 1) + gomaxprocs() - 1) / gomaxprocs() }

// concurrency is the number of requests in flight: RunParallel's goroutines.
func concurrency() int { return parallelism() * gomaxprocs() }

// drive posts body b.N times from concurrency() goroutines, each with its
// own keep-alive connection.
func drive(b *testing.B, hc *fasthttp.HostClient, addr, path string, body []byte, offs []int) {
	b.SetParallelism(parallelism())
	b.RunParallel(func(pb *testing.PB) {
		req := newRequest(addr, path, body)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			if err := post(hc, req, resp, offs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// counter counts delivered events and lets one goroutine wait for a total.
type counter struct {
	n      atomic.Int64
	target atomic.Int64
	sig    chan struct{}
	ended  chan struct{} // closed when the subscription ends; then endErr is set
	endErr error
}

func newCounter() *counter {
	c := &counter{sig: make(chan struct{}, 1), ended: make(chan struct{})}
	c.target.Store(1 << 62)
	return c
}

func (c *counter) add(k int) {
	if c.n.Add(int64(k)) >= c.target.Load() {
		select {
		case c.sig <- struct{}{}:
		default:
		}
	}
}

// end records that the subscription ended with err.
func (c *counter) end(err error) {
	c.endErr = err
	close(c.ended)
}

// expect sets the total to wait for: k more events than counted so far. It
// must be called before the events are sent.
func (c *counter) expect(k int) int64 {
	t := c.n.Load() + int64(k)
	c.target.Store(t)
	return t
}

// wait waits until the total set by expect is reached, the subscription
// ends, or timeout.
func (c *counter) wait(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t := c.target.Load()
		n := c.n.Load()
		if n >= t {
			return nil
		}
		select {
		case <-c.sig:
		case <-c.ended:
			if c.n.Load() >= t {
				return nil
			}
			return fmt.Errorf("subscription ended with %d of %d events: %v", c.n.Load(), t, c.endErr)
		case <-deadline.C:
			return fmt.Errorf("subscriber has %d of %d events after %v", n, t, timeout)
		}
	}
}

// drainStream is a Subscribe stream without the network: Send counts the
// events and drops them (nothing is marshalled).
type drainStream struct {
	ctx   context.Context
	cnt   *counter
	ready chan struct{}
	once  sync.Once
}

func (d *drainStream) Send(eb *jimbotpb.EventBatch) error { d.cnt.add(len(eb.Events)); return nil }
func (d *drainStream) SetHeader(metadata.MD) error        { return nil }
func (d *drainStream) SendHeader(metadata.MD) error {
	d.once.Do(func() { close(d.ready) })
	return nil
}
func (d *drainStream) SetTrailer(metadata.MD)   {}
func (d *drainStream) Context() context.Context { return d.ctx }
func (d *drainStream) SendMsg(m any) error      { return d.Send(m.(*jimbotpb.EventBatch)) }
func (d *drainStream) RecvMsg(any) error        { return io.EOF }

var _ grpc.ServerStreamingServer[jimbotpb.EventBatch] = (*drainStream)(nil)

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// subscribeInProcess subscribes to ">" on s without the network. The
// subscription ends when ctx is cancelled or s stops; done receives the
// handler's result.
func subscribeInProcess(ctx context.Context, s *Server) (*counter, <-chan error, error) {
	st := &drainStream{ctx: ctx, cnt: newCounter(), ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		err := s.Subscribe(&jimbotpb.SubscribeRequest{TopicPattern: ">", SubscriberId: "bench-inprocess", PayloadView: s.View}, st)
		st.cnt.end(err)
		done <- err
	}()
	select {
	case <-st.ready:
		return st.cnt, done, nil
	case <-st.cnt.ended:
		return nil, nil, fmt.Errorf("in-process subscribe to %s: %v", s.Name, st.cnt.endErr)
	case <-time.After(10 * time.Second):
		return nil, nil, fmt.Errorf("in-process subscribe to %s: no header after 10s", s.Name)
	}
}

// grpcSubscriber is a real gRPC subscriber on ">" over loopback.
type grpcSubscriber struct {
	cnt    *counter
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error // the Recv loop's end
}

// subscribeGRPC subscribes to ">" on s's gRPC listener and counts what it
// receives; it returns once the subscription is active.
func subscribeGRPC(s *Server) (*grpcSubscriber, error) {
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, &jimbotpb.SubscribeRequest{TopicPattern: ">", SubscriberId: "bench-grpc", PayloadView: s.View})
	if err == nil {
		_, err = st.Header() // the subscription is active
	}
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("subscribe to %s: %w", s.Name, err)
	}
	g := &grpcSubscriber{cnt: newCounter(), conn: conn, cancel: cancel, done: make(chan error, 1)}
	go func() {
		for {
			eb, err := st.Recv()
			if err != nil {
				g.cnt.end(err)
				g.done <- err
				return
			}
			g.cnt.add(len(eb.Events))
		}
	}()
	return g, nil
}

func (g *grpcSubscriber) close() {
	g.cancel()
	<-g.done
	g.conn.Close()
}

// startServer starts the named server and stops it when tb ends.
func startServer(tb testing.TB, name string) *Server {
	tb.Helper()
	var s *Server
	var err error
	switch name {
	case "jimbus":
		s, err = StartJimBus(JimBusOptions{})
	case "jimbus_json":
		// JimBus as configured by default, with subscribers that ask for
		// payload_json only: no typed view is built or sent.
		s, err = StartJimBus(JimBusOptions{})
		if s != nil {
			s.Name, s.View = name, jimbotpb.PayloadView_PAYLOAD_VIEW_JSON
		}
	case "jimbus_notyped":
		// JimBus without the typed oneof view: payload_json only.
		s, err = StartJimBus(JimBusOptions{Ingest: ingest.Options{DecodeOptions: decode.Options{NoTypedView: true}}})
		if s != nil {
			s.Name = name
		}
	case "fastsonic":
		s, err = StartFastSonic(false)
	case "discard":
		s, err = StartFastSonic(true)
	case "nethttp":
		s, err = StartNetHTTPBus()
	default:
		err = fmt.Errorf("unknown server %q", name)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			tb.Errorf("stop %s: %v", name, err)
		}
	})
	return s
}
