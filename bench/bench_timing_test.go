package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/jimbot/jimbus/internal/cputime"
)

// deliveryTimeout bounds the wait for a subscriber to receive what a
// benchmark sent.
const deliveryTimeout = time.Minute

// httpServers are the servers of the ingest benchmarks, JimBus first.
var httpServers = []string{"jimbus", "fastsonic", "nethttp", "discard"}

// batchServers adds, for the batch benchmarks, JimBus without the typed
// oneof view (decode.Options.NoTypedView): what the typed view costs.
var batchServers = []string{"jimbus", "jimbus_json", "fastsonic", "nethttp", "discard"}

// BenchmarkIngestBatch50: POST /api/v1/events/batch of a ~25 KB 50-event
// batch with fresh event ids, over a real loopback listener, side by side:
// JimBus (into its fan-out, one subscriber drained in process), the bare
// fasthttp + sonic decode-and-discard server, the net/http + encoding/json
// bus (its subscriber drained the same way) and the read-and-discard HTTP
// ceiling. Targets: jimbus/fastsonic >= 0.9, jimbus/nethttp >= 3.
func BenchmarkIngestBatch50(b *testing.B) {
	body, offs := batchBody(b)
	benchIngest(b, batchServers, pathBatch, body, offs, batchEvents)
}

// BenchmarkSingleEvent: POST /api/v1/events of one small event (a 221-byte
// HEARTBEAT with a fresh id), the same servers. Target: jimbus/fastsonic >=
// 0.9.
func BenchmarkSingleEvent(b *testing.B) {
	body, offs := eventBody(b)
	benchIngest(b, httpServers, pathEvent, body, offs, 1)
}

func benchIngest(b *testing.B, servers []string, path string, body []byte, offs []int, perReq int) {
	rates := map[string]float64{}
	for _, name := range servers {
		s := startServer(b, name)
		var cnt *counter
		if s.Subscribe != nil {
			ctx, cancel := context.WithCancel(context.Background())
			c, done, err := subscribeInProcess(ctx, s)
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			cnt = c
			b.Cleanup(func() { cancel(); <-done })
		}
		hc := newClient(s.HTTPAddr, concurrency())
		b.Run("server="+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			if cnt != nil {
				cnt.expect(perReq * b.N)
			}
			b.ResetTimer()
			retries.Store(0)
			cpu0 := cputime.Process()
			drive(b, hc, s.HTTPAddr, path, body, offs)
			if cnt != nil {
				if err := cnt.wait(deliveryTimeout); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			rates[name] = reportEvents(b, perReq*b.N, cputime.Process()-cpu0)
		})
		hc.CloseIdleConnections()
	}
	logRatios(b, rates, "jimbus_json", "fastsonic", "nethttp", "discard")
}

// BenchmarkEndToEnd: the 50-event batches through the real HTTP listener to
// a real gRPC subscriber on ">" over loopback, all in this process; events/s
// counted at the subscriber, which must receive every event before the
// benchmark ends. JimBus beside the net/http + encoding/json bus. Target:
// jimbus >= 500,000 events/s.
func BenchmarkEndToEnd(b *testing.B) {
	body, offs := batchBody(b)
	rates := map[string]float64{}
	for _, name := range []string{"jimbus", "jimbus_json", "nethttp"} {
		e := startEndToEnd(b, name)
		b.Run("server="+name, func(b *testing.B) {
			rates[name] = e.run(b, body, offs)
		})
	}
	logRatios(b, rates, "jimbus_json", "nethttp")
}

// endToEnd is a server with a real gRPC subscriber and an HTTP client.
type endToEnd struct {
	s   *Server
	sub *grpcSubscriber
	hc  *fasthttp.HostClient
}

// startEndToEnd starts the named server and subscribes to it over gRPC;
// both stop when tb ends.
func startEndToEnd(tb testing.TB, name string) *endToEnd {
	s := startServer(tb, name)
	sub, err := subscribeGRPC(s)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sub.close)
	hc := newClient(s.HTTPAddr, concurrency())
	tb.Cleanup(hc.CloseIdleConnections)
	return &endToEnd{s: s, sub: sub, hc: hc}
}

// run posts b.N batches and waits until the subscriber has all their
// events; it reports and returns events/s.
func (e *endToEnd) run(b *testing.B, body []byte, offs []int) float64 {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	events := batchEvents * b.N
	e.sub.cnt.expect(events)
	b.ResetTimer()
	retries.Store(0)
	cpu0 := cputime.Process()
	drive(b, e.hc, e.s.HTTPAddr, pathBatch, body, offs)
	if err := e.sub.cnt.wait(deliveryTimeout); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return reportEvents(b, events, cputime.Process()-cpu0)
}

// reportEvents reports events/s over the benchmark's elapsed time and,
// from the CPU time the process used meanwhile (client, server and
// subscriber together), the CPU cost of an event (cpu-ns/event: the figure
// least disturbed by other work on a shared machine) and the cores used
// (cpus: below the machine's count, something waits).
func reportEvents(b *testing.B, events int, cpu time.Duration) float64 {
	el := b.Elapsed()
	rate := float64(events) / el.Seconds()
	b.ReportMetric(rate, "events/s")
	if r := retries.Swap(0); r > 0 {
		b.ReportMetric(float64(r)/float64(b.N), "retries/op")
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
		b.ReportMetric(cpu.Seconds()/el.Seconds(), "cpus")
	}
	return rate
}

// logRatios logs JimBus's events/s over each other server's, from the last
// run of each sub-benchmark (the one reported). `make bench-compare` computes
// the same ratios over -count runs.
func logRatios(b *testing.B, rates map[string]float64, others ...string) {
	j, ok := rates["jimbus"]
	if !ok {
		return
	}
	var sb strings.Builder
	for _, o := range others {
		if r, ok := rates[o]; ok && r > 0 {
			fmt.Fprintf(&sb, " jimbus/%s=%.2f", o, j/r)
		}
	}
	if sb.Len() > 0 {
		b.Logf("events/s ratios:%s (jimbus %.0f events/s)", sb.String(), j)
	}
}
