package ingest

import (
	"math"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/jimbot/jimbus/internal/prefetch"
)

// dedupWays is the number of entries in one bucket: 4 x 16 bytes, one cache
// line.
const dedupWays = 4

// dedup remembers the keys of recently delivered events for a window of
// time, in bounded memory. It is safe for concurrent use.
//
// It is a set-associative table: a key (a hash) selects one bucket of
// dedupWays entries (key, time marked), so a check-and-mark touches one
// cache line. A new key takes a free or expired entry of its bucket, else
// the oldest one: the table holds at most capacity keys, and once it is
// full the window of an unlucky bucket is shorter (counted in evicted).
// Measured against two generations of Go maps of the same capacity (1<<20),
// this is one cache miss per event instead of two or three (about 200 ns).
//
// Each bucket is its own lock: bit 0 of its first entry's time word (times
// are kept shifted left by one). A check-and-mark takes the lock of the
// key's bucket, the cache line it has to read anyway, and no lock is shared
// by two buckets: a lock over many buckets would be a second cache line for
// each key, moved from whichever core took it last (a mutex per shard of the
// table cost a 50-event batch 5-18% more time in BenchmarkDedupBatch on 2
// cores).
type dedup struct {
	window int64  // ns
	mask   uint64 // buckets - 1
	// table is the buckets, read and written under their own locks only.
	table []dedupBucket
	// n is the entries in use (expired ones included); evicted the live
	// entries dropped for a new key. Updated once a seenBatch.
	n, evicted atomic.Int64
}

type dedupEntry struct {
	key uint64 // 0: free
	// at is when the key was marked, monotonic ns, shifted left by one
	// (plenty for 146 years). In a bucket's first entry it is read and
	// written atomically only: its bit 0 is the bucket's lock.
	at int64
}

type dedupBucket [dedupWays]dedupEntry

// newDedup returns a window of the given length (ns) holding at most
// maxEntries keys (rounded down to a power of two, at least dedupWays). Its
// memory (16 bytes a key) is reserved at once and committed as keys land in
// it (windowMem); it is given back once the window is unreachable.
func newDedup(window int64, maxEntries int) *dedup {
	b := 1
	for b*2*dedupWays <= maxEntries {
		b *= 2
	}
	d := &dedup{window: window, mask: uint64(b - 1)}
	var free func()
	d.table, free = windowMem(b)
	runtime.AddCleanup(d, func(free func()) { free() }, free)
	return d
}

// capacity is the most keys the window holds.
func (d *dedup) capacity() int { return len(d.table) * dedupWays }

// bucket returns key's bucket.
func (d *dedup) bucket(key uint64) *dedupBucket { return &d.table[key&d.mask] }

// lock takes b's lock and returns its first entry's at (the caller hands
// it, changed or not, back to unlock). The lock is held for a few dozen
// instructions: a taker spins, and yields the P should the holder have been
// preempted.
func (b *dedupBucket) lock() int64 {
	p := &b[0].at
	for i := 0; ; i++ {
		if v := atomic.LoadInt64(p); v&1 == 0 && atomic.CompareAndSwapInt64(p, v, v|1) {
			return v
		}
		if i >= 64 {
			runtime.Gosched()
		}
	}
}

// unlock releases b's lock, setting its first entry's at to at0 (bit 0
// clear).
func (b *dedupBucket) unlock(at0 int64) { atomic.StoreInt64(&b[0].at, at0) }

// markedAt is when entry i was marked (0: free). The lock holder keeps the
// first entry's time word in at0 (see lock) and passes it here and to setAt.
func (b *dedupBucket) markedAt(i int, at0 int64) int64 {
	if i == 0 {
		return at0 >> 1
	}
	return b[i].at >> 1
}

// setAt sets entry i's time to t (0: free) and returns at0, updated when i
// is the first entry.
func (b *dedupBucket) setAt(i int, at0, t int64) int64 {
	if i == 0 {
		return t << 1
	}
	b[i].at = t << 1
	return at0
}

// seen checks and marks key at now (monotonic ns): it reports whether key was
// marked less than the window ago; if not, it marks key now.
func (d *dedup) seen(key uint64, now int64) bool {
	dup, dn, dev := d.checkAndMark(key, now)
	d.count(dn, dev)
	return dup
}

// seenBatchMax is the most keys seenBatch takes at once.
const seenBatchMax = 64

// seenBatch is seen for each key of keys (0: none, never a duplicate), in
// their order (a key given twice is a duplicate the second time): it sets
// dup[i] for keys[i]. len(keys) <= seenBatchMax.
func (d *dedup) seenBatch(keys []uint64, now int64, dup *[seenBatchMax]bool) {
	var n, ev int64
	for i, k := range keys {
		dup[i] = false
		if k != 0 {
			var dn, dev int64
			dup[i], dn, dev = d.checkAndMark(k, now)
			n += dn
			ev += dev
		}
	}
	d.count(n, ev)
}

// count adds to the counters.
func (d *dedup) count(n, evicted int64) {
	if n != 0 {
		d.n.Add(n)
	}
	if evicted != 0 {
		d.evicted.Add(evicted)
	}
}

// checkAndMark is seen, taking the lock of key's bucket, without the
// counters: it returns what they gain (an entry taken, a live one evicted).
func (d *dedup) checkAndMark(key uint64, now int64) (dup bool, n, evicted int64) {
	b := d.bucket(key)
	at0 := b.lock()
	victim, oldest := 0, int64(math.MaxInt64)
	for i := range b {
		at := b.markedAt(i, at0)
		age := now - at
		if b[i].key == key && age < d.window {
			b.unlock(at0)
			return true, 0, 0
		}
		if b[i].key == 0 || age >= d.window {
			at = math.MinInt64 // free or expired: take it first
		}
		if at < oldest {
			victim, oldest = i, at
		}
	}
	switch {
	case b[victim].key == 0:
		n = 1
	case now-b.markedAt(victim, at0) < d.window:
		evicted = 1
	}
	b[victim].key = key
	b.unlock(b.setAt(victim, at0, now))
	return false, n, evicted
}

// prefetchKey starts loading key's bucket (key 0: none) without marking
// anything, so that its cache miss overlaps with other work instead of
// coming in seen: in a table of 16 MiB nearly every new key is a miss
// (measured: about 55 ns a key one at a time, 23 ns with the buckets of 50
// keys read first). The decoder gives each key to prefetchKey as soon as it
// has it (decode.Options.KeyHint), so that the miss overlaps with the walk
// of the event's payload. It takes no lock: a prefetch reads nothing
// (package prefetch).
func (d *dedup) prefetchKey(key uint64) {
	if key == 0 {
		return
	}
	prefetch.Line(unsafe.Pointer(d.bucket(key)))
}

// forget removes a mark made by seen at markedAt, unless key was marked
// again since.
func (d *dedup) forget(key uint64, markedAt int64) {
	b := d.bucket(key)
	at0 := b.lock()
	var n int64
	for i := range b {
		if b[i].key == key && b.markedAt(i, at0) == markedAt {
			b[i].key = 0
			at0 = b.setAt(i, at0, 0)
			n--
		}
	}
	b.unlock(at0)
	d.count(n, 0)
}

// stats returns the entries in use (expired ones included) and the live
// entries evicted so far.
func (d *dedup) stats() (n int, evicted int64) {
	return int(d.n.Load()), d.evicted.Load()
}

// len is the number of entries in use.
func (d *dedup) len() int {
	n, _ := d.stats()
	return n
}
