package coord

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

const (
	gpuR    = jimbotpb.ResourceType_RESOURCE_TYPE_GPU
	claudeR = jimbotpb.ResourceType_RESOURCE_TYPE_CLAUDE_API
	memR    = jimbotpb.ResourceType_RESOURCE_TYPE_MEMORY
	cpuR    = jimbotpb.ResourceType_RESOURCE_TYPE_CPU

	granted = jimbotpb.RequestStatus_REQUEST_STATUS_GRANTED
	denied  = jimbotpb.RequestStatus_REQUEST_STATUS_DENIED

	low      = jimbotpb.Priority_PRIORITY_LOW
	normal   = jimbotpb.Priority_PRIORITY_NORMAL
	high     = jimbotpb.Priority_PRIORITY_HIGH
	critical = jimbotpb.Priority_PRIORITY_CRITICAL
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOptionsZeroValueWorks(t *testing.T) {
	o, err := Options{}.resolve()
	require.NoError(t, err)
	require.Equal(t, 1, o.GPUSlices)
	require.Equal(t, 1, o.GPUDevices)
	require.Equal(t, 24000, o.GPUMemoryMB)
	require.Equal(t, 250*time.Millisecond, o.NVMLPoll)
	require.Equal(t, 100, o.ClaudePerHour)
	require.Equal(t, 10, o.ClaudeBurst)
	require.Equal(t, 300*time.Second, o.GPULease)
	require.Equal(t, 5*time.Second, o.StreamHeartbeat)
	require.Positive(t, o.MemoryMB)
	require.Positive(t, o.CPUCores)
	require.NotNil(t, o.Logger)
	require.NotNil(t, o.Clock)

	s, err := New(Options{})
	require.NoError(t, err)
	require.NoError(t, s.Stop(context.Background()), "Stop before Start")

	f := func(o Options) {
		t.Helper()
		_, err := New(o)
		require.ErrorIs(t, err, ErrOptions)
	}
	f(Options{GPUSlices: -1})
	f(Options{MemoryMB: -5})
	f(Options{NVMLPoll: -time.Second})
	f(Options{GPUMemoryMB: 1 << 31})
	f(Options{DisableNVML: true, RequireNVML: true})
}

func TestParseMemTotal(t *testing.T) {
	f := func(in string, want int) {
		t.Helper()
		require.Equal(t, want, parseMemTotalMB(strings.NewReader(in)))
	}
	f("MemTotal:       32768000 kB\nMemFree: 1 kB\n", 32000)
	f("MemFree: 1 kB\nMemTotal: 2048 kB\n", 2)
	f("MemFree: 1 kB\n", 0)
	f("MemTotal: x kB\n", 0)
	f("", 0)
}

func TestNotRunningIsUnavailable(t *testing.T) {
	s, err := New(testOptions(newFakeClock()))
	require.NoError(t, err)
	_, err = s.RequestResource(context.Background(), newReq("a", memR, 1))
	require.ErrorContains(t, err, "not running")
	require.NoError(t, s.Start(context.Background()))
	require.ErrorIs(t, s.Start(context.Background()), ErrStarted)
	require.NoError(t, s.Stop(context.Background()))
	require.NoError(t, s.Stop(context.Background()), "Stop is idempotent")
	_, err = s.RequestResource(context.Background(), newReq("a", memR, 1))
	require.ErrorContains(t, err, "not running")
	require.ErrorIs(t, s.Start(context.Background()), ErrStopped)
}

func TestImmediateGrantAndDenial(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	r := mustGrant(t, s, newReq("kg", memR, 30000, named("m1"), lasting(time.Minute)))
	require.Equal(t, "m1", r.GetRequestId())
	require.EqualValues(t, 30000, r.GetGrantedQuantity())
	require.Equal(t, clk.Now(), r.GetGrantedAt().AsTime())
	require.Equal(t, clk.Now().Add(time.Minute), r.GetExpiresAt().AsTime())

	d := ask(t, s, newReq("llm", memR, 4096))
	require.Equal(t, denied, d.GetStatus())
	for _, want := range []string{"MEMORY", "asked 4096 MB", "available 2768 MB of 32768 MB", "earliest lease ends", "in 1m0s"} {
		require.Contains(t, d.GetMessage(), want)
	}
	require.Equal(t, time.Minute, d.GetRetryAfter().AsDuration())
	require.Empty(t, d.GetToken())

	// More than the capacity: denied at once, even with a timeout.
	d = ask(t, s, newReq("llm", memR, 40000, timeout(time.Hour)))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "more than the capacity of 32768 MB")
	require.Equal(t, 0, queued(s, memR))

	// Default durations per resource.
	g := mustGrant(t, s, newReq("trainer", gpuR, 1000))
	require.Equal(t, 300*time.Second, g.GetExpiresAt().AsTime().Sub(g.GetGrantedAt().AsTime()))
	c := mustGrant(t, s, newReq("cpu", cpuR, 16, lasting(48*time.Hour)))
	require.Equal(t, 24*time.Hour, c.GetExpiresAt().AsTime().Sub(c.GetGrantedAt().AsTime()), "capped by MaxLease")
	checkInvariant(t, s)
}

