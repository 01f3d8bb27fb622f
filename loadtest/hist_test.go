package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// refQuantile is the exact quantile of sorted: the ceil(q*n)-th smallest.
func refQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform-small": func() int64 { return rng.Int64N(300) },
		"uniform-ms":    func() int64 { return 100_000 + rng.Int64N(10_000_000) },
		"exponential":   func() int64 { return int64(rng.ExpFloat64() * 400_000) },
		"lognormal":     func() int64 { return int64(math.Exp(12 + 2*rng.NormFloat64())) },
		"bimodal": func() int64 {
			if rng.IntN(100) == 0 {
				return 50_000_000 + rng.Int64N(1_000_000)
			}
			return 200_000 + rng.Int64N(50_000)
		},
		"constant": func() int64 { return 987_654 },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 20000)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			require.Equal(t, uint64(len(vals)), h.Count())
			require.Equal(t, vals[len(vals)-1], h.Max())
			require.Equal(t, vals[0], h.Min())
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			require.InDelta(t, sum/float64(len(vals)), h.Mean(), 1e-6*sum)
			for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				want := refQuantile(vals, q)
				got := h.Quantile(q)
				require.GreaterOrEqual(t, got, want, "q=%v", q)
				require.LessOrEqual(t, float64(got), float64(want)*(1+1.0/histSub)+1, "q=%v want %d got %d", q, want, got)
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose range holds it; buckets tile the
	// line without gaps.
	prevEnd := int64(0)
	for i := 0; i < histBuckets; i++ {
		low, width := histLow(i)
		require.Equal(t, prevEnd, low, "bucket %d", i)
		require.Equal(t, i, histIndex(low))
		require.Equal(t, i, histIndex(low+width-1))
		prevEnd = low + width
	}
	require.Equal(t, int64(histMax)+1, prevEnd)

	var h Histogram
	h.Record(-5)
	h.Record(math.MaxInt64)
	require.Equal(t, int64(0), h.Min())
	require.Equal(t, int64(histMax), h.Max())
	var empty Histogram
	require.Zero(t, empty.Quantile(0.5))
	require.Equal(t, Latency{}, empty.Summary())
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				a.Record(int64(g*10000 + i))
			}
		}()
	}
	wg.Wait()
	require.Equal(t, uint64(40000), a.Count())
	require.Equal(t, int64(39999), a.Max())
	b.Record(1_000_000)
	b.Merge(&a)
	require.Equal(t, uint64(40001), b.Count())
	require.Equal(t, int64(1_000_000), b.Max())
	require.Equal(t, int64(0), b.Min())
	got := b.Quantile(0.5)
	require.InDelta(t, 20000, got, 20000.0/histSub+1)
}
