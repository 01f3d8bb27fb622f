package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func TestPublishFull(t *testing.T) {
	ts := startServer(t, Options{PublishWait: 30 * time.Millisecond, RetryAfter: 2}, nil)
	body := batch("b1", event("A", 1), event("B", 2))
	ts.pub.full.Store(true)
	start := time.Now()
	a := ts.post(t, "/api/v1/events/batch", body)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "waited for room")
	require.Equal(t, 503, a.code)
	require.Equal(t, "2", a.header.Get("Retry-After"))
	require.Equal(t, `{"status":"error","error":"event pipeline full for 30ms; retry later (subscribers are behind: raise --max-queued-bytes or --ring-size, or add subscribers)"}`, a.body)
	require.Greater(t, ts.pub.calls.Load(), int64(2), "retried while waiting")
	require.Empty(t, ts.pub.got())

	// The client's retry is delivered, not taken for a resend.
	ts.pub.full.Store(false)
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", body).body)
	require.Equal(t, []string{"A", "B"}, ts.pub.ids())
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", body).body)
	require.Equal(t, []string{"A", "B"}, ts.pub.ids(), "and the next resend is one")
	require.Equal(t, float64(1), counterValue(t, ts.reg, "jimbus_ingest_publish_full_total"))

	// Room that appears during the wait: answered ok.
	ts.pub.full.Store(true)
	go func() {
		time.Sleep(5 * time.Millisecond)
		ts.pub.full.Store(false)
	}()
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", batch("b2", event("C", 3))).body)
	require.Equal(t, []string{"A", "B", "C"}, ts.pub.ids())

	// A closing fan-out is transient too.
	ts.pub.closed.Store(true)
	a = ts.post(t, "/api/v1/events", event("D", 4))
	require.Equal(t, 503, a.code)
	require.Equal(t, "2", a.header.Get("Retry-After"))
	ts.pub.closed.Store(false)
	require.Equal(t, okBody, ts.post(t, "/api/v1/events", event("D", 4)).body)
	require.Equal(t, []string{"A", "B", "C", "D"}, ts.pub.ids())
}

func TestShardHint(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	for i := range 3 {
		require.Equal(t, okBody, ts.post(t, "/api/v1/events", event(fmt.Sprint(i), 1)).body)
	}
	h := ts.pub.hintList()
	require.Len(t, h, 3)
	require.Equal(t, h[0], h[1], "one keep-alive connection, one hint")
	require.Equal(t, h[0], h[2])
}

func TestStop(t *testing.T) {
	pub := &collector{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	ts := startServer(t, Options{}, pub)

	inflight := make(chan answer, 1)
	go func() {
		// Not ts.post: require must not fail outside the test goroutine.
		a, err := postRaw(ts.addr, "/api/v1/events/batch", batch("slow", event("S", 1)))
		if err != nil {
			a.body = err.Error()
		}
		inflight <- a
	}()
	<-pub.entered

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- ts.Stop(ctx)
	}()
	require.Eventually(t, ts.stopping.Load, 5*time.Second, time.Millisecond)

	// New requests: 503, Retry-After, Connection: close.
	resp := raw(t, ts.addr, "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 503 "), resp)
	require.Contains(t, resp, "Retry-After: 1\r\n")
	require.Contains(t, resp, "Connection: close\r\n")
	require.Contains(t, resp, "shutting down")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned while a request was in flight: %v", err)
	default:
	}

	// The in-flight request finishes and is answered ok.
	close(pub.block)
	a := <-inflight
	require.Equal(t, 200, a.code, a.body)
	require.Equal(t, okBody, a.body)
	require.NoError(t, <-stopped)
	require.Equal(t, []string{"S"}, pub.ids())

	_, err := net.DialTimeout("tcp", ts.addr, time.Second)
	require.Error(t, err, "the listener is closed")
	require.NoError(t, ts.Stop(context.Background()), "Stop is idempotent")
	require.ErrorIs(t, ts.Start(context.Background(), nil), ErrStopped)

	_, err = ts.PublishEvents(context.Background(), "x", nil)
	require.Equal(t, codes.Unavailable, status.Code(err))
}

func TestStartStopNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleakOptions()...)
	s, err := New(Options{}, &collector{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background(), ln))
	// An idle keep-alive connection and a served request.
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s", len(heartbeat), heartbeat)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), okBody)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
	require.NoError(t, s.Stop(ctx))

	// Serve, stopped from another goroutine.
	s2, err := New(Options{}, &collector{})
	require.NoError(t, err)
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s2.Serve(ln2) }()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, s2.Stop(ctx))
	require.NoError(t, <-served)
}

