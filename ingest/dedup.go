package ingest

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"github.com/jimbot/jimbus/internal/prefetch"
)

// maxDedupShards is the most independently locked shards of the window; a
// key's shard is its top bits.
const maxDedupShards = 64

// dedupShardsFor returns the shard count for procs Ps: 4 a P, a power of
// two from 8 to maxDedupShards. A batch's keys fall in most shards, and
// each shard whose mutex it takes costs a cache line moved from the core
// that took it last: with 64 shards on 2 cores a 50-event batch took ~35
// mutexes, half the window's cost (IngestBatch50 profile: the window 5.1-5.7%
// of the process with 64 shards, 3.2-4.9% with 8). More Ps need more shards
// to keep them from waiting on one another.
func dedupShardsFor(procs int) int {
	n := 8
	for n < 4*procs && n < maxDedupShards {
		n *= 2
	}
	return n
}

// dedupWays is the number of entries in one bucket: 4 x 16 bytes, one cache
// line.
const dedupWays = 4

// dedup remembers the keys of recently delivered events for a window of
// time, in bounded memory. It is safe for concurrent use; each shard has its
// own mutex and no lock is shared across shards.
//
// Each shard is a set-associative table: a key (a hash) selects one bucket
// of dedupWays entries (key, time marked), so a check-and-mark touches one
// cache line. A new key takes a free or expired entry of its bucket, else
// the oldest one: the table holds at most maxEntries keys, and once it is
// full the window of an unlucky bucket is shorter (counted in evicted).
// Measured against two generations of Go maps of the same capacity (1<<20),
// this is one cache miss per event instead of two or three (about 200 ns).
type dedup struct {
	window  int64 // ns
	buckets int   // per shard, a power of two
	shift   uint  // 64 - log2(len(shards))
	// table is the buckets of every shard, shard i's from i*buckets: read
	// without a lock (the slice never changes), so that finding a key's
	// bucket does not read its shard's mutex line, which the other cores
	// write.
	table  []dedupBucket
	shards []dedupShard
}

type dedupEntry struct {
	key uint64 // 0: free
	at  int64  // when marked, monotonic ns
}

type dedupBucket [dedupWays]dedupEntry

type dedupShard struct {
	mu      sync.Mutex
	n       int      // entries in use (expired ones included)
	evicted int64    // live entries dropped for a new key
	_       [64]byte // keep neighbouring shards' mutexes off this line
}

// newDedup returns a window of the given length (ns) holding at most
// maxEntries keys in all (rounded down to a power of two, at least
// shards*dedupWays), in shards shards (a power of two, at most
// maxDedupShards; see dedupShardsFor). Its memory (16 bytes a key) is
// reserved at once and committed as keys land in it (windowMem); it is
// given back once the window is unreachable.
func newDedup(window int64, maxEntries, shards int) *dedup {
	if shards < 1 || shards > maxDedupShards || shards&(shards-1) != 0 {
		panic("ingest: dedup shards must be a power of two up to maxDedupShards")
	}
	b := 1
	for b*2*shards*dedupWays <= maxEntries {
		b *= 2
	}
	d := &dedup{window: window, buckets: b, shift: uint(64 - bits.Len(uint(shards-1))), shards: make([]dedupShard, shards)}
	var free func()
	d.table, free = windowMem(b * shards)
	runtime.AddCleanup(d, func(free func()) { free() }, free)
	return d
}

// capacity is the most keys the window holds.
func (d *dedup) capacity() int { return d.buckets * len(d.shards) * dedupWays }

// bucket returns key's bucket, in its shard's part of the table.
func (d *dedup) bucket(key uint64) *dedupBucket {
	return &d.table[int(key>>d.shift)*d.buckets+int(key&uint64(d.buckets-1))]
}

func (d *dedup) shard(key uint64) *dedupShard {
	return &d.shards[key>>d.shift] // keys are hashes (a shift by 64 gives 0)
}