func TestInvalidRequests(t *testing.T) {
	s := startServer(t, testOptions(newFakeClock()))
	f := func(r *jimbotpb.ResourceRequest, want string) {
		t.Helper()
		_, err := s.RequestResource(context.Background(), r)
		require.ErrorContains(t, err, want)
		require.Contains(t, err.Error(), "InvalidArgument")
	}
	f(newReq("a", jimbotpb.ResourceType_RESOURCE_TYPE_UNSPECIFIED, 1), "resource must be")
	f(newReq("a", jimbotpb.ResourceType(9), 1), "resource must be")
	f(newReq("a", gpuR, 0), "quantity must be positive")
	f(newReq("a", memR, -3), "quantity must be positive")
	f(newReq("a", memR, 1, prio(9)), "unknown priority")
	f(newReq("a", memR, 1, timeout(-time.Second)), "timeout must not be negative")
	f(newReq("a", memR, 1, lasting(-time.Second)), "duration must not be negative")
	f(newReq("a", gpuR, 1, meta("pid", "abc")), "pid")
	f(newReq("a", claudeR, 1, meta("input_tokens", "-1")), "input_tokens")
	f(newReq("a", claudeR, 1, meta("max_output_tokens", "1e9")), "max_output_tokens")

	// CLAUDE_API quantity 0 means one call.
	r := mustGrant(t, s, newReq("llm", claudeR, 0))
	require.EqualValues(t, 1, r.GetGrantedQuantity())

	_, err := s.GetResourceStatus(context.Background(), &jimbotpb.ResourceStatusRequest{Resource: 7})
	require.ErrorContains(t, err, "unknown resource")
}

// grantOrder releases the holder and then each grant in turn, and returns
// the request ids in the order they were granted.
func grantOrder(t *testing.T, s *Server, holder string, waiting map[string]<-chan *jimbotpb.ResourceResponse) []string {
	t.Helper()
	require.True(t, release(t, s, holder, "").GetSuccess())
	var order []string
	for len(order) < len(waiting) {
		var got *jimbotpb.ResourceResponse
		deadline := time.After(5 * time.Second)
		for got == nil {
			for id, ch := range waiting {
				select {
				case r := <-ch:
					require.Equal(t, granted, r.GetStatus(), r.GetMessage())
					require.Equal(t, id, r.GetRequestId())
					got = r
				default:
				}
			}
			if got == nil {
				select {
				case <-deadline:
					t.Fatalf("nothing granted after %v", order)
				case <-time.After(time.Millisecond):
				}
			}
		}
		order = append(order, got.GetRequestId())
		checkInvariant(t, s)
		require.True(t, release(t, s, got.GetToken(), "").GetSuccess())
	}
	return order
}