func TestPublishEvents(t *testing.T) {
	ts := startServer(t, Options{PublishWait: 10 * time.Millisecond}, nil)
	ev := func(id string) *jimbotpb.Event {
		return &jimbotpb.Event{EventId: id, Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "grpc", ClientTimestamp: 7}
	}
	ctx := context.Background()
	resp, err := ts.PublishEvents(ctx, "g1", []*jimbotpb.Event{ev("A"), ev("B")})
	require.NoError(t, err)
	require.True(t, resp.GetSuccess())
	require.EqualValues(t, 2, resp.GetAccepted())
	require.EqualValues(t, 0, resp.GetDuplicates())

	resp, err = ts.PublishEvents(ctx, "g2", []*jimbotpb.Event{ev("A"), ev("C"), {Source: "grpc"}})
	require.NoError(t, err)
	require.False(t, resp.GetSuccess(), "an event without a type is rejected")
	require.NotEmpty(t, resp.GetMessage())
	require.EqualValues(t, 2, resp.GetAccepted())
	require.EqualValues(t, 1, resp.GetDuplicates())
	require.EqualValues(t, 1, resp.GetRejected())
	got := ts.pub.got()
	require.Len(t, got, 4) // A, B, C and the deadletter
	require.Equal(t, []string{"A", "B", "C"}, []string{got[0].ID, got[1].ID, got[2].ID})

	ts.pub.full.Store(true)
	_, err = ts.PublishEvents(ctx, "g3", []*jimbotpb.Event{ev("D")})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "event pipeline full for 10ms")
	ts.pub.full.Store(false)
	resp, err = ts.PublishEvents(ctx, "g3", []*jimbotpb.Event{ev("D")})
	require.NoError(t, err)
	require.EqualValues(t, 0, resp.GetDuplicates(), "the retry after Unavailable is delivered")
	require.Equal(t, "D", ts.pub.got()[4].ID)
	require.Equal(t, float64(4), counterValue(t, ts.reg, "jimbus_ingest_events_accepted_total"))
}

type panicker struct{}

func (panicker) Publish(uint32, *route.Batch) error { panic("BUG: test") }

func TestHandlerPanic(t *testing.T) {
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, panicker{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background(), ln))
	defer func() { require.NoError(t, s.Stop(context.Background())) }()
	for range 2 { // the server survives
		a, err := postRaw(ln.Addr().String(), "/api/v1/events", heartbeat)
		require.NoError(t, err)
		require.Equal(t, 500, a.code)
		require.Equal(t, `{"status":"error","error":"internal error"}`, a.body)
	}
	require.Zero(t, s.inflight.Load())
}

// TestConcurrentClients posts from many connections at once (PEER-SUITE 10
// has 100), each event twice: every event is delivered exactly once.
func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	const clients, perClient = 100, 5
	errs := make(chan error, clients)
	for c := range clients {
		go func() {
			for i := range perClient {
				body := batch("c", event(fmt.Sprintf("c%d-%d", c, i), float64(i)), event(fmt.Sprintf("c%d-%d", c, (i+1)%perClient), float64((i+1)%perClient)))
				a, err := postRaw(ts.addr, "/api/v1/events/batch", body)
				if err == nil && (a.code != 200 || a.body != okBody) {
					err = fmt.Errorf("%d %s", a.code, a.body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	seen := map[string]int{}
	for _, id := range ts.pub.ids() {
		seen[id]++
	}
	require.Len(t, seen, clients*perClient)
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
}

// TestQueuedBytesBound: while the fan-out holds the batches it was given
// (subscribers behind), their bytes count against MaxQueuedBytes; beyond it
// requests answer 503 with Retry-After, and once the batches are sent (the
// last Release) requests are accepted again.
func TestQueuedBytesBound(t *testing.T) {
	ts := startServer(t, Options{PublishWait: 20 * time.Millisecond, MaxQueuedBytes: 256 << 10}, nil)
	ts.pub.hold.Store(true)
	defer ts.pub.releaseHeld()
	big := `{"type":"GAME_STATE","source":"s","payload":{"x":"` + strings.Repeat("a", 40<<10) + `"}}`
	accepted := 0
	var refused answer
	for range 64 {
		a := ts.post(t, "/api/v1/events", big)
		if a.code != 200 {
			refused = a
			break
		}
		accepted++
	}
	require.Equal(t, 503, refused.code, "refused once the budget is spent")
	require.NotEmpty(t, refused.header.Get("Retry-After"))
	require.Contains(t, refused.body, "--max-queued-bytes")
	require.Greater(t, accepted, 1)
	require.Less(t, accepted, 7, "each request holds at least its 40 KiB body")
	used := ts.budget.Used()
	require.Greater(t, used, int64(accepted)*(40<<10))
	require.LessOrEqual(t, used, int64(256<<10))
	require.Equal(t, float64(used), counterValue(t, ts.reg, "jimbus_ingest_queued_bytes"))
	require.Equal(t, float64(256<<10), counterValue(t, ts.reg, "jimbus_ingest_queued_bytes_limit"))

	ts.pub.hold.Store(false)
	ts.pub.releaseHeld()
	require.Zero(t, ts.budget.Used(), "the last Release returns the charge")
	require.Equal(t, 200, ts.post(t, "/api/v1/events", big).code)
	require.Zero(t, ts.budget.Used())
}