// seen checks and marks key at now (monotonic ns): it reports whether key was
// marked less than the window ago; if not, it marks key now.
func (d *dedup) seen(key uint64, now int64) bool {
	s := d.shard(key)
	s.mu.Lock()
	dup := d.seenLocked(s, key, now)
	s.mu.Unlock()
	return dup
}

// seenBatchMax is the most keys seenBatch takes at once.
const seenBatchMax = 64

// seenBatch is seen for each key of keys (0: none, never a duplicate): it
// sets dup[i] for keys[i]. It takes each shard's mutex once for all the keys
// it holds, in their order (a key given twice is a duplicate the second
// time, as with seen), rather than once a key: with two cores decoding at
// once, each mutex taken is a cache line that moves from one core to the
// other. len(keys) <= seenBatchMax.
func (d *dedup) seenBatch(keys []uint64, now int64, dup *[seenBatchMax]bool) {
	// Counting sort of the key indexes by shard, stable.
	nsh := len(d.shards)
	var start [maxDedupShards + 1]uint8
	for _, k := range keys {
		if k != 0 {
			start[k>>d.shift+1]++
		}
	}
	for i := 1; i <= nsh; i++ {
		start[i] += start[i-1]
	}
	var order [seenBatchMax]uint8
	next := start
	for i, k := range keys {
		dup[i] = false
		if k != 0 {
			sh := k >> d.shift
			order[next[sh]] = uint8(i)
			next[sh]++
		}
	}
	for sh := range nsh {
		lo, hi := start[sh], start[sh+1]
		if lo == hi {
			continue
		}
		s := &d.shards[sh]
		s.mu.Lock()
		for _, i := range order[lo:hi] {
			dup[i] = d.seenLocked(s, keys[i], now)
		}
		s.mu.Unlock()
	}
}

// seenLocked is seen; the caller holds s.mu, the mutex of key's shard.
func (d *dedup) seenLocked(s *dedupShard, key uint64, now int64) bool {
	b := d.bucket(key)
	victim, oldest := 0, int64(math.MaxInt64)
	for i := range b {
		e := &b[i]
		age := now - e.at
		if e.key == key && age < d.window {
			return true
		}
		at := e.at
		if e.key == 0 || age >= d.window {
			at = math.MinInt64 // free or expired: take it first
		}
		if at < oldest {
			victim, oldest = i, at
		}
	}
	e := &b[victim]
	switch {
	case e.key == 0:
		s.n++
	case now-e.at < d.window:
		s.evicted++
	}
	*e = dedupEntry{key: key, at: now}
	return false
}

// prefetchKey starts loading key's bucket (key 0: none) without marking
// anything, so that its cache miss overlaps with other work instead of
// coming in seen: in a table of 16 MiB nearly every new key is a miss
// (measured: about 55 ns a key one at a time, 23 ns with the buckets of 50
// keys read first). The decoder gives each key to prefetchKey as soon as it
// has it (decode.Options.KeyHint), so that the miss overlaps with the walk
// of the event's payload. It runs without the shard's mutex: a prefetch
// reads nothing (package prefetch).
func (d *dedup) prefetchKey(key uint64) {
	if key == 0 {
		return
	}
	prefetch.Line(unsafe.Pointer(d.bucket(key)))
}

// forget removes a mark made by seen at markedAt, unless key was marked
// again since.
func (d *dedup) forget(key uint64, markedAt int64) {
	s := d.shard(key)
	s.mu.Lock()
	b := d.bucket(key)
	for i := range b {
		if b[i].key == key && b[i].at == markedAt {
			b[i] = dedupEntry{}
			s.n--
		}
	}
	s.mu.Unlock()
}

// stats returns the entries in use (expired ones included) and the live
// entries evicted so far.
func (d *dedup) stats() (n int, evicted int64) {
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		n += s.n
		evicted += s.evicted
		s.mu.Unlock()
	}
	return n, evicted
}

// len is the number of entries in use.
func (d *dedup) len() int {
	n, _ := d.stats()
	return n
}
