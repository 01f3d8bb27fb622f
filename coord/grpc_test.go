package coord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// serveGRPC starts s's service on a real gRPC server on 127.0.0.1 and
// returns a client connected to it; both go away at the end of the test.
func serveGRPC(t testing.TB, s *Server, opts ...grpc.ServerOption) (jimbotpb.ResourceCoordinatorClient, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(opts...)
	s.Register(gs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
		<-served
	})
	return jimbotpb.NewResourceCoordinatorClient(conn), conn
}

func startGRPC(t testing.TB, o Options) (*Server, jimbotpb.ResourceCoordinatorClient) {
	t.Helper()
	s := startServer(t, o)
	c, _ := serveGRPC(t, s)
	return s, c
}

func rpcAsk(t testing.TB, c jimbotpb.ResourceCoordinatorClient, r *jimbotpb.ResourceRequest) *jimbotpb.ResourceResponse {
	t.Helper()
	resp, err := c.RequestResource(context.Background(), r)
	require.NoError(t, err)
	return resp
}

func rpcRelease(t testing.TB, c jimbotpb.ResourceCoordinatorClient, token, component string) *jimbotpb.ReleaseResponse {
	t.Helper()
	resp, err := c.ReleaseResource(context.Background(), &jimbotpb.ReleaseRequest{Token: token, Component: component})
	require.NoError(t, err)
	return resp
}

func rpcStatus(t testing.TB, c jimbotpb.ResourceCoordinatorClient, r jimbotpb.ResourceType) []*jimbotpb.ResourceStatus {
	t.Helper()
	resp, err := c.GetResourceStatus(context.Background(), &jimbotpb.ResourceStatusRequest{Resource: r})
	require.NoError(t, err)
	require.NotNil(t, resp.GetTimestamp())
	return resp.GetStatuses()
}

// The Python client's first flow: GPU 4000 MB grant -> status -> release.
func TestGRPCGrantStatusRelease(t *testing.T) {
	_, c := startGRPC(t, testOptions(systemClock{}))
	r := rpcAsk(t, c, &jimbotpb.ResourceRequest{
		RequestId: "test-gpu-1", Component: "test_client", Resource: gpuR, Quantity: 4000,
		Priority: high, Timeout: durationpb.New(5 * time.Second), Duration: durationpb.New(60 * time.Second),
	})
	require.Equal(t, granted, r.GetStatus(), r.GetMessage())
	require.Equal(t, "test-gpu-1", r.GetRequestId())
	require.EqualValues(t, 4000, r.GetGrantedQuantity())
	require.NotEmpty(t, r.GetToken())
	require.Equal(t, 60*time.Second, r.GetExpiresAt().AsTime().Sub(r.GetGrantedAt().AsTime()))

	st := rpcStatus(t, c, gpuR)
	require.Len(t, st, 1)
	require.EqualValues(t, 24000, st[0].GetTotalCapacity())
	require.EqualValues(t, 4000, st[0].GetAllocated())
	require.EqualValues(t, 20000, st[0].GetAvailable())
	require.Len(t, st[0].GetAllocations(), 1)
	a := st[0].GetAllocations()[0]
	require.Equal(t, "test-gpu-1", a.GetRequestId())
	require.Equal(t, "test_client", a.GetComponent())
	require.EqualValues(t, 4000, a.GetQuantity())

	all := rpcStatus(t, c, jimbotpb.ResourceType_RESOURCE_TYPE_UNSPECIFIED)
	require.Len(t, all, 4)
	for i, want := range []jimbotpb.ResourceType{gpuR, claudeR, memR, cpuR} {
		require.Equal(t, want, all[i].GetResource())
	}

	rel := rpcRelease(t, c, r.GetToken(), "test_client")
	require.True(t, rel.GetSuccess(), rel.GetMessage())
	require.EqualValues(t, 0, rpcStatus(t, c, gpuR)[0].GetAllocated())
	rel = rpcRelease(t, c, r.GetToken(), "test_client")
	require.False(t, rel.GetSuccess())
}

