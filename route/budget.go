package route

import "sync/atomic"

// Budget bounds the memory held by batches between their publication and
// their last Release: a creator charges each batch with its size (Charge)
// before publishing it, and the last Release returns the charge. When the
// subscribers fall behind, the batches they have not sent yet hold the
// budget, and new ones are refused (ingest answers 503 with Retry-After)
// instead of the process growing without bound. Safe for concurrent use.
type Budget struct {
	used  atomic.Int64
	limit int64
}

// NewBudget returns a budget of limit bytes; limit <= 0 means no limit (the
// use is still counted).
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used is the number of bytes charged and not yet returned.
func (g *Budget) Used() int64 { return g.used.Load() }

// Limit is the budget's size in bytes (<= 0: none).
func (g *Budget) Limit() int64 { return g.limit }

// acquire takes n bytes if they fit. One batch larger than the whole budget
// is let through when nothing else is charged, so that it is not refused for
// ever.
func (g *Budget) acquire(n int64) bool {
	u := g.used.Add(n)
	if g.limit <= 0 || u <= g.limit || u == n {
		return true
	}
	g.used.Add(-n)
	return false
}

// Charge charges b's Bytes to g until b's last Release. It returns false,
// charging nothing, when g has no room; a batch is charged at most once (a
// second Charge, e.g. a retry after false, replaces nothing and succeeds at
// once if the first succeeded). Creator only, before b is published.
func (b *Batch) Charge(g *Budget) bool {
	if g == nil || b.budget != nil {
		return true
	}
	n := int64(b.Bytes)
	if !g.acquire(n) {
		return false
	}
	b.budget, b.charged = g, n
	return true
}

// chargeMore adds n bytes that b came to hold after it was published (its
// shared encodings) to its charge, whether or not they fit: they are
// already allocated. A no-op for a batch that was never charged.
func (b *Batch) chargeMore(n int64) {
	if g := b.budget; g != nil {
		g.used.Add(n)
		b.extra.Add(n)
	}
}

// Uncharge returns b's charge at once: the creator keeps a batch that it
// could not publish after all.
func (b *Batch) Uncharge() {
	if g := b.budget; g != nil {
		g.used.Add(-b.charged - b.extra.Swap(0))
		b.budget, b.charged = nil, 0
	}
}
