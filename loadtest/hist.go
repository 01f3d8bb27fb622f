package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values below 2*histSub are counted exactly; above, each
// power of two is split into histSub equal sub-buckets, so every bucket is
// narrower than 1/histSub of its values (relative error under 0.8%).
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histMaxBits = 44 // values are clamped below 2^44 (ns: about 4.9 hours)
	histMax     = 1<<histMaxBits - 1
	histBuckets = (histMaxBits-histSubBits)*histSub + histSub
)

// Histogram is an HDR-style log-linear histogram of non-negative int64 values
// (nanoseconds, by convention). Record is lock-free and safe for concurrent
// use, as are the readers, which see a value of each counter that may be a
// little stale under concurrent recording. The zero value is ready to use.
type Histogram struct {
	count  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
	min    atomic.Int64 // stored as value+1 so that 0 means "none"
	counts [histBuckets]atomic.Uint64
}

func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	s := bits.Len64(uint64(v)) - histSubBits - 1
	return s*histSub + int(v>>s)
}

// histLow returns the smallest value of bucket i and the bucket's width.
func histLow(i int) (int64, int64) {
	if i < 2*histSub {
		return int64(i), 1
	}
	s := i/histSub - 1
	m := int64(i - s*histSub)
	return m << s, 1 << s
}

// Record adds one value; negative values count as 0, values at or above
// 2^44 as 2^44-1.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if v > histMax {
		v = histMax
	}
	h.counts[histIndex(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// RecordDuration adds d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Max returns the largest value recorded (0 when empty).
func (h *Histogram) Max() int64 { return h.max.Load() }

// Min returns the smallest value recorded (0 when empty).
func (h *Histogram) Min() int64 {
	if m := h.min.Load(); m > 0 {
		return m - 1
	}
	return 0
}

// Mean returns the exact mean of the values recorded (0 when empty).
func (h *Histogram) Mean() float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0 <= q <= 1): the highest value
// of the bucket that holds the ceil(q*Count())-th smallest value, capped at
// Max. It is at least the exact quantile and above it by less than 1/128 of
// it. 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			low, width := histLow(i)
			v := low + width - 1
			if m := h.Max(); v > m {
				v = m
			}
			if m := h.Min(); v < m {
				v = m
			}
			return v
		}
	}
	return h.Max()
}

// Merge adds the counts of o to h. o should not be recorded into meanwhile.
func (h *Histogram) Merge(o *Histogram) {
	if o.count.Load() == 0 {
		return
	}
	for i := range o.counts {
		if n := o.counts[i].Load(); n > 0 {
			h.counts[i].Add(n)
		}
	}
	h.count.Add(o.count.Load())
	h.sum.Add(o.sum.Load())
	for v := o.Max(); ; {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for v := o.min.Load(); v != 0; {
		m := h.min.Load()
		if (m != 0 && v >= m) || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// Latency is a summary of a Histogram of nanoseconds, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns the count, mean, p50, p90, p99, p99.9 and max in ms.
func (h *Histogram) Summary() Latency {
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	return Latency{
		Count: h.Count(),
		Mean:  h.Mean() / 1e6,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}
