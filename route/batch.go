package route

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// Batch is the events of one request, with their topics, on their way from
// ingest to the subscribers. See the package doc for ownership.
type Batch struct {
	// Events are in the order the client sent them.
	Events []*jimbotpb.Event
	// Topics[i] is the topic of Events[i].
	Topics []TopicID
	// ReceivedAt is when the request arrived, Unix ns.
	ReceivedAt int64
	// Owner is free for the creator (e.g. the buffers the events alias).
	Owner any
	// Bytes is the creator's estimate of the memory the batch holds (its
	// buffers, events and views), which Charge charges to a Budget.
	Bytes int
	// Receivers counts, by form (the fan-out's: grpcout's typed and JSON
	// views), the consumers the fan-out queues the batch to that take every
	// one of its events; the fan-out sets it before it queues the batch.
	Receivers [2]int32

	refs atomic.Int32
	free func(*Batch)
	// fill builds the typed views the creator skipped (DeferTyped).
	// pending is set while the consumers are to build them (FillOnRead);
	// fillMu is held by the one that does.
	fill    func(*Batch)
	pending atomic.Bool
	// encUsed is set by the first Encoded call, so that Reset leaves enc
	// alone when it was not used (most batches: one receiver by form).
	encUsed atomic.Bool
	// budget, when set, was charged charged bytes (Charge) and extra more
	// for the encodings made after publication, returned by the last
	// Release.
	budget  *Budget
	charged int64
	extra   atomic.Int64

	// The fields above are those of every batch, which Reset writes: three
	// cache lines. Those below are touched only when used.
	fillMu sync.Mutex
	// enc holds the events encoded once by form (Encoded).
	enc [2]Encoded
}

// NewBatch returns a batch with one reference; free, if not nil, is called
// with the batch when the last reference is released.
func NewBatch(free func(*Batch)) *Batch {
	b := &Batch{free: free}
	b.refs.Store(1)
	return b
}

// Reset prepares a batch from the creator's pool for reuse: one reference,
// no events. The creator must hold the only pointer to b.
func (b *Batch) Reset() {
	clear(b.Events)
	b.Events = b.Events[:0]
	b.Topics = b.Topics[:0]
	b.ReceivedAt = 0
	b.Bytes = 0
	b.Receivers = [2]int32{}
	if b.encUsed.Load() {
		for i := range b.enc {
			b.enc[i].reset()
		}
		b.encUsed.Store(false)
	}
	b.fill = nil
	b.pending.Store(false)
	b.Uncharge()
	b.refs.Store(1)
}

// DeferTyped records that the creator left out the events' typed payload
// views (jimbotpb.Event.Payload) because no consumer wanted them when it
// built b, and that fill builds them. Creator only, before b is published.
func (b *Batch) DeferTyped(fill func(*Batch)) { b.fill = fill }

// TypedDeferred reports whether the typed views were left out and not built
// since.
func (b *Batch) TypedDeferred() bool { return b.fill != nil }

// FillTyped builds the typed views that DeferTyped left out; it does nothing
// when there are none to build. It writes the events: only the goroutine that
// owns b before anyone reads its events may call it (FillOnRead hands the
// building to the consumers instead).
func (b *Batch) FillTyped() {
	if f := b.fill; f != nil {
		b.fill = nil
		f(b)
	}
}

// FillOnRead hands the typed views that DeferTyped left out to b's
// consumers: each calls EnsureTyped before it reads the events, and the
// first to do so builds them. The owner calls it (the fan-out's dispatcher,
// before it queues b to consumers of whom one wants the views) instead of
// FillTyped, so that the creator need not wait for the views (ingest
// answers the request meanwhile) and a consumer that takes many small
// batches walks their views one after the other. It does nothing when no
// view was deferred.
func (b *Batch) FillOnRead() {
	if b.fill != nil {
		b.pending.Store(true)
	}
}

// EnsureTyped returns once the views that FillOnRead handed to the
// consumers are built, building them if no consumer has yet (the others
// wait meanwhile). Every consumer of b calls it before it reads the events,
// whether it wants the views or not, since the first to call it writes
// them. Safe for concurrent use; without FillOnRead it does nothing.
func (b *Batch) EnsureTyped() {
	if !b.pending.Load() {
		return
	}
	b.fillMu.Lock()
	defer b.fillMu.Unlock()
	if b.pending.Load() {
		b.FillTyped()
		b.pending.Store(false)
	}
}

