package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/jimbot/jimbus/route"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleakOptions()...)
}

func goleakOptions() []goleak.Option {
	return []goleak.Option{
		// fasthttp refreshes its Date header in one process-wide goroutine.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	}
}

// got is what the collector recorded of one event.
type got struct {
	ID, Type, Source, Payload string
	Topic                     route.TopicID
	Reason                    string
}

// collector is a route.Publisher that records every event it is given and
// releases the batch; it can be switched to answer route.ErrFull or
// route.ErrClosed, or to block until released.
type collector struct {
	mu      sync.Mutex
	events  []got
	batches int
	hints   []uint32

	full   atomic.Bool
	closed atomic.Bool
	calls  atomic.Int64

	block   chan struct{} // when not nil, Publish waits for it to close
	entered chan struct{} // when not nil, Publish sends on it before blocking

	hold atomic.Bool    // keep the published batches (releaseHeld) instead of releasing them
	held []*route.Batch // under mu
}

// releaseHeld releases the batches kept while hold was set.
func (c *collector) releaseHeld() {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.mu.Unlock()
	for _, b := range held {
		b.Release()
	}
}

func (c *collector) Publish(hint uint32, b *route.Batch) error {
	c.calls.Add(1)
	if c.closed.Load() {
		return route.ErrClosed
	}
	if c.full.Load() {
		return route.ErrFull
	}
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	for i, ev := range b.Events {
		// Copies: the strings alias the batch's buffers, reused after Release.
		c.events = append(c.events, got{
			ID: strings.Clone(ev.GetEventId()), Type: strings.Clone(ev.GetTypeName()), Source: strings.Clone(ev.GetSource()),
			Payload: string(ev.GetPayloadJson()), Topic: b.Topics[i], Reason: strings.Clone(ev.GetDeadletterReason()),
		})
	}
	c.batches++
	c.hints = append(c.hints, hint)
	if c.hold.Load() {
		c.held = append(c.held, b)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	b.Release()
	return nil
}

func (c *collector) got() []got {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]got(nil), c.events...)
}

func (c *collector) batchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches
}

func (c *collector) hintList() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint32(nil), c.hints...)
}

func (c *collector) ids() []string {
	var ids []string
	for _, g := range c.got() {
		ids = append(ids, g.ID)
	}
	return ids
}

// testServer is a Server on a real listener with its own registry and HTTP
// client.
type testServer struct {
	*Server
	pub    *collector
	reg    *prometheus.Registry
	url    string
	addr   string
	client *http.Client
}

// startServer starts a server on 127.0.0.1:0; setup runs before Start.
func startServer(t *testing.T, opts Options, pub *collector, setup ...func(*Server)) *testServer {
	t.Helper()
	if pub == nil {
		pub = &collector{}
	}
	reg := prometheus.NewRegistry()
	if opts.Registerer == nil {
		opts.Registerer, opts.Gatherer = reg, reg
	}
	s, err := New(opts, pub)
	require.NoError(t, err)
	for _, f := range setup {
		f(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background(), ln))
	tr := &http.Transport{}
	ts := &testServer{
		Server: s, pub: pub, reg: reg,
		addr:   ln.Addr().String(),
		url:    "http://" + ln.Addr().String(),
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Stop(ctx))
	})
	return ts
}

type answer struct {
	code   int
	header http.Header
	body   string
}

// do sends one request; ct "" sends no Content-Type.
func (ts *testServer) do(t *testing.T, method, path, ct, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.url+path, r)
	require.NoError(t, err)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := ts.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (ts *testServer) post(t *testing.T, path, body string) answer {
	t.Helper()
	return ts.do(t, http.MethodPost, path, "application/json", body)
}

// raw writes req on a new TCP connection and returns everything the server
// sends until it closes the connection (or the deadline).
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	b, _ := io.ReadAll(c)
	return string(b)
}

// readResponse reads one response (status line, headers, Content-Length
// body) from br.
func readResponse(t *testing.T, br *bufio.Reader) (status string, header http.Header, body string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.Proto + " " + resp.Status, resp.Header, string(b)
}

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// postRaw posts a JSON body on a new connection with Connection: close,
// without failing the test (for other goroutines).
func postRaw(addr, path, body string) (answer, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return answer{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return answer{}, err
	}
	if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		return answer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// counterValue sums every series of a metric family.
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// releaser is a route.Publisher that releases every batch at once, like a
// fan-out whose subscribers are done; it counts the events.
type releaser struct{ events atomic.Int64 }

func (r *releaser) Publish(_ uint32, b *route.Batch) error {
	r.events.Add(int64(b.Len()))
	b.Release()
	return nil
}

// benchReq is a reusable request for the handler. serve sets its body
// before each call, as fasthttp reads each request's body into the request:
// the handler takes the body's buffer (decode.DecodeSwap).
type benchReq struct {
	ctx  *fasthttp.RequestCtx
	body []byte
}

func newBenchReq(method, uri, contentType string, body []byte) *benchReq {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if contentType != "" {
		ctx.Request.Header.SetContentType(contentType)
	}
	return &benchReq{ctx: ctx, body: body}
}

// serve sets the request's body and runs h on it.
func (r *benchReq) serve(h fasthttp.RequestHandler) {
	r.ctx.Request.SetBody(r.body)
	h(r.ctx)
}
