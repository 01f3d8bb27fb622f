package jetstream

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	"github.com/jimbot/jimbus/route"
)

// benchEvents is the events per request, as a BalatroMCP batch.
const benchEvents = 10

// benchPublish drives pub through ingest's HTTP handler (no socket) with
// concurrent requests of benchEvents events each, every event new, and
// reports events/s and the p50/p99 of a request: decoding, publishing, and
// for JetStream waiting for the acknowledgement of every event.
func benchPublish(b *testing.B, pub route.Publisher) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) { benchPublishClients(b, pub, par) })
	}
}

// benchPublishClients runs benchPublish with par x GOMAXPROCS concurrent
// clients (a game posts one request at a time; several games and bots
// post concurrently).
func benchPublishClients(b *testing.B, pub route.Publisher, par int) {
	srv, err := ingest.New(ingest.Options{Logger: testLogger(), PublishWait: time.Second}, pub)
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	var (
		seq     atomic.Int64
		mu      sync.Mutex
		all     []time.Duration
		failed  atomic.Int64
		reqSize atomic.Int64
	)
	b.ReportAllocs()
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		var body []byte
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := seq.Add(1)
			body = append(body[:0], `{"events":[`...)
			for i := range benchEvents {
				if i > 0 {
					body = append(body, ',')
				}
				body = fmt.Appendf(body, `{"type":"HEARTBEAT","source":"bench","event_id":"b-%d-%d","timestamp":1700000000000,`+
					`"payload":{"version":"1.0.0","uptime":12345,"headless":true,"game_state":"MENU"}}`, n, i)
			}
			body = append(body, `]}`...)
			reqSize.Store(int64(len(body)))
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/api/v1/events/batch")
			ctx.Request.Header.SetContentType("application/json")
			ctx.Request.SetBody(body)
			start := time.Now()
			h(&ctx)
			lat = append(lat, time.Since(start))
			if ctx.Response.StatusCode() != fasthttp.StatusOK {
				failed.Add(1)
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d requests not answered 200", f, len(all))
	}
	b.SetBytes(reqSize.Load())
	slices.Sort(all)
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all)*benchEvents)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkJetStreamPublish is the JetStream backend on an embedded server:
// "sync=always" syncs every write before acknowledging (the durable
// default), "sync=2m" syncs periodically.
func BenchmarkJetStreamPublish(b *testing.B) {
	for _, sync := range []time.Duration{0, 2 * time.Minute} {
		name := "sync=always"
		if sync > 0 {
			name = "sync=" + sync.String()
		}
		b.Run(name, func(b *testing.B) {
			emb, err := NewEmbedded(EmbeddedOptions{StoreDir: b.TempDir(), SyncInterval: sync})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := emb.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer emb.Stop(ctx)
			bus, err := New(Options{Embedded: emb, Logger: testLogger()})
			if err != nil {
				b.Fatal(err)
			}
			if err := bus.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer bus.Stop(ctx)
			benchPublish(b, bus)
		})
	}
}

// BenchmarkMemoryPublish is the memory backend (grpcout.Bus, no
// subscriber) under the same load, for comparison.
func BenchmarkMemoryPublish(b *testing.B) {
	bus, err := grpcout.New(grpcout.Options{Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := bus.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer bus.Stop(ctx)
	benchPublish(b, bus)
}
