package bench

import (
	"testing"

	"github.com/jimbot/jimbus/bench/fastsonic"
	"github.com/jimbot/jimbus/ingest/decode"
)

// BenchmarkDecoders: the two decoders of BenchmarkPaired alone, on its
// 50-event batch, no HTTP: JimBus's (typed view, and without it) and the
// fastsonic baseline's sonic.Unmarshal into its five-field struct. What the
// paired ratio loses beyond their difference is the rest of the server.
func BenchmarkDecoders(b *testing.B) {
	body, _ := batchBody(b)
	perEvent := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batchEvents*b.N), "ns/event")
	}
	for _, c := range []struct {
		name string
		opts decode.Options
	}{{"jimbus", decode.Options{}}, {"jimbus_notyped", decode.Options{NoTypedView: true}}} {
		b.Run("decoder="+c.name, func(b *testing.B) {
			d := decode.New(c.opts)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r := d.Decode(decode.KindBatch, body, 1)
				if r.Accepted != batchEvents {
					b.Fatal(string(r.AppendError(nil)))
				}
				r.Batch.Release()
				d.ReleaseResult(r)
			}
			perEvent(b)
		})
	}
	b.Run("decoder=fastsonic", func(b *testing.B) {
		var batch fastsonic.Batch
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := batch.Decode(body); err != nil || len(batch.Events) != batchEvents {
				b.Fatal(err, len(batch.Events))
			}
		}
		perEvent(b)
	})
}
