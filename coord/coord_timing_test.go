package coord

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"google.golang.org/grpc"
)

// callers is the number of concurrent callers the figures are quoted for.
const callers = 8

// latencies collects per-operation latencies from RunParallel goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// report sorts the latencies and reports p50 and p99 (µs) under prefix.
func (l *latencies) report(b *testing.B, prefix string) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	q := func(p float64) float64 {
		return float64(l.all[min(len(l.all)-1, int(p*float64(len(l.all))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.50), prefix+"p50-µs")
	b.ReportMetric(q(0.99), prefix+"p99-µs")
}

// parallel runs f in n goroutines (RunParallel starts parallelism x
// GOMAXPROCS of them: exactly n when GOMAXPROCS divides n).
func parallel(b *testing.B, n int, f func(pb *testing.PB)) {
	b.SetParallelism((n + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(f)
}

func benchOptions() Options {
	return Options{
		DisableNVML: true,
		MemoryMB:    1 << 20,
		CPUCores:    1024,
		GPUSlices:   64,
		ClaudeBurst: 1 << 20, ClaudePerHour: 1 << 30,
		Logger: quietLogger(),
	}
}

// BenchmarkRequestRelease is the in-process decision latency: one
// RequestResource (granted at once) plus its ReleaseResource, by 8
// concurrent callers. Target: p99 < 50 µs, met on the 2-core machine class;
// on a 16-core host the saturated lock's p99 passes 1 ms (sync.Mutex lets
// newcomers overtake a woken waiter), while the gRPC handler's stays near
// 0.1 ms (bench/RESULTS.md, "On the H100 host").
func BenchmarkRequestRelease(b *testing.B) {
	for _, c := range []struct {
		name string
		req  *jimbotpb.ResourceRequest
	}{
		{"memory", newReq("bench", memR, 1)},
		{"gpu", newReq("bench", gpuR, 100)},
		{"claude", newReq("bench", claudeR, 1)},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := startServer(b, benchOptions())
			ctx := context.Background()
			var lat latencies
			b.ReportAllocs()
			b.ResetTimer()
			parallel(b, callers, func(pb *testing.PB) {
				mine := make([]time.Duration, 0, b.N/callers+16)
				for pb.Next() {
					t0 := time.Now()
					r, err := s.RequestResource(ctx, c.req)
					if err != nil || r.GetStatus() != granted {
						b.Errorf("request: %v %v", err, r)
						return
					}
					rel, err := s.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: r.GetToken()})
					if err != nil || !rel.GetSuccess() {
						b.Errorf("release: %v %v", err, rel)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				lat.add(mine)
			})
			b.StopTimer()
			lat.report(b, "")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkRequestReleaseContended is the same with room for only 4 leases:
// half the callers wait in the queue and are handed the capacity by the
// release (a channel close), the path a waiting request takes.
func BenchmarkRequestReleaseContended(b *testing.B) {
	o := benchOptions()
	o.CPUCores = callers / 2
	s := startServer(b, o)
	ctx := context.Background()
	req := newReq("bench", cpuR, 1, timeout(time.Minute))
	var lat latencies
	b.ReportAllocs()
	b.ResetTimer()
	parallel(b, callers, func(pb *testing.PB) {
		mine := make([]time.Duration, 0, b.N/callers+16)
		for pb.Next() {
			t0 := time.Now()
			r, err := s.RequestResource(ctx, req)
			if err != nil || r.GetStatus() != granted {
				b.Errorf("request: %v %v", err, r)
				return
			}
			mine = append(mine, time.Since(t0))
			if _, err := s.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: r.GetToken()}); err != nil {
				b.Errorf("release: %v", err)
				return
			}
		}
		lat.add(mine)
	})
	b.StopTimer()
	lat.report(b, "request-")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkGRPC is the same flow over gRPC on loopback, client and server
// in this process, on one connection: with 1 caller (the cost of an RPC) and
// with 8 concurrent callers. Target: p99 < 1 ms per RPC.
func BenchmarkGRPC(b *testing.B) {
	for _, n := range []int{1, callers} {
		b.Run(fmt.Sprintf("callers-%d", n), func(b *testing.B) { benchGRPC(b, n) })
	}
}

func benchGRPC(b *testing.B, n int) {
	s := startServer(b, benchOptions())
	// The handler's own time, to tell the coordinator's share of an RPC from
	// the transport's and the scheduler's.
	var handler latencies
	c, _ := serveGRPC(b, s, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo,
		h grpc.UnaryHandler) (any, error) {
		t0 := time.Now()
		resp, err := h(ctx, req)
		handler.add([]time.Duration{time.Since(t0)})
		return resp, err
	}))
	ctx := context.Background()
	req := newReq("bench", gpuR, 100, prio(high), lasting(time.Minute), timeout(time.Second))
	var reqLat, pairLat latencies
	b.ReportAllocs()
	b.ResetTimer()
	parallel(b, n, func(pb *testing.PB) {
		mineReq := make([]time.Duration, 0, b.N/n+16)
		minePair := make([]time.Duration, 0, b.N/n+16)
		for pb.Next() {
			t0 := time.Now()
			r, err := c.RequestResource(ctx, req)
			if err != nil || r.GetStatus() != granted {
				b.Errorf("request: %v %v", err, r)
				return
			}
			t1 := time.Now()
			rel, err := c.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: r.GetToken(), Component: "bench"})
			if err != nil || !rel.GetSuccess() {
				b.Errorf("release: %v %v", err, rel)
				return
			}
			mineReq = append(mineReq, t1.Sub(t0))
			minePair = append(minePair, time.Since(t0))
		}
		reqLat.add(mineReq)
		pairLat.add(minePair)
	})
	b.StopTimer()
	reqLat.report(b, "rpc-")
	pairLat.report(b, "pair-")
	handler.report(b, "handler-")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
