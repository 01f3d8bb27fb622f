package ingest

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestDedupWindow(t *testing.T) {
	const w = int64(10 * time.Minute)
	d := newDedup(w, 1<<20)
	k := uint64(0xabcdef) | 5<<58
	require.False(t, d.seen(k, 0))
	require.True(t, d.seen(k, 1))
	require.True(t, d.seen(k, w-1))
	require.False(t, d.seen(k, w), "expired after the window; marked again")
	require.True(t, d.seen(k, w+1))

	// A full bucket gives its oldest entry to a new event (and counts it).
	d = newDedup(w, 1<<20)
	bucketKey := func(i uint64) uint64 { return i*uint64(len(d.table)) | 7 } // the same bucket
	for i := range uint64(dedupWays) {
		require.False(t, d.seen(bucketKey(i+1), int64(i)))
	}
	require.False(t, d.seen(bucketKey(99), 10))
	require.False(t, d.seen(bucketKey(1), 11), "the oldest was evicted")
	require.True(t, d.seen(bucketKey(99), 12))
	require.True(t, d.seen(bucketKey(4), 13))
	n, evicted := d.stats()
	require.Equal(t, dedupWays, n)
	require.EqualValues(t, 2, evicted)
	// Expired entries are taken first, without counting an eviction.
	require.False(t, d.seen(bucketKey(50), w+10))
	_, evicted = d.stats()
	require.EqualValues(t, 2, evicted)
	require.True(t, d.seen(bucketKey(1), w+10), "the youngest (marked at 11) is still there")

	// forget undoes a mark, but not a later one.
	d = newDedup(w, 1<<20)
	require.False(t, d.seen(k, 100))
	d.forget(k, 100)
	require.False(t, d.seen(k, 200))
	d.forget(k, 100) // stale: k was marked again at 200
	require.True(t, d.seen(k, 300))
}

func TestDedupBounded(t *testing.T) {
	const maxEntries = 1024
	d := newDedup(int64(time.Hour), maxEntries)
	require.Equal(t, maxEntries, d.capacity())
	require.Equal(t, 1<<20, newDedup(1, 1<<20).capacity())
	require.Equal(t, 1<<19, newDedup(1, 1<<20-1).capacity(), "rounded down")
	require.Equal(t, dedupWays, newDedup(1, 1).capacity(), "at least one bucket")
	r := rand.New(rand.NewPCG(1, 2))
	var last uint64
	for i := range 100_000 {
		last = r.Uint64() | 1
		require.False(t, d.seen(last, int64(i)))
		if i%1000 == 0 {
			require.LessOrEqual(t, d.len(), maxEntries)
		}
	}
	require.LessOrEqual(t, d.len(), maxEntries)
	require.True(t, d.seen(last, 100_001), "the newest entry is still remembered")
}

func TestDedupOverHTTP(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	// The mod resends the same events (same event_id and timestamp) in new
	// batches: acknowledged, delivered once.
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", batch("b1", event("A", 1.5), event("B", 2.5))).body)
	for i := range 5 {
		require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch",
			batch("resend-"+strings.Repeat("x", i), event("A", 1.5), event("B", 2.5), event("C", 3.5))).body)
	}
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", batch("b3", event("A", 1.5))).body)
	require.Equal(t, []string{"A", "B", "C"}, ts.pub.ids())
	require.Equal(t, 2, ts.pub.batchCount(), "an all-duplicate batch is not published")

	// The same event_id with another timestamp is another event; a single
	// event is deduplicated like a batch's.
	require.Equal(t, okBody, ts.post(t, "/api/v1/events", event("A", 9.5)).body)
	require.Equal(t, okBody, ts.post(t, "/api/v1/events", event("A", 9.5)).body)
	require.Equal(t, []string{"A", "B", "C", "A"}, ts.pub.ids())

	// Events without event_id are never deduplicated.
	for range 3 {
		require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", batch("n", event("", 1.5), event("", 1.5))).body)
	}
	require.Len(t, ts.pub.got(), 4+6)
	require.Equal(t, float64(16), counterValue(t, ts.reg, "jimbus_ingest_events_deduplicated_total"))
}

