package ring

import (
	"runtime"
	"sync/atomic"
)

// maxBusyRounds bounds how many times Push yields and retries when every shard
// that had room was owned by another producer.
const maxBusyRounds = 64

// entry is what a shard holds: the value and the global sequence number it
// was published with.
type entry[T any] struct {
	seq uint64
	v   T
}

// Sharded is a set of SPSC rings (shards) written by any number of producers
// and read by exactly one consumer goroutine, which receives the items in
// global sequence order. See the package documentation for the exclusive
// producer scheme and the ordering guarantee.
//
// The zero value is not usable; create one with NewSharded.
type Sharded[T any] struct {
	// Read-only after NewSharded.
	shards []Ring[entry[T]]
	wake   chan struct{} // 1-buffered; producers send without blocking
	_      [cacheLinePad - 32]byte

	// Written by every producer.
	seq atomic.Uint64 // last sequence number taken
	_   [cacheLinePad - 8]byte

	// Written by the consumer when it parks, read by every producer.
	sleeping atomic.Uint32
	_        [cacheLinePad - 4]byte

	// Consumer only.
	next uint64 // sequence number Drain returns next
	cur  int    // shard that held the last item drained
	_    [cacheLinePad - 16]byte
}

// NewSharded returns an empty Sharded queue of shards rings (at least 1),
// each of capacity sizePerShard rounded up to a power of two, at least 2.
func NewSharded[T any](shards, sizePerShard int) *Sharded[T] {
	if shards < 1 {
		shards = 1
	}
	s := &Sharded[T]{
		shards: make([]Ring[entry[T]], shards),
		wake:   make(chan struct{}, 1),
		next:   1,
	}
	for i := range s.shards {
		s.shards[i].init(sizePerShard)
	}
	return s
}

// Push publishes v and returns the global sequence number it was given
// (the first is 1). It starts at shard hint%Shards() and moves on to the next
// shards while a shard is owned by another producer or full. It reports
// ok=false when every shard is full, or when shards stayed owned by other
// producers for a bounded number of yielding rounds. Push never blocks and may
// be called from any goroutine.
func (s *Sharded[T]) Push(hint uint32, v T) (seq uint64, ok bool) {
	n := uint32(len(s.shards))
	start := hint % n
	for round := 0; ; round++ {
		busy := false
		i := start
		for k := uint32(0); k < n; k++ {
			r := &s.shards[i]
			if r.owner.Load() == 0 && r.owner.CompareAndSwap(0, 1) {
				seq, ok = s.pushOwned(r, v)
				r.owner.Store(0)
				if ok {
					s.signal()
					return seq, true
				}
			} else {
				busy = true
			}
			if i++; i == n {
				i = 0
			}
		}
		if !busy || round == maxBusyRounds {
			return 0, false
		}
		runtime.Gosched()
	}
}

// pushOwned pushes v into r, which the caller owns. The sequence number is
// taken only once the slot is known to be free, so that it is always
// published.
func (s *Sharded[T]) pushOwned(r *Ring[entry[T]], v T) (uint64, bool) {
	t := r.tail.Load()
	if t-r.cachedHead > r.mask {
		r.cachedHead = r.head.Load()
		if t-r.cachedHead > r.mask {
			return 0, false
		}
	}
	seq := s.seq.Add(1)
	r.buf[t&r.mask] = entry[T]{seq: seq, v: v}
	r.tail.Store(t + 1)
	return seq, true
}

// signal wakes the consumer if it is parked in Wait. It runs after the item's
// tail store: the consumer stores sleeping before it reads the tails, so one
// of the two sides sees the other's write.
func (s *Sharded[T]) signal() {
	if s.sleeping.Load() != 0 && s.sleeping.CompareAndSwap(1, 0) {
		select {
		case s.wake <- struct{}{}:
		default: // a wakeup is already pending
		}
	}
}

