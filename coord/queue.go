package coord

import (
	"time"
)

// waiter is a request waiting in a queue. Its fields belong to the state (the
// Server mutex) except done, which the state closes once res is final.
type waiter struct {
	req        request
	key        int64 // ordering key with aging; see waitQueue
	seq        uint64
	enqueuedAt time.Time
	idx        int // index in the queue heap; -1 once it left the queue
	done       chan struct{}
	res        decision
	timer      Timer // the timeout, set by the Server
}

// waitQueue orders waiters by priority with aging, FIFO within equal standing.
//
// With aging A > 0 a waiter's key is enqueuedAt - priority*A (in ns), and the
// smallest key is served first: a request of priority p that has waited
// longer than k*A is served before a new request of priority p+k, so every
// waiter eventually reaches the head, and within one priority the order is
// FIFO. The key never changes while waiting, so a plain binary heap suffices.
// Without aging (A < 0) the order is priority, then arrival.
type waitQueue struct {
	aging time.Duration
	heap  []*waiter
}

func (q *waitQueue) len() int { return len(q.heap) }

func (q *waitQueue) less(a, b *waiter) bool {
	if q.aging > 0 {
		if a.key != b.key {
			return a.key < b.key
		}
	} else if a.req.priority != b.req.priority {
		return a.req.priority > b.req.priority
	}
	return a.seq < b.seq
}

// keyOf returns the ordering key of a request of priority p arriving at t.
func (q *waitQueue) keyOf(t time.Time, p int32) int64 {
	if q.aging <= 0 {
		return 0
	}
	return t.UnixNano() - int64(p)*int64(q.aging)
}

func (q *waitQueue) peek() *waiter {
	if len(q.heap) == 0 {
		return nil
	}
	return q.heap[0]
}

func (q *waitQueue) push(w *waiter) {
	w.idx = len(q.heap)
	q.heap = append(q.heap, w)
	q.up(w.idx)
}

// remove takes w out of the queue; w must be in it.
func (q *waitQueue) remove(w *waiter) {
	i := w.idx
	if i < 0 || i >= len(q.heap) || q.heap[i] != w {
		panic("BUG: coord: waiter is not in its queue")
	}
	last := len(q.heap) - 1
	if i != last {
		q.swap(i, last)
	}
	q.heap[last] = nil
	q.heap = q.heap[:last]
	w.idx = -1
	if i != last {
		if !q.down(i) {
			q.up(i)
		}
	}
}

// position returns how many waiters are served before w would be.
func (q *waitQueue) ahead(w *waiter) int {
	n := 0
	for _, o := range q.heap {
		if o != w && q.less(o, w) {
			n++
		}
	}
	return n
}

func (q *waitQueue) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.heap[i].idx = i
	q.heap[j].idx = j
}

func (q *waitQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(q.heap[i], q.heap[p]) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *waitQueue) down(i int) bool {
	start := i
	n := len(q.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && q.less(q.heap[r], q.heap[l]) {
			c = r
		}
		if !q.less(q.heap[c], q.heap[i]) {
			break
		}
		q.swap(i, c)
		i = c
	}
	return i > start
}

// leaseHeap orders leases by expiry, earliest first.
type leaseHeap []*lease

func (h *leaseHeap) push(l *lease) {
	l.heapIdx = len(*h)
	*h = append(*h, l)
	h.up(l.heapIdx)
}

func (h leaseHeap) peek() *lease {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

func (h *leaseHeap) remove(l *lease) {
	s := *h
	i := l.heapIdx
	if i < 0 || i >= len(s) || s[i] != l {
		panic("BUG: coord: lease is not in the expiry heap")
	}
	last := len(s) - 1
	if i != last {
		h.swap(i, last)
	}
	s[last] = nil
	*h = s[:last]
	l.heapIdx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h leaseHeap) less(i, j int) bool {
	if !h[i].expiresAt.Equal(h[j].expiresAt) {
		return h[i].expiresAt.Before(h[j].expiresAt)
	}
	return h[i].seq < h[j].seq
}

func (h leaseHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h leaseHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h leaseHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h.less(r, l) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