// The second flow: GPU 8000 + Claude 50 + memory 4096. With the default burst
// of 10, 50 Claude requests at once are denied at once, with a reason; with a
// burst of 100 (the earlier mock's hourly capacity) all three are granted.
func TestGRPCGPUClaudeMemory(t *testing.T) {
	flow := func(o Options) map[jimbotpb.ResourceType]*jimbotpb.ResourceResponse {
		_, c := startGRPC(t, o)
		out := map[jimbotpb.ResourceType]*jimbotpb.ResourceResponse{}
		for _, q := range []struct {
			r   jimbotpb.ResourceType
			qty int32
		}{{gpuR, 8000}, {claudeR, 50}, {memR, 4096}} {
			out[q.r] = rpcAsk(t, c, newReq("multi_test", q.r, q.qty, timeout(time.Second)))
		}
		return out
	}
	got := flow(testOptions(systemClock{}))
	require.Equal(t, granted, got[gpuR].GetStatus())
	require.Equal(t, granted, got[memR].GetStatus())
	require.Equal(t, denied, got[claudeR].GetStatus())
	require.Contains(t, got[claudeR].GetMessage(), "never holds more than 10")

	o := testOptions(systemClock{})
	o.ClaudeBurst = 100
	got = flow(o)
	for r, resp := range got {
		require.Equal(t, granted, resp.GetStatus(), "%s: %s", r, resp.GetMessage())
	}
	require.EqualValues(t, 50, got[claudeR].GetGrantedQuantity())
}