func TestQueueOrderByPriorityThenFIFO(t *testing.T) {
	clk := newFakeClock()
	o := testOptions(clk)
	s := startServer(t, o)
	hold := mustGrant(t, s, newReq("holder", memR, 32768))
	waiting := map[string]<-chan *jimbotpb.ResourceResponse{}
	for i, p := range []struct {
		id string
		p  jimbotpb.Priority
	}{{"low", low}, {"normal1", normal}, {"high", high}, {"normal2", normal}, {"critical", critical}, {"unspecified", 0}} {
		waiting[p.id] = pending(s, newReq(p.id, memR, 32768, named(p.id), prio(p.p), timeout(time.Hour)))
		waitQueued(t, s, memR, i+1)
		clk.Advance(time.Millisecond) // distinct arrival times
	}
	order := grantOrder(t, s, hold.GetToken(), waiting)
	require.Equal(t, []string{"critical", "high", "normal1", "normal2", "unspecified", "low"}, order)
	checkInvariant(t, s)
}

func TestQueueAgingServesOldLowFirst(t *testing.T) {
	clk := newFakeClock()
	o := testOptions(clk)
	o.Aging = 10 * time.Second
	s := startServer(t, o)

	// A LOW that waited more than 3 agings goes before a new CRITICAL.
	hold := mustGrant(t, s, newReq("holder", memR, 32768, lasting(time.Hour)))
	waiting := map[string]<-chan *jimbotpb.ResourceResponse{
		"old-low": pending(s, newReq("a", memR, 32768, named("old-low"), prio(low), timeout(time.Hour))),
	}
	waitQueued(t, s, memR, 1)
	clk.Advance(31 * time.Second)
	waiting["new-critical"] = pending(s, newReq("b", memR, 32768, named("new-critical"), prio(critical), timeout(time.Hour)))
	waitQueued(t, s, memR, 2)
	require.Equal(t, []string{"old-low", "new-critical"}, grantOrder(t, s, hold.GetToken(), waiting))

	// One that waited less than that does not.
	hold = mustGrant(t, s, newReq("holder", memR, 32768, lasting(time.Hour)))
	waiting = map[string]<-chan *jimbotpb.ResourceResponse{
		"low": pending(s, newReq("a", memR, 32768, named("low"), prio(low), timeout(time.Hour))),
	}
	waitQueued(t, s, memR, 1)
	clk.Advance(29 * time.Second)
	waiting["critical"] = pending(s, newReq("b", memR, 32768, named("critical"), prio(critical), timeout(time.Hour)))
	waitQueued(t, s, memR, 2)
	// ... but it is ahead of a new HIGH (2 levels up after 29s > 2 agings).
	clk.Advance(time.Millisecond)
	waiting["high"] = pending(s, newReq("c", memR, 32768, named("high"), prio(high), timeout(time.Hour)))
	waitQueued(t, s, memR, 3)
	require.Equal(t, []string{"critical", "low", "high"}, grantOrder(t, s, hold.GetToken(), waiting))

	// Negative Aging: strict priority however long LOW waits.
	o.Aging = -1
	s2 := startServer(t, o)
	hold = mustGrant(t, s2, newReq("holder", memR, 32768, lasting(48*time.Hour)))
	waiting = map[string]<-chan *jimbotpb.ResourceResponse{
		"low": pending(s2, newReq("a", memR, 32768, named("low"), prio(low), timeout(48*time.Hour))),
	}
	waitQueued(t, s2, memR, 1)
	clk.Advance(10 * time.Hour)
	waiting["normal"] = pending(s2, newReq("b", memR, 32768, named("normal"), prio(normal), timeout(time.Hour)))
	waitQueued(t, s2, memR, 2)
	require.Equal(t, []string{"normal", "low"}, grantOrder(t, s2, hold.GetToken(), waiting))
}

