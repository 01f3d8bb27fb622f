package coord

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fakeClock is a Clock that moves only when told. Advance runs due timers in
// deadline order, on the calling goroutine, without holding the clock's lock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	seq     int
	f       func()
	pending bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f, pending: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if !t.pending {
		return false
	}
	t.pending = false
	t.c.timers = slices.DeleteFunc(t.c.timers, func(o *fakeTimer) bool { return o == t })
	return true
}

// Advance moves the clock by d, firing every timer that falls due on the way
// at its own time.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.at.After(target) && (next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.seq < next.seq)) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.pending = false
		c.timers = slices.DeleteFunc(c.timers, func(o *fakeTimer) bool { return o == next })
		c.mu.Unlock()
		next.f()
	}
}

func (c *fakeClock) pendingTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testOptions are small, deterministic options: fake clock, no NVML,
// one 24000 MB GPU, 32768 MB of memory, 16 cores.
func testOptions(clk Clock) Options {
	return Options{
		DisableNVML: true,
		MemoryMB:    32768,
		CPUCores:    16,
		Logger:      quietLogger(),
		Clock:       clk,
	}
}

// startServer creates and starts a Server and stops it at the end of the test.
func startServer(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	return s
}

// checkInvariant fails the test when the books of s do not balance.
func checkInvariant(t testing.TB, s *Server) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.st.invariant())
}

func queued(s *Server, r jimbotpb.ResourceType) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.queues[r].len()
}

// waitQueued waits (in real time, bounded) until n requests wait for r.
func waitQueued(t testing.TB, s *Server, r jimbotpb.ResourceType, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return queued(s, r) == n }, 5*time.Second, time.Millisecond,
		"want %d waiting for %s", n, r)
}

type reqOpt func(*jimbotpb.ResourceRequest)

func timeout(d time.Duration) reqOpt {
	return func(r *jimbotpb.ResourceRequest) { r.Timeout = durationpb.New(d) }
}

func lasting(d time.Duration) reqOpt {
	return func(r *jimbotpb.ResourceRequest) { r.Duration = durationpb.New(d) }
}

func prio(p jimbotpb.Priority) reqOpt {
	return func(r *jimbotpb.ResourceRequest) { r.Priority = p }
}

func meta(kv ...string) reqOpt {
	return func(r *jimbotpb.ResourceRequest) {
		if r.Metadata == nil {
			r.Metadata = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Metadata[kv[i]] = kv[i+1]
		}
	}
}

func named(id string) reqOpt {
	return func(r *jimbotpb.ResourceRequest) { r.RequestId = id }
}

func newReq(component string, res jimbotpb.ResourceType, qty int32, opts ...reqOpt) *jimbotpb.ResourceRequest {
	r := &jimbotpb.ResourceRequest{Component: component, Resource: res, Quantity: qty}
	for _, o := range opts {
		o(r)
	}
	return r
}

// ask calls RequestResource in-process and requires no RPC error.
func ask(t testing.TB, s *Server, r *jimbotpb.ResourceRequest) *jimbotpb.ResourceResponse {
	t.Helper()
	resp, err := s.RequestResource(context.Background(), r)
	require.NoError(t, err)
	return resp
}

func mustGrant(t testing.TB, s *Server, r *jimbotpb.ResourceRequest) *jimbotpb.ResourceResponse {
	t.Helper()
	resp := ask(t, s, r)
	require.Equal(t, jimbotpb.RequestStatus_REQUEST_STATUS_GRANTED, resp.GetStatus(), resp.GetMessage())
	require.NotEmpty(t, resp.GetToken())
	return resp
}

func release(t testing.TB, s *Server, token, component string, kv ...string) *jimbotpb.ReleaseResponse {
	t.Helper()
	in := &jimbotpb.ReleaseRequest{Token: token, Component: component}
	if len(kv) > 0 {
		in.Metadata = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			in.Metadata[kv[i]] = kv[i+1]
		}
	}
	resp, err := s.ReleaseResource(context.Background(), in)
	require.NoError(t, err)
	return resp
}

// pending runs RequestResource in a goroutine; the result arrives on the
// returned channel.
func pending(s *Server, r *jimbotpb.ResourceRequest) <-chan *jimbotpb.ResourceResponse {
	ch := make(chan *jimbotpb.ResourceResponse, 1)
	go func() {
		resp, err := s.RequestResource(context.Background(), r)
		if err != nil {
			resp = &jimbotpb.ResourceResponse{Message: "rpc error: " + err.Error()}
		}
		ch <- resp
	}()
	return ch
}

func recv(t testing.TB, ch <-chan *jimbotpb.ResourceResponse) *jimbotpb.ResourceResponse {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5s")
		return nil
	}
}

func statusOf(t testing.TB, s *Server, r jimbotpb.ResourceType) *jimbotpb.ResourceStatus {
	t.Helper()
	resp, err := s.GetResourceStatus(context.Background(), &jimbotpb.ResourceStatusRequest{Resource: r})
	require.NoError(t, err)
	require.Len(t, resp.GetStatuses(), 1)
	return resp.GetStatuses()[0]
}

// advancePoll advances clk by d, which must end on a poll tick, and waits
// until the poller has applied that poll.
func advancePoll(t testing.TB, s *Server, clk *fakeClock, d time.Duration) {
	t.Helper()
	clk.Advance(d)
	now := clk.Now()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.st.gpu.snapAt.Equal(now)
	}, 5*time.Second, 100*time.Microsecond, "no poll applied at %s", now)
}
