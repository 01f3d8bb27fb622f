package bench

import (
	"context"
	"flag"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/jimbot/jimbus/internal/cputime"
)

var (
	pairSlice = flag.Duration("pair-slice", 100*time.Millisecond, "BenchmarkPaired: how long each server runs in one slice")
	pairWith  = flag.String("pair-with", "jimbus", "BenchmarkPaired: the server measured against fastsonic (jimbus, or jimbus_json: a subscriber that wants the JSON view only, so no typed view is built)")
)

// BenchmarkPaired measures JimBus beside the bare fasthttp + sonic server
// in alternating slices of -pair-slice each (J F, then F J, ...), one pair
// per benchmark iteration, instead of one server for the whole -benchtime
// and then the other: both meet the same load from other tenants of the
// machine within a fraction of a second, so the ratio of each pair is
// little disturbed by it. It reports the median over the pairs of the
// per-CPU ratio (events per CPU-second of the process, JimBus over
// fastsonic) and of the events/s ratio, and the events/s and CPU an event of
// each server over all slices. JimBus's in-process subscriber must have
// every event of a slice before the next slice starts. Run it with e.g.
// -benchtime 50x (50 pairs, ~10 s at the default slice); -pair-with
// jimbus_json measures JimBus without the typed view (its metrics keep the
// "jimbus" names).
func BenchmarkPaired(b *testing.B) {
	batch, batchOffs := batchBody(b)
	single, singleOffs := eventBody(b)
	for _, c := range []struct {
		name, path string
		body       []byte
		offs       []int
		perReq     int
	}{
		{"IngestBatch50", pathBatch, batch, batchOffs, batchEvents},
		{"SingleEvent", pathEvent, single, singleOffs, 1},
	} {
		b.Run("body="+c.name, func(b *testing.B) {
			j := startPairServer(b, *pairWith)
			f := startPairServer(b, "fastsonic")
			// One slice each unmeasured: pools, the resend window's pages,
			// the connections.
			for _, p := range []*pairServer{j, f} {
				p.slice(b, c.path, c.body, c.offs, c.perReq)
				p.total = sliceResult{}
			}
			b.ResetTimer()
			var perCPU, perSec []float64
			for i := range b.N {
				first, second := j, f
				if i%2 == 1 {
					first, second = f, j
				}
				rf := first.slice(b, c.path, c.body, c.offs, c.perReq)
				rs := second.slice(b, c.path, c.body, c.offs, c.perReq)
				rj, rfs := rf, rs
				if first != j {
					rj, rfs = rs, rf
				}
				perCPU = append(perCPU, rj.perCPU()/rfs.perCPU())
				perSec = append(perSec, rj.perSec()/rfs.perSec())
			}
			b.ReportMetric(median(perCPU), "ratio-per-cpu")
			b.ReportMetric(median(perSec), "ratio-events/s")
			b.ReportMetric(j.total.perSec(), "jimbus-events/s")
			b.ReportMetric(f.total.perSec(), "fastsonic-events/s")
			b.ReportMetric(1e9/j.total.perCPU(), "jimbus-cpu-ns/event")
			b.ReportMetric(1e9/f.total.perCPU(), "fastsonic-cpu-ns/event")
		})
	}
}

// pairServer is one server of BenchmarkPaired with its client.
type pairServer struct {
	s      *Server
	hc     *fasthttp.HostClient
	cnt    *counter // JimBus's in-process subscriber; nil for fastsonic
	sent   int64    // events posted to it so far
	total  sliceResult
	client context.Context // the pprof labels of its client goroutines
}

// startPairServer starts the server name and its in-process subscriber
// under the pprof label srv=name, which their goroutines inherit; its
// clients are labelled srv=name-client. A CPU profile of BenchmarkPaired
// then splits by server: go tool pprof -tags, or -tagfocus srv=jimbus.
func startPairServer(b *testing.B, name string) (p *pairServer) {
	pprof.Do(context.Background(), pprof.Labels("srv", name), func(context.Context) {
		p = &pairServer{s: startServer(b, name), hc: newClient("", concurrency())}
		p.client = pprof.WithLabels(context.Background(), pprof.Labels("srv", name+"-client"))
		p.hc.Addr = p.s.HTTPAddr
		b.Cleanup(p.hc.CloseIdleConnections)
		if p.s.Subscribe != nil {
			ctx, cancel := context.WithCancel(context.Background())
			cnt, done, err := subscribeInProcess(ctx, p.s)
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			p.cnt = cnt
			b.Cleanup(func() { cancel(); <-done })
		}
	})
	return p
}

// sliceResult is what one or more slices posted, and the process's CPU
// time and the wall time they took.
type sliceResult struct {
	events   int64
	cpu, els time.Duration
}

func (r sliceResult) perCPU() float64 { return float64(r.events) / r.cpu.Seconds() }
func (r sliceResult) perSec() float64 { return float64(r.events) / r.els.Seconds() }

// slice posts body from concurrency() connections for -pair-slice, waits
// for the subscriber to have every event, and returns the slice's figures.
func (p *pairServer) slice(b *testing.B, path string, body []byte, offs []int, perReq int) sliceResult {
	var reqs atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	cpu0, t0 := cputime.Process(), time.Now()
	for range concurrency() {
		wg.Add(1)
		go func() {
			pprof.SetGoroutineLabels(p.client)
			defer wg.Done()
			req := newRequest(p.s.HTTPAddr, path, body)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := post(p.hc, req, resp, offs); err != nil {
					b.Error(err)
					return
				}
				reqs.Add(1)
			}
		}()
	}
	time.Sleep(*pairSlice)
	close(stop)
	wg.Wait()
	events := reqs.Load() * int64(perReq)
	p.sent += events
	if p.cnt != nil {
		p.cnt.target.Store(p.sent)
		if err := p.cnt.wait(deliveryTimeout); err != nil {
			b.Fatal(err)
		}
	}
	r := sliceResult{events: events, cpu: cputime.Process() - cpu0, els: time.Since(t0)}
	p.total.events += r.events
	p.total.cpu += r.cpu
	p.total.els += r.els
	return r
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