func TestDedupWindowExpiry(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	ts := startServer(t, Options{DedupWindow: time.Minute}, nil, func(s *Server) {
		s.now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	post := func() { require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", batch("b", event("A", 1))).body) }
	post()
	clock.Add(int64(59 * time.Second))
	post()
	require.Equal(t, []string{"A"}, ts.pub.ids())
	clock.Add(int64(2 * time.Second)) // 61s after the first
	post()
	require.Equal(t, []string{"A", "A"}, ts.pub.ids())
}

func TestDedupOff(t *testing.T) {
	ts := startServer(t, Options{DedupWindow: -1}, nil)
	for range 3 {
		require.Equal(t, okBody, ts.post(t, "/api/v1/events", event("A", 1)).body)
	}
	require.Equal(t, []string{"A", "A", "A"}, ts.pub.ids())
}

// TestDedupSeenBatch: seenBatch answers as seen called on each key in turn,
// duplicates within the batch, zero keys and full buckets included.
func TestDedupSeenBatch(t *testing.T) {
	const w = int64(time.Minute)
	a, b := newDedup(w, 1<<12), newDedup(w, 1<<12)
	r := rand.New(rand.NewPCG(3, 4))
	var pool []uint64
	for round := range 2000 {
		n := r.IntN(seenBatchMax + 1)
		keys := make([]uint64, n)
		for i := range keys {
			switch x := r.IntN(10); {
			case x == 0:
				keys[i] = 0
			case x < 4 && len(pool) > 0:
				keys[i] = pool[r.IntN(len(pool))] // seen before, or earlier in this batch
			case x < 6:
				keys[i] = r.Uint64()&^(1<<12-1) | 5 // crowd one bucket of each shard
			default:
				keys[i] = r.Uint64() | 1
			}
			if keys[i] != 0 {
				pool = append(pool, keys[i])
			}
		}
		now := int64(round) * (w / 500)
		var dup [seenBatchMax]bool
		a.seenBatch(keys, now, &dup)
		for i, k := range keys {
			want := k != 0 && b.seen(k, now)
			require.Equal(t, want, dup[i], "round %d key %d", round, i)
		}
	}
	na, ea := a.stats()
	nb, eb := b.stats()
	require.Equal(t, nb, na)
	require.Equal(t, eb, ea)
	require.Positive(t, ea, "buckets were crowded")
}

// TestDedupConcurrent: goroutines marking the same keys in the same order
// at once, one at a time and in batches: every key is new to exactly one of
// them, and the counters add up.
func TestDedupConcurrent(t *testing.T) {
	const (
		workers = 8
		keys    = 1 << 15
		buckets = keys / 2
	)
	// Two keys a bucket, no evictions: every mark stays.
	d := newDedup(int64(time.Hour), buckets*dedupWays)
	firsts := make([]atomic.Int32, keys)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			var dup [seenBatchMax]bool
			for k := range keys {
				key := uint64(k+1)<<32 | uint64(k%buckets)
				if g%2 == 0 {
					if !d.seen(key, int64(g)) {
						firsts[k].Add(1)
					}
					continue
				}
				d.seenBatch([]uint64{key, 0, key}, int64(g), &dup)
				if dup[1] || !dup[2] {
					t.Errorf("key %d: %v, want [x false true]: a key given twice is a duplicate the second time", k, dup[:3])
					return
				}
				if !dup[0] {
					firsts[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range firsts {
		require.EqualValues(t, 1, firsts[k].Load(), "key %d", k)
	}
	n, evicted := d.stats()
	require.Equal(t, keys, n)
	require.Zero(t, evicted)
}

// BenchmarkDedupBatch: check-and-mark of 50 new keys a batch, as the
// handler does it (prefetchKey, then seenBatch), from every P at once, in a
// window of the default size.
func BenchmarkDedupBatch(b *testing.B) {
	d := newDedup(int64(time.Hour), defaultDedupMaxEntries)
	var seq atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		var keys [50]uint64
		var dup [seenBatchMax]bool
		for pb.Next() {
			n := seq.Add(1)
			for i := range keys {
				keys[i] = mix64(n<<8 | uint64(i))
			}
			now := int64(n)
			for _, k := range keys {
				d.prefetchKey(k)
			}
			d.seenBatch(keys[:], now, &dup)
		}
	})
	b.ReportMetric(float64(b.N*50)/b.Elapsed().Seconds(), "keys/s")
}

// mix64 is a 64-bit finalizer (splitmix64): keys spread like hashes.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// TestWindowMem: the window's buckets are zeroed and usable end to end, on
// Linux start on a 2 MiB boundary (so that huge pages can back them), and
// are given back by free; a small window comes from the heap.
func TestWindowMem(t *testing.T) {
	for _, n := range []int{1, 1000, defaultDedupMaxEntries / dedupWays} {
		b, free := windowMem(n)
		require.Len(t, b, n)
		for _, i := range []int{0, n / 2, n - 1} {
			if b[i][dedupWays-1].key != 0 {
				continue // n == 1: the same bucket again
			}
			require.Equal(t, dedupBucket{}, b[i])
			b[i][dedupWays-1] = dedupEntry{key: uint64(i) + 1, at: 1}
			require.Equal(t, uint64(i)+1, b[i][dedupWays-1].key)
		}
		if big := n*int(unsafe.Sizeof(dedupBucket{})) >= 2<<20; big && runtime.GOOS == "linux" {
			require.Zero(t, uintptr(unsafe.Pointer(&b[0]))%(2<<20), "%d buckets: not 2 MiB aligned", n)
		}
		free()
	}
}