func TestHeadOfLineIsNotOvertaken(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	hold := mustGrant(t, s, newReq("holder", cpuR, 10))
	big := pending(s, newReq("big", cpuR, 16, timeout(time.Minute)))
	waitQueued(t, s, cpuR, 1)
	// 6 cores are free, but the big request waits ahead: a small one with no
	// timeout is denied, one with a timeout queues behind it.
	d := ask(t, s, newReq("small", cpuR, 2))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "1 request(s) waiting ahead")
	small := pending(s, newReq("small", cpuR, 2, timeout(time.Minute)))
	waitQueued(t, s, cpuR, 2)
	// A CRITICAL small request goes to the head and fits at once.
	mustGrant(t, s, newReq("urgent", cpuR, 2, prio(critical)))
	require.True(t, release(t, s, hold.GetToken(), "").GetSuccess())
	// 14 free: big (16) still cannot run, and small stays behind it.
	require.Equal(t, 2, queued(s, cpuR))
	checkInvariant(t, s)
	clk.Advance(time.Minute)
	require.Equal(t, denied, recv(t, big).GetStatus())
	require.Equal(t, granted, recv(t, small).GetStatus(), "big's timeout unblocks small")
	checkInvariant(t, s)
}

func TestTimeout(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	mustGrant(t, s, newReq("holder", gpuR, 20000, lasting(10*time.Minute)))
	ch := pending(s, newReq("eval", gpuR, 10000, named("e1"), timeout(2*time.Second)))
	waitQueued(t, s, gpuR, 1)
	clk.Advance(1999 * time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("answered before its timeout: %v", r)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Millisecond)
	r := recv(t, ch)
	require.Equal(t, denied, r.GetStatus())
	require.Equal(t, "e1", r.GetRequestId())
	require.Contains(t, r.GetMessage(), "timed out after 2s in the queue")
	require.Contains(t, r.GetMessage(), "GPU: asked 10000 MB")
	require.Equal(t, 2*time.Second, r.GetWaited().AsDuration())
	require.Equal(t, 0, queued(s, gpuR))
	checkInvariant(t, s)
}

func TestExpiryReclaimsAndServesQueue(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	l := mustGrant(t, s, newReq("trainer", gpuR, 20000, lasting(10*time.Second)))
	ch := pending(s, newReq("infer", gpuR, 8000, timeout(time.Minute)))
	waitQueued(t, s, gpuR, 1)
	clk.Advance(9 * time.Second)
	require.Equal(t, 1, queued(s, gpuR))
	clk.Advance(time.Second)
	r := recv(t, ch)
	require.Equal(t, granted, r.GetStatus(), r.GetMessage())
	require.Equal(t, 10*time.Second, r.GetWaited().AsDuration())
	st := statusOf(t, s, gpuR)
	require.EqualValues(t, 8000, st.GetAllocated())
	require.Len(t, st.GetAllocations(), 1)
	require.Equal(t, "infer", st.GetAllocations()[0].GetComponent())

	rel := release(t, s, l.GetToken(), "trainer")
	require.False(t, rel.GetSuccess())
	require.Contains(t, rel.GetMessage(), "already expired")
	require.EqualValues(t, 8000, statusOf(t, s, gpuR).GetAllocated(), "a late release changes nothing")
	checkInvariant(t, s)

	// Expiry with nobody waiting, and no timer left behind afterwards.
	require.True(t, release(t, s, r.GetToken(), "infer").GetSuccess())
	mustGrant(t, s, newReq("kg", memR, 100, lasting(time.Second)))
	clk.Advance(time.Second)
	require.EqualValues(t, 0, statusOf(t, s, memR).GetAllocated())
	require.Equal(t, 0, clk.pendingTimers())
}

