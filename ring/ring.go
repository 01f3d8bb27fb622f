package ring

import (
	"math/bits"
	"sync/atomic"
)

// cacheLinePad is the distance kept between fields written by different
// goroutines. 128 rather than 64 bytes: x86 and some arm64 parts fetch cache
// lines in adjacent pairs, so two hot fields 64 bytes apart still contend.
const cacheLinePad = 128

// Ring is a bounded single-producer/single-consumer queue with a power-of-two
// capacity. One goroutine at a time calls Push, one goroutine at a time calls
// Pop; see the package documentation for the full contract.
//
// The zero value is not usable; create rings with New.
type Ring[T any] struct {
	// Read-only after New.
	buf          []T
	mask         uint64
	publishEvery uint64 // see Pop
	_            [cacheLinePad - 40]byte

	// Consumer side: written by the consumer only.
	head       atomic.Uint64 // consumer index as published to the producer
	next       uint64        // consumer index: next slot to pop (head <= next)
	cachedTail uint64        // consumer's copy of tail
	_          [cacheLinePad - 24]byte

	// Producer side: written by the producer only.
	tail       atomic.Uint64 // next slot to push; read by the consumer when it thinks the ring is empty
	cachedHead uint64        // producer's copy of head
	owner      atomic.Uint32 // producer ownership flag; used by Sharded only
	_          [cacheLinePad - 20]byte
}

// New returns an empty ring whose capacity is size rounded up to a power of
// two, and at least 2.
func New[T any](size int) *Ring[T] {
	r := &Ring[T]{}
	r.init(size)
	return r
}

func (r *Ring[T]) init(size int) {
	n := roundUp(size)
	r.buf = make([]T, n)
	r.mask = uint64(n - 1)
	r.publishEvery = max(1, min(uint64(n)/8, maxPublishEvery))
}

// maxPublishEvery caps how many slots Pop frees before it tells the producer.
const maxPublishEvery = 64

// roundUp returns size rounded up to a power of two, at least 2.
func roundUp(size int) int {
	if size <= 2 {
		return 2
	}
	if size > 1<<(bits.UintSize-2) {
		panic("ring: size too large")
	}
	return 1 << bits.Len(uint(size-1))
}

// Push appends v to the ring. It reports false, leaving the ring unchanged,
// when the ring is full. Push must be called by the producer only.
func (r *Ring[T]) Push(v T) bool {
	t := r.tail.Load()
	if t-r.cachedHead > r.mask {
		r.cachedHead = r.head.Load()
		if t-r.cachedHead > r.mask {
			return false
		}
	}
	r.buf[t&r.mask] = v
	r.tail.Store(t + 1)
	return true
}

// Pop removes and returns the oldest value. It reports false when the ring is
// empty. The slot it leaves is zeroed. Pop must be called by the consumer only.
//
// Pop hands the slots it frees back to the producer in batches: it publishes
// its index when it has popped every value it knew of, and at least every
// min(Cap/8, 64) values. This keeps a producer that has filled the ring from
// re-reading the consumer's index, and moving its cache line, for every slot.
// Until then Push may report full with up to that many slots already emptied.
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	h := r.next
	if h == r.cachedTail {
		r.cachedTail = r.tail.Load()
		if h == r.cachedTail {
			return zero, false
		}
	}
	slot := &r.buf[h&r.mask]
	v := *slot
	*slot = zero
	h++
	r.next = h
	if h == r.cachedTail || h-r.head.Load() >= r.publishEvery {
		r.head.Store(h)
	}
	return v, true
}

// Len returns the number of values in the ring. It may be called from any
// goroutine; while Push or Pop run concurrently the result is approximate.
func (r *Ring[T]) Len() int {
	h := r.head.Load()
	t := r.tail.Load() // loaded after head, so t >= h
	n := t - h
	if n > r.mask+1 {
		// Both sides moved between the two loads.
		n = r.mask + 1
	}
	return int(n)
}

// Cap returns the capacity of the ring.
func (r *Ring[T]) Cap() int {
	return int(r.mask + 1)
}