// Encoded is a batch's events encoded once in one form, for every consumer
// that sends them so (grpcout: the subscribers of one payload view).
type Encoded struct {
	state atomic.Int32 // encNone, encBuilding, encBuilt
	mu    sync.Mutex   // with done: callers waiting for encBuilt
	done  *sync.Cond
	// Buf holds the encodings one after the other: event i's is
	// Buf[Ends[i-1]:Ends[i]] (from 0 for the first).
	Buf  []byte
	Ends []int
	// Err is encode's error, if any.
	Err error
}

const (
	encNone = iota
	encBuilding
	encBuilt
)

// Event returns the encoding of event i.
func (e *Encoded) Event(i int) []byte {
	s := 0
	if i > 0 {
		s = e.Ends[i-1]
	}
	return e.Buf[s:e.Ends[i]]
}

func (e *Encoded) reset() {
	e.state.Store(encNone)
	if cap(e.Buf) > maxKeptEncoded {
		e.Buf = nil // an exceptional batch's: not kept with the pooled batch
	}
	e.Buf, e.Ends, e.Err = e.Buf[:0], e.Ends[:0], nil
}

// maxKeptEncoded bounds the encoding buffer a reused batch keeps.
const maxKeptEncoded = 1 << 20

// Encoded returns the batch's events encoded in form (0 or 1): the first
// caller for that form fills it with encode; callers that come meanwhile
// wait for it, parked (sync.Once's waiters spin first, which on 2 cores
// takes the CPU from the one encoding); later callers get it at once. The
// events must not change once a consumer may call it.
func (b *Batch) Encoded(form int, encode func(*Batch, *Encoded)) (enc *Encoded) {
	e := &b.enc[form]
	if e.state.Load() == encBuilt {
		return e
	}
	if e.state.CompareAndSwap(encNone, encBuilding) {
		b.encUsed.Store(true)
		defer func() {
			// Built, even by a panicking encode (its Err says so): the
			// waiters must not wait for ever.
			if r := recover(); r != nil {
				e.Err = fmt.Errorf("route: encoding a batch panicked: %v", r)
			}
			e.mu.Lock()
			e.state.Store(encBuilt)
			if e.done != nil {
				e.done.Broadcast()
			}
			e.mu.Unlock()
			enc = e
		}()
		encode(b, e)
		// Charged like the rest of the batch while it is queued.
		b.chargeMore(int64(cap(e.Buf) + 8*cap(e.Ends)))
		return e
	}
	e.mu.Lock()
	for e.state.Load() != encBuilt {
		if e.done == nil {
			e.done = sync.NewCond(&e.mu)
		}
		e.done.Wait()
	}
	e.mu.Unlock()
	return e
}

// Add appends an event with its topic.
func (b *Batch) Add(ev *jimbotpb.Event, topic TopicID) {
	b.Events = append(b.Events, ev)
	b.Topics = append(b.Topics, topic)
}

// Len is the number of events.
func (b *Batch) Len() int { return len(b.Events) }

// Retain adds n references.
func (b *Batch) Retain(n int) {
	if b.refs.Add(int32(n)) <= int32(n) {
		panic("BUG: route: Retain on a released batch")
	}
}

// Release drops one reference; the last one hands b to its free function.
func (b *Batch) Release() {
	switch n := b.refs.Add(-1); {
	case n == 0:
		b.Uncharge()
		if b.free != nil {
			b.free(b)
		}
	case n < 0:
		panic("BUG: route: batch released more often than retained")
	}
}

// ErrFull is returned by Publish when the fan-out has no room now: the
// caller keeps its reference and may retry (ingest answers 503).
var ErrFull = errors.New("route: fan-out full")

// ErrClosed is returned by Publish once the fan-out is stopping.
var ErrClosed = errors.New("route: fan-out closed")

// Publisher is a fan-out backend: the in-memory rings (grpcout) or, later,
// a distributed log. Ingest publishes through it and knows nothing else.
type Publisher interface {
	// Publish hands b to the fan-out. On nil error the publisher owns the
	// caller's reference; on an error the caller keeps it. hint spreads
	// concurrent publishers over shards (e.g. a connection id); it never
	// affects ordering: batches published one after the other (the second
	// Publish starting after the first returned) reach every subscriber in
	// that order.
	Publish(hint uint32, b *Batch) error
}