func TestReleaseChecksToken(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	a := mustGrant(t, s, newReq("trainer", gpuR, 4000, named("a")))
	f := func(token, component, want string) {
		t.Helper()
		r := release(t, s, token, component)
		require.False(t, r.GetSuccess())
		require.Contains(t, r.GetMessage(), want)
		require.EqualValues(t, 4000, statusOf(t, s, gpuR).GetAllocated())
		checkInvariant(t, s)
	}
	f("", "trainer", "token is required")
	f("not-a-token", "trainer", "unknown token")
	f(a.GetToken(), "inference", `belongs to component "trainer", not "inference"`)

	r := release(t, s, a.GetToken(), "trainer")
	require.True(t, r.GetSuccess(), r.GetMessage())
	require.Contains(t, r.GetMessage(), "released 4000 MB of GPU")
	r = release(t, s, a.GetToken(), "trainer")
	require.False(t, r.GetSuccess())
	require.Contains(t, r.GetMessage(), `lease "a" of "trainer" (GPU) was already released`)
	require.EqualValues(t, 0, statusOf(t, s, gpuR).GetAllocated())
	checkInvariant(t, s)
}

func TestSeveralGrantsToOneComponentAreSeparate(t *testing.T) {
	s := startServer(t, testOptions(newFakeClock()))
	a := mustGrant(t, s, newReq("kg", memR, 1000))
	b := mustGrant(t, s, newReq("kg", memR, 2000))
	require.NotEqual(t, a.GetToken(), b.GetToken())
	st := statusOf(t, s, memR)
	require.EqualValues(t, 3000, st.GetAllocated())
	require.Len(t, st.GetAllocations(), 2)
	require.True(t, release(t, s, a.GetToken(), "kg").GetSuccess())
	st = statusOf(t, s, memR)
	require.EqualValues(t, 2000, st.GetAllocated())
	require.Len(t, st.GetAllocations(), 1)
	require.EqualValues(t, 2000, st.GetAllocations()[0].GetQuantity())
	checkInvariant(t, s)
}

func TestClaudeBucketRefill(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk)) // 100 per hour, burst 10
	for range 10 {
		mustGrant(t, s, newReq("llm", claudeR, 1))
	}
	d := ask(t, s, newReq("llm", claudeR, 1))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "CLAUDE_API: asked 1 requests, 0 available now (100 per hour, burst 10)")
	require.Equal(t, 36*time.Second, d.GetRetryAfter().AsDuration(), "one request per 36s")

	// A waiter is woken by the refill, not by polling: one timer, at 36s.
	ch := pending(s, newReq("llm", claudeR, 1, named("w"), timeout(time.Minute)))
	waitQueued(t, s, claudeR, 1)
	clk.Advance(35 * time.Second)
	require.Equal(t, 1, queued(s, claudeR))
	clk.Advance(time.Second)
	r := recv(t, ch)
	require.Equal(t, granted, r.GetStatus(), r.GetMessage())

	// A wait longer than the timeout is denied at once with the retry time.
	d = ask(t, s, newReq("llm", claudeR, 2, timeout(time.Second)))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "after the 1s timeout")
	require.Equal(t, 72*time.Second, d.GetRetryAfter().AsDuration())

	// After an hour the bucket is full again, but never above the burst.
	clk.Advance(time.Hour)
	st := statusOf(t, s, claudeR)
	require.EqualValues(t, 10, st.GetAvailable())
	require.EqualValues(t, 100, st.GetTotalCapacity())
	require.Len(t, st.GetQuotas(), 1)
	require.Equal(t, "requests_per_hour", st.GetQuotas()[0].GetName())
}

func TestClaudeBeyondBurstIsDeniedAtOnce(t *testing.T) {
	s := startServer(t, testOptions(newFakeClock()))
	d := ask(t, s, newReq("llm", claudeR, 50, timeout(time.Hour)))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "requests_per_hour quota, which never holds more than 10")
	require.Contains(t, d.GetMessage(), "--claude-burst")
	require.Equal(t, 0, queued(s, claudeR))
}

