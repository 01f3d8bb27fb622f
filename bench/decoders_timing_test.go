package bench

import (
	"testing"

	"github.com/jimbot/jimbus/bench/fastsonic"
	"github.com/jimbot/jimbus/ingest/decode"
)

// BenchmarkDecoders: the two decoders of BenchmarkPaired alone, on its
// bodies, no HTTP: JimBus's (typed view, and without it) and the fastsonic
// baseline's sonic decode into its five-field struct. What the paired ratio
// loses beyond their difference is the rest of the server. Decoded in a
// loop, the code runs warm; in the server, every request's decode starts
// after the kernel's socket path (bench/RESULTS.md, "Single events").
func BenchmarkDecoders(b *testing.B) {
	batch, _ := batchBody(b)
	single, _ := eventBody(b)
	for _, body := range []struct {
		name  string
		kind  decode.Kind
		body  []byte
		n     int
		sonic func(*fastsonic.Batch, *fastsonic.Event) int
	}{
		{"IngestBatch50", decode.KindBatch, batch, batchEvents, func(bt *fastsonic.Batch, _ *fastsonic.Event) int {
			if err := bt.Decode(batch); err != nil {
				b.Fatal(err)
			}
			return len(bt.Events)
		}},
		{"SingleEvent", decode.KindEvent, single, 1, func(_ *fastsonic.Batch, ev *fastsonic.Event) int {
			*ev = fastsonic.Event{}
			if err := fastsonic.DecodeEvent(single, ev); err != nil || ev.Type == "" {
				b.Fatal(err, ev.Type)
			}
			return 1
		}},
	} {
		perEvent := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(body.n*b.N), "ns/event")
		}
		for _, c := range []struct {
			name string
			opts decode.Options
		}{{"jimbus", decode.Options{}}, {"jimbus_notyped", decode.Options{NoTypedView: true}}} {
			b.Run("body="+body.name+"/decoder="+c.name, func(b *testing.B) {
				d := decode.New(c.opts)
				b.SetBytes(int64(len(body.body)))
				b.ReportAllocs()
				for b.Loop() {
					r := d.Decode(body.kind, body.body, 1)
					if r.Accepted != body.n {
						b.Fatal(string(r.AppendError(nil)))
					}
					r.Batch.Release()
					d.ReleaseResult(r)
				}
				perEvent(b)
			})
		}
		b.Run("body="+body.name+"/decoder=fastsonic", func(b *testing.B) {
			bt := fastsonic.Batch{Events: make([]fastsonic.Event, 0, 64)}
			var ev fastsonic.Event
			b.SetBytes(int64(len(body.body)))
			b.ReportAllocs()
			for b.Loop() {
				if n := body.sonic(&bt, &ev); n != body.n {
					b.Fatal(n)
				}
			}
			perEvent(b)
		})
	}
}