// The third flow: 5 concurrent requests of 2000 MB.
func TestGRPCFiveConcurrent(t *testing.T) {
	run := func(slices int, hold time.Duration) (out []*jimbotpb.ResourceResponse, most int64) {
		o := testOptions(systemClock{})
		o.GPUSlices = slices
		s, c := startGRPC(t, o)
		out = make([]*jimbotpb.ResourceResponse, 5)
		var holding, maxHolding atomic.Int64
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				r, err := c.RequestResource(context.Background(),
					newReq(fmt.Sprintf("worker_%d", i), gpuR, 2000, timeout(30*time.Second)))
				if err != nil {
					t.Error(err)
					return
				}
				out[i] = r
				if r.GetStatus() != granted {
					return
				}
				n := holding.Add(1)
				for m := maxHolding.Load(); n > m && !maxHolding.CompareAndSwap(m, n); m = maxHolding.Load() {
				}
				time.Sleep(hold)
				holding.Add(-1)
				if _, err := c.ReleaseResource(context.Background(), &jimbotpb.ReleaseRequest{Token: r.GetToken()}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		checkInvariant(t, s)
		require.EqualValues(t, 0, statusOf(t, s, gpuR).GetAllocated())
		return out, maxHolding.Load()
	}
	// Five slices: every request is granted at once.
	out, _ := run(5, 20*time.Millisecond)
	for _, r := range out {
		require.Equal(t, granted, r.GetStatus(), r.GetMessage())
		require.Nil(t, r.GetWaited(), "nobody waits with 5 slices")
	}
	// One exclusive slice (the default): one at a time, the others wait.
	out, most := run(1, 50*time.Millisecond)
	waited := 0
	for _, r := range out {
		require.Equal(t, granted, r.GetStatus(), r.GetMessage())
		if r.GetWaited() != nil {
			waited++
		}
	}
	require.EqualValues(t, 1, most, "never two leases on one slice")
	require.Positive(t, waited)
}

// The fourth flow: 20000 then 10000 MB on a 24000 MB GPU.
func TestGRPCSecondLargeWaitsOrIsDenied(t *testing.T) {
	o := testOptions(systemClock{})
	o.GPUSlices = 4 // memory, not slices, is what runs out
	s, c := startGRPC(t, o)
	first := rpcAsk(t, c, newReq("large_1", gpuR, 20000))
	require.Equal(t, granted, first.GetStatus())

	second := rpcAsk(t, c, newReq("large_2", gpuR, 10000))
	require.Equal(t, denied, second.GetStatus())
	require.Contains(t, second.GetMessage(), "GPU: asked 10000 MB, available 4000 MB of 24000 MB")
	require.NotNil(t, second.GetRetryAfter())

	ch := make(chan *jimbotpb.ResourceResponse, 1)
	go func() {
		r, err := c.RequestResource(context.Background(), newReq("large_2", gpuR, 10000, timeout(10*time.Second)))
		if err != nil {
			r = &jimbotpb.ResourceResponse{Message: err.Error()}
		}
		ch <- r
	}()
	waitQueued(t, s, gpuR, 1)
	require.True(t, rpcRelease(t, c, first.GetToken(), "large_1").GetSuccess())
	r := recv(t, ch)
	require.Equal(t, granted, r.GetStatus(), r.GetMessage())
	require.NotNil(t, r.GetWaited())
}

// The fifth flow: all four priorities wait; they are served by priority.
func TestGRPCAllPriorities(t *testing.T) {
	s, c := startGRPC(t, testOptions(systemClock{}))
	hold := rpcAsk(t, c, newReq("holder", gpuR, 24000))
	require.Equal(t, granted, hold.GetStatus())
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	for _, p := range []jimbotpb.Priority{low, normal, high, critical} {
		wg.Go(func() {
			r, err := c.RequestResource(context.Background(),
				newReq("prio_"+p.String(), gpuR, 6000, prio(p), named(p.String()), timeout(10*time.Second)))
			if err != nil || r.GetStatus() != granted {
				t.Errorf("%s: %v %v", p, err, r)
				return
			}
			mu.Lock()
			order = append(order, r.GetRequestId())
			mu.Unlock()
			if _, err := c.ReleaseResource(context.Background(), &jimbotpb.ReleaseRequest{Token: r.GetToken()}); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, gpuR, 4)
	st := rpcStatus(t, c, gpuR)[0]
	require.EqualValues(t, 4, st.GetQueued())
	require.True(t, rpcRelease(t, c, hold.GetToken(), "holder").GetSuccess())
	wg.Wait()
	require.Equal(t, []string{"PRIORITY_CRITICAL", "PRIORITY_HIGH", "PRIORITY_NORMAL", "PRIORITY_LOW"}, order)
}

// Many clients at once, under -race: capacity is never exceeded, and when
// they are done nothing is left allocated or queued.
func TestGRPCManyClientsNeverExceedOrLeak(t *testing.T) {
	o := testOptions(systemClock{})
	o.GPUDevices, o.GPUMemoryMB, o.GPUSlices = 2, 8000, 3
	o.MemoryMB, o.CPUCores = 10000, 8
	o.ClaudeBurst, o.ClaudePerHour = 20, 3600*1000
	o.ClaudeOutputPerMinute = 100000
	s := startServer(t, o)
	clients := make([]jimbotpb.ResourceCoordinatorClient, 4)
	for i := range clients {
		clients[i], _ = serveGRPC(t, s)
	}

	stop := make(chan struct{})
	checked := make(chan int)
	go func() {
		n := 0
		defer func() { checked <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			s.mu.Lock()
			err := s.st.invariant()
			s.mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()

	var grants, denials, cancels atomic.Int64
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			c := clients[w%len(clients)]
			for i := range 40 {
				res := allResources[rng.IntN(len(allResources))]
				qty := int32(1 + rng.IntN(4))
				switch res {
				case gpuR:
					qty = int32(500 + rng.IntN(4000))
				case memR:
					qty = int32(500 + rng.IntN(5000))
				}
				req := newReq(fmt.Sprintf("w%d", w), res, qty, named(fmt.Sprintf("w%d-%d", w, i)),
					prio(jimbotpb.Priority(1+rng.IntN(4))), timeout(time.Duration(rng.IntN(30))*time.Millisecond))
				if rng.IntN(5) == 0 {
					req.Duration = durationpb.New(time.Duration(1+rng.IntN(5)) * time.Millisecond) // expires
				}
				if res == claudeR {
					req.Metadata = map[string]string{"max_output_tokens": "100"}
				}
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(8) == 0 {
					// The caller may give up after the grant was sent: that
					// response is lost and only expiry reclaims the lease
					// (a waiter cancelled before its grant is revoked).
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(10))*time.Millisecond)
					req.Duration = durationpb.New(20 * time.Millisecond)
				}
				r, err := c.RequestResource(ctx, req)
				cancel()
				if err != nil {
					if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Canceled {
						t.Errorf("request: %v", err)
					}
					cancels.Add(1)
					continue
				}
				if r.GetStatus() != granted {
					denials.Add(1)
					continue
				}
				grants.Add(1)
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Microsecond)
				rel, err := c.ReleaseResource(context.Background(), &jimbotpb.ReleaseRequest{
					Token: r.GetToken(), Component: req.GetComponent(), Metadata: map[string]string{"output_tokens_used": "10"}})
				if err != nil {
					t.Errorf("release: %v", err)
				} else if !rel.GetSuccess() && req.GetDuration() == nil {
					t.Errorf("release of a live lease failed: %s", rel.GetMessage())
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	require.Positive(t, <-checked)
	t.Logf("granted %d, denied %d, cancelled %d", grants.Load(), denials.Load(), cancels.Load())
	require.Positive(t, grants.Load())
	require.Positive(t, denials.Load())

	// Expiring leases end within milliseconds; then nothing is left.
	leftover := func() string {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := ""
		for _, l := range s.st.leases {
			out += fmt.Sprintf("%s %s %d MB for %s; ", l.requestID, l.resource, l.quantity, l.expiresAt.Sub(l.grantedAt))
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for leftover() != "" && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.Empty(t, leftover())
	for _, st := range rpcStatus(t, clients[0], jimbotpb.ResourceType_RESOURCE_TYPE_UNSPECIFIED) {
		require.Zero(t, st.GetAllocated(), st.GetResource().String())
		require.Zero(t, st.GetQueued(), st.GetResource().String())
		require.Empty(t, st.GetAllocations())
		if st.GetResource() != claudeR {
			require.Equal(t, st.GetTotalCapacity(), st.GetAvailable(), st.GetResource().String())
		}
	}
	checkInvariant(t, s)
}

func TestGRPCCancelledWaiterLeavesQueue(t *testing.T) {
	s, c := startGRPC(t, testOptions(systemClock{}))
	hold := rpcAsk(t, c, newReq("holder", gpuR, 1000))
	require.Equal(t, granted, hold.GetStatus())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.RequestResource(ctx, newReq("impatient", gpuR, 1000, timeout(time.Hour)))
	require.Equal(t, codes.DeadlineExceeded, status.Code(err))
	waitQueued(t, s, gpuR, 0)
	require.True(t, rpcRelease(t, c, hold.GetToken(), "").GetSuccess())
	require.EqualValues(t, 0, statusOf(t, s, gpuR).GetAllocated())
	checkInvariant(t, s)
}

// A waiter whose caller goes away at the moment it is granted must not keep
// the lease.
func TestCancelAfterGrantRevokes(t *testing.T) {
	clk := newFakeClock()
	s := startServer(t, testOptions(clk))
	hold := mustGrant(t, s, newReq("holder", gpuR, 1000))
	s.mu.Lock()
	r := request{component: "gone", resource: gpuR, priority: 2, quantity: 1000, timeout: time.Hour, lease: time.Hour}
	_, w := s.st.request(clk.Now(), &r)
	require.NotNil(t, w)
	s.mu.Unlock()
	require.True(t, release(t, s, hold.GetToken(), "").GetSuccess())
	<-w.done
	require.Equal(t, outGranted, w.res.outcome)
	s.mu.Lock()
	s.st.cancel(clk.Now(), w)
	s.afterLocked(clk.Now())
	s.mu.Unlock()
	require.EqualValues(t, 0, statusOf(t, s, gpuR).GetAllocated())
	checkInvariant(t, s)
}

func TestGRPCStreamPushesOnChange(t *testing.T) {
	clk := newFakeClock()
	s, c := startGRPC(t, testOptions(clk))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.StreamResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{})
	require.NoError(t, err)
	next := func() *jimbotpb.ResourceStatus {
		t.Helper()
		m, err := stream.Recv()
		require.NoError(t, err)
		return m
	}
	for _, want := range allResources {
		require.Equal(t, want, next().GetResource())
	}
	// A change pushes the resource that changed, and only it.
	r := mustGrant(t, s, newReq("trainer", gpuR, 4000))
	m := next()
	require.Equal(t, gpuR, m.GetResource())
	require.EqualValues(t, 4000, m.GetAllocated())
	require.Len(t, m.GetAllocations(), 1)
	require.True(t, release(t, s, r.GetToken(), "trainer").GetSuccess())
	m = next()
	require.Equal(t, gpuR, m.GetResource())
	require.EqualValues(t, 0, m.GetAllocated())
	mustGrant(t, s, newReq("kg", memR, 100))
	m = next()
	require.Equal(t, memR, m.GetResource())
	// Silence for 5s: the heartbeat resends everything.
	clk.Advance(5 * time.Second)
	for _, want := range allResources {
		require.Equal(t, want, next().GetResource())
	}
	// One resource only.
	one, err := c.StreamResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{Resource: cpuR})
	require.NoError(t, err)
	m, err = one.Recv()
	require.NoError(t, err)
	require.Equal(t, cpuR, m.GetResource())
	mustGrant(t, s, newReq("kg", memR, 100))
	mustGrant(t, s, newReq("w", cpuR, 2))
	m, err = one.Recv()
	require.NoError(t, err)
	require.Equal(t, cpuR, m.GetResource())
	require.EqualValues(t, 2, m.GetAllocated())
}

func TestGRPCStopEndsStreamsAndWaiters(t *testing.T) {
	s, err := New(testOptions(systemClock{}))
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	c, _ := serveGRPC(t, s)
	stream, err := c.StreamResourceStatus(context.Background(), &jimbotpb.ResourceStatusRequest{Resource: gpuR})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	hold := rpcAsk(t, c, newReq("holder", gpuR, 1000))
	require.Equal(t, granted, hold.GetStatus())
	_, err = stream.Recv()
	require.NoError(t, err)
	ch := make(chan *jimbotpb.ResourceResponse, 1)
	go func() {
		r, _ := c.RequestResource(context.Background(), newReq("w", gpuR, 1000, timeout(time.Hour)))
		ch <- r
	}()
	waitQueued(t, s, gpuR, 1)
	require.NoError(t, s.Stop(context.Background()))
	r := recv(t, ch)
	require.Equal(t, denied, r.GetStatus())
	require.Contains(t, r.GetMessage(), "stopping")
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	require.Equal(t, codes.Unavailable, status.Code(err))
	h, err := c.HealthCheck(context.Background(), &jimbotpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.False(t, h.GetHealthy())
}

func TestGRPCHealthCheck(t *testing.T) {
	clk := newFakeClock()
	o := testOptions(clk)
	o.Version = "1.2.3"
	_, c := startGRPC(t, o)
	clk.Advance(90 * time.Second)
	h, err := c.HealthCheck(context.Background(), &jimbotpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.True(t, h.GetHealthy())
	require.Equal(t, "1.2.3", h.GetVersion())
	require.EqualValues(t, 90, h.GetUptimeSeconds())
	require.Equal(t, "fallback: NVML disabled", h.GetMetadata()["gpu_source"])
	require.Equal(t, "1", h.GetMetadata()["gpu_devices"])
	_, err = c.RequestResource(context.Background(), newReq("x", 0, 1))
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}