// Drain appends to dst up to max items in global sequence order and returns
// the extended slice. It stops early, without blocking, at the first sequence
// number that is not yet published. Drain must be called by the consumer
// only; it does not allocate when dst has room for max more items.
func (s *Sharded[T]) Drain(dst []T, max int) []T {
	var zero entry[T]
	n := len(s.shards)
	next, cur := s.next, s.cur
	for max > 0 {
		// Take the run of consecutive sequence numbers at the head of cur,
		// storing head once for the whole run.
		r := &s.shards[cur]
		h := r.next
		h0 := h
		for max > 0 {
			if h == r.cachedTail {
				r.cachedTail = r.tail.Load()
				if h == r.cachedTail {
					break
				}
			}
			e := &r.buf[h&r.mask]
			if e.seq != next {
				break
			}
			dst = append(dst, e.v)
			*e = zero
			h++
			next++
			max--
		}
		if h != h0 {
			r.next = h
			r.head.Store(h)
		}
		if max == 0 {
			break
		}
		// next is not at the head of cur: find the shard where it is.
		found := false
		for k := 1; k < n; k++ {
			c := cur + k
			if c >= n {
				c -= n
			}
			if s.headIs(c, next) {
				cur, found = c, true
				break
			}
		}
		if !found {
			break
		}
	}
	s.next, s.cur = next, cur
	return dst
}

// headIs reports whether shard c's oldest item has sequence number seq.
// Consumer only.
func (s *Sharded[T]) headIs(c int, seq uint64) bool {
	r := &s.shards[c]
	h := r.next
	if h == r.cachedTail {
		r.cachedTail = r.tail.Load()
		if h == r.cachedTail {
			return false
		}
	}
	return r.buf[h&r.mask].seq == seq
}

// ready reports whether the next item in sequence is published. Consumer only.
func (s *Sharded[T]) ready() bool {
	n := len(s.shards)
	for k := 0; k < n; k++ {
		c := s.cur + k
		if c >= n {
			c -= n
		}
		if s.headIs(c, s.next) {
			return true
		}
	}
	return false
}

// Wait parks the consumer until a Push has published something, and reports
// true. It returns true at once when the next item in sequence is already
// published, so a loop
//
//	for s.Wait(done) {
//		batch = s.Drain(batch[:0], max)
//		...
//	}
//
// drains what is ready before it stops. It reports false when done is closed
// and nothing is ready; a nil done never closes. A true result may be
// spurious (Drain then returns nothing). Wait must be called by the consumer
// only.
func (s *Sharded[T]) Wait(done <-chan struct{}) bool {
	if s.ready() {
		return true
	}
	select {
	case <-done:
		return false
	default:
	}
	s.sleeping.Store(1)
	// Check again after setting the flag: a producer that published before
	// seeing the flag is visible here.
	if s.ready() {
		s.sleeping.Store(0)
		return true
	}
	select {
	case <-s.wake:
		// The producer that sent this cleared the flag; clear it anyway in
		// case this was a leftover token from an earlier round.
		s.sleeping.Store(0)
		return true
	case <-done:
		s.sleeping.Store(0)
		return false
	}
}

// Drained reports whether every item pushed so far has been returned by
// Drain: nothing is queued and no Push is between taking its sequence number
// and publishing the item. It reads the consumer's state: call it only while
// the consumer is excluded from Drain (e.g. under a lock the consumer holds
// around Drain), and do not call Drain concurrently with it.
func (s *Sharded[T]) Drained() bool { return s.seq.Load() == s.next-1 }

// Len returns the number of items queued in all shards. It may be called from
// any goroutine; while Push or Drain run concurrently the result is
// approximate.
func (s *Sharded[T]) Len() int {
	n := 0
	for i := range s.shards {
		n += s.shards[i].Len()
	}
	return n
}

// Cap returns the total capacity of all shards.
func (s *Sharded[T]) Cap() int {
	return len(s.shards) * s.shards[0].Cap()
}

// Shards returns the number of shards.
func (s *Sharded[T]) Shards() int {
	return len(s.shards)
}