func TestClaudeInputAndOutputQuota(t *testing.T) {
	clk := newFakeClock()
	o := testOptions(clk)
	o.ClaudeInputPerMinute = 1000
	o.ClaudeOutputPerMinute = 1000
	o.ClaudePerMinute = 5
	s := startServer(t, o)

	a := mustGrant(t, s, newReq("llm", claudeR, 1, meta("input_tokens", "600", "max_output_tokens", "800")))
	d := ask(t, s, newReq("llm", claudeR, 1, meta("input_tokens", "600")))
	require.Equal(t, denied, d.GetStatus())
	// 200 input units missing at 1000/min: 12s.
	require.Equal(t, 12*time.Second, d.GetRetryAfter().AsDuration())

	clk.Advance(12 * time.Second) // input back to 400+200=600; output 200+200=400
	d = ask(t, s, newReq("llm", claudeR, 1, meta("max_output_tokens", "800")))
	require.Equal(t, denied, d.GetStatus())
	require.Equal(t, 24*time.Second, d.GetRetryAfter().AsDuration())

	// Bad refund metadata: refused, nothing changes.
	r := release(t, s, a.GetToken(), "llm", "output_tokens_used", "lots")
	require.False(t, r.GetSuccess())
	require.Contains(t, r.GetMessage(), "output_tokens_used")
	require.EqualValues(t, 1, statusOf(t, s, claudeR).GetAllocated())

	// Using 100 of the 800 reserved refunds 700: 400+700 capped at 1000.
	r = release(t, s, a.GetToken(), "llm", "output_tokens_used", "100")
	require.True(t, r.GetSuccess(), r.GetMessage())
	require.Contains(t, r.GetMessage(), "refunded 700")
	mustGrant(t, s, newReq("llm", claudeR, 1, meta("max_output_tokens", "800")))

	quotas := map[string]int64{}
	for _, q := range statusOf(t, s, claudeR).GetQuotas() {
		quotas[q.GetName()] = q.GetAvailable()
	}
	require.Equal(t, map[string]int64{"requests_per_hour": 8, "requests_per_minute": 4, "input_per_minute": 600, "output_per_minute": 200}, quotas)

	// More than a bucket holds: denied at once.
	d = ask(t, s, newReq("llm", claudeR, 1, meta("max_output_tokens", "1001"), timeout(time.Hour)))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "output_per_minute")

	// The per-minute request bucket caps at 5 per minute.
	mustGrant(t, s, newReq("llm", claudeR, 3))
	d = ask(t, s, newReq("llm", claudeR, 2))
	require.Equal(t, denied, d.GetStatus())
	require.Equal(t, 12*time.Second, d.GetRetryAfter().AsDuration())
	checkInvariant(t, s)
}

func TestQueueHeapOrder(t *testing.T) {
	for _, aging := range []time.Duration{-1, 10 * time.Second} {
		q := waitQueue{aging: aging}
		rng := rand.New(rand.NewPCG(1, 2))
		t0 := time.Unix(1000, 0)
		var all []*waiter
		for i := range 500 {
			p := int32(1 + rng.IntN(4))
			at := t0.Add(time.Duration(rng.IntN(100)) * time.Second)
			w := &waiter{req: request{priority: p}, key: q.keyOf(at, p), seq: uint64(i)}
			q.push(w)
			all = append(all, w)
			if rng.IntN(3) == 0 {
				v := all[rng.IntN(len(all))]
				if v.idx >= 0 {
					q.remove(v)
				}
			}
		}
		var prev *waiter
		for q.len() > 0 {
			w := q.peek()
			q.remove(w)
			if prev != nil {
				require.False(t, q.less(w, prev), "heap order broken")
			}
			prev = w
		}
	}
}
