package ingest

import (
	"bytes"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jimbot/jimbus/ingest/decode"
)

// benchBody builds a 50-event batch from the real example request: one
// GAME_STATE (8.9 KB, as in a real state batch) and 49 small events, or 50
// small events. It returns the offsets of the event ids, which each request
// rewrites so that its events are new to the resend window.
func benchBody(tb testing.TB, withState bool) (body []byte, idOffs []int) {
	tb.Helper()
	raw, err := os.ReadFile("../testdata/balatromcp/request_batch_state_change.json")
	if err != nil {
		tb.Fatal(err)
	}
	var req struct{ Events []json.RawMessage }
	if err := json.Unmarshal(raw, &req); err != nil {
		tb.Fatal(err)
	}
	small, state := req.Events[:5], req.Events[5]
	body = append(body, `{"source":"BalatroMCP","timestamp":1751439182000,"batch_id":"de39f1f4-7dfc-49c0-b364-72c1dbe6fd38","events":[`...)
	idKey := []byte(`"event_id":"`)
	for i := range 50 {
		ev := small[i%len(small)]
		if withState && i == 0 {
			ev = state
		}
		if i > 0 {
			body = append(body, ',')
		}
		idOffs = append(idOffs, len(body)+bytes.LastIndex(ev, idKey)+len(idKey))
		body = append(body, ev...)
	}
	body = append(body, "]}"...)
	return body, idOffs
}

const hexDigitsUpper = "0123456789ABCDEF"

// stampIDs writes 16 hex digits of a unique number into each event id.
func stampIDs(body []byte, offs []int, n uint64) {
	for j, off := range offs {
		v := n<<8 | uint64(j)
		for k := 15; k >= 0; k-- {
			body[off+k] = hexDigitsUpper[v&0xf]
			v >>= 4
		}
	}
}

// BenchmarkIngest drives the handler in process (no network) with a 50-event
// batch: decode, resend window check-and-mark, publish to a publisher that
// releases at once, answer. Every request's events are new.
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct {
		name      string
		withState bool
	}{{"state+49", true}, {"small50", false}} {
		body, offs := benchBody(b, tc.withState)
		b.Run(tc.name, func(b *testing.B) {
			s, err := New(Options{}, &releaser{})
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			req := newBenchReq("POST", "/api/v1/events/batch", "application/json", body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			n := uint64(0)
			for b.Loop() {
				n++
				stampIDs(req.body, offs, n)
				req.serve(h)
			}
			if req.ctx.Response.StatusCode() != 200 || string(req.ctx.Response.Body()) != okBody {
				b.Fatalf("%d %s", req.ctx.Response.StatusCode(), req.ctx.Response.Body())
			}
			b.ReportMetric(float64(50*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(50*b.N), "ns/event")
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			s, err := New(Options{}, &releaser{})
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			var salt atomic.Uint64
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				req := newBenchReq("POST", "/api/v1/events/batch", "application/json", bytes.Clone(body))
				n := salt.Add(1) << 40
				for pb.Next() {
					n++
					stampIDs(req.body, offs, n)
					req.serve(h)
					if req.ctx.Response.StatusCode() != 200 {
						b.Errorf("status %d", req.ctx.Response.StatusCode())
						return
					}
				}
			})
			b.ReportMetric(float64(50*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(50*b.N), "ns/event")
		})
	}
	// For comparison, the decoder alone on the same body: what the handler
	// adds (routing, resend window, publish, answer, metrics) is the
	// difference.
	b.Run("state+49/decode-only", func(b *testing.B) {
		body, offs := benchBody(b, true)
		dec := decode.New(decode.Options{})
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		n := uint64(0)
		for b.Loop() {
			n++
			stampIDs(body, offs, n)
			r := dec.Decode(decode.KindBatch, body, 1)
			r.Batch.Release()
			dec.ReleaseResult(r)
		}
		b.ReportMetric(float64(50*b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(50*b.N), "ns/event")
	})
	// The resend path: the same 50 events again and again (acknowledged,
	// nothing published).
	body, _ := benchBody(b, true)
	b.Run("state+49/resends", func(b *testing.B) {
		s, err := New(Options{}, &releaser{})
		if err != nil {
			b.Fatal(err)
		}
		h := s.Handler()
		req := newBenchReq("POST", "/api/v1/events/batch", "application/json", body)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			req.serve(h)
		}
		b.ReportMetric(float64(50*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkIngestSingle drives the handler in process with one small event
// a request (POST /api/v1/events), a new event id each time: the per-request
// costs that a batch spreads over its events.
func BenchmarkIngestSingle(b *testing.B) {
	body := []byte(`{"type":"HEARTBEAT","source":"BalatroMCP","timestamp":1751439182000,"event_id":"0000000000000000",` +
		`"payload":{"game_state":"MENU","headless":true,"version":"1.0","uptime":123}}`)
	offs := []int{bytes.Index(body, []byte(`"event_id":"`)) + len(`"event_id":"`)}
	s, err := New(Options{}, &releaser{})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	req := newBenchReq("POST", "/api/v1/events", "application/json", body)
	b.ReportAllocs()
	n := uint64(0)
	for b.Loop() {
		n++
		stampIDs(req.body, offs, n)
		req.serve(h)
	}
	if req.ctx.Response.StatusCode() != 200 {
		b.Fatalf("%d %s", req.ctx.Response.StatusCode(), req.ctx.Response.Body())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
