package grpcout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/ring"
	"github.com/jimbot/jimbus/route"
)

// maxIDLen bounds the subscriber id kept for logs and errors, in bytes.
const maxIDLen = 128

// dispatchChunk is the most batches the dispatcher drains from the publish
// ring at a time.
const dispatchChunk = 256

// Bus is the in-memory fan-out backend: it implements route.Publisher and
// delivers published batches to the subscriber streams of a Service. See the
// package documentation for the data path and the ownership contract.
type Bus struct {
	opts Options
	log  *slog.Logger
	m    *metrics
	ring *ring.Sharded[*route.Batch]

	// pubs counts Publish calls in flight, spread over padded slots (by
	// hint) so that concurrent publishers do not share a cache line; Stop
	// sets closed and waits for every slot to reach 0.
	pubs    []pubSlot
	pubMask uint32
	closed  atomic.Bool

	// routes is the current subscriber list per topic, replaced (copy on
	// write, under mu) on every subscribe and unsubscribe and read by the
	// dispatcher once per batch.
	routes atomic.Pointer[routes]

	// typedSubs counts the routed subscribers that want the typed view
	// (WantsTypedView).
	typedSubs atomic.Int32

	// seq is the last BusSequence assigned. Only the dispatcher writes it.
	seq atomic.Uint64

	// dmu is the dispatch token: whoever holds it drains the ring and
	// dispatches, and only it (the dispatcher goroutine, or a Publish that
	// dispatches its batch itself when the ring is drained; see Publish).
	dmu sync.Mutex

	// Dispatcher only (under dmu).
	epoch       uint64
	touched     []*subscriber
	batchTopics route.Set   // the topics of the batch receivers looked at
	timer       *time.Timer // Block policy: bounds one wait for room

	// Lifecycle.
	startOnce  sync.Once
	started    atomic.Bool
	stopping   atomic.Bool
	stopc      chan struct{} // closed once no Publish is in flight: the dispatcher drains and exits
	dispatched chan struct{} // closed by the dispatcher when it exits: everything is queued
	killc      chan struct{} // closed when Stop's deadline passed: abandon what is left
	killOnce   sync.Once
	aborted    atomic.Bool
	allQueued  atomic.Bool   // set, then every writer poked, when the dispatcher exits
	done       chan struct{} // closed when the first Stop returns
	stopErr    error

	mu            sync.Mutex
	subs          map[*subscriber]struct{} // every stream whose handler has not returned
	live          int                      // subs not yet removed from routing
	labels        *SubscriberLabels        // metric label values in use (under mu)
	refusing      bool                     // Stop began: no new subscriber
	allGone       chan struct{}            // closed when refusing and live == 0
	allGoneClosed bool
}

type pubSlot struct {
	n atomic.Int64
	_ [120]byte
}

// routes is an immutable snapshot: byTopic[id] lists the subscribers whose
// patterns match topic id.
type routes struct {
	byTopic [][]*subscriber
}

// New returns a Bus configured by opts; it starts nothing. Publish may be
// called at once, but batches wait in the ring until Start.
func New(opts Options) (*Bus, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	nslots := 1 << bits.Len(uint(opts.Shards-1))
	b := &Bus{
		opts:       opts,
		log:        opts.Logger,
		ring:       ring.NewSharded[*route.Batch](opts.Shards, opts.RingSize),
		pubs:       make([]pubSlot, nslots),
		pubMask:    uint32(nslots - 1),
		touched:    make([]*subscriber, 0, 16),
		timer:      time.NewTimer(time.Hour),
		stopc:      make(chan struct{}),
		dispatched: make(chan struct{}),
		killc:      make(chan struct{}),
		done:       make(chan struct{}),
		subs:       make(map[*subscriber]struct{}),
		labels:     NewSubscriberLabels(opts.MaxSubscriberLabels),
		allGone:    make(chan struct{}),
	}
	b.timer.Stop()
	b.routes.Store(&routes{byTopic: make([][]*subscriber, route.NumTopics)})
	b.m = newMetrics(b)
	if err := b.m.register(opts.Registerer); err != nil {
		return nil, err
	}
	return b, nil
}

// Start starts the dispatcher goroutine. ctx is not retained: Stop ends the
// bus.
func (b *Bus) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.stopping.Load() {
		return errors.New("grpcout: Start after Stop")
	}
	if b.started.Load() {
		return errors.New("grpcout: already started")
	}
	b.startDispatcher()
	return nil
}

func (b *Bus) startDispatcher() {
	b.startOnce.Do(func() {
		b.started.Store(true)
		go b.run()
	})
}

// Publish hands b over to the bus (route.Publisher). It never blocks: it
// returns route.ErrFull when the ring has no room (the caller keeps its
// reference and may retry) and route.ErrClosed once Stop has begun. On nil
// the bus owns the caller's reference.
//
// When the dispatcher is idle (the ring drained, the dispatch token free),
// Publish dispatches bt itself, which is what the dispatcher would do next:
// batches published one after the other keep their order, since each is
// either dispatched before its Publish returns or queued behind everything
// published before it.
func (b *Bus) Publish(hint uint32, bt *route.Batch) error {
	if bt == nil {
		panic("BUG: grpcout: Publish of a nil batch")
	}
	slot := &b.pubs[hint&b.pubMask]
	slot.n.Add(1)
	if b.closed.Load() {
		slot.n.Add(-1)
		return route.ErrClosed
	}
	if b.started.Load() && b.dmu.TryLock() {
		// The ring is drained and nobody dispatches: dispatch bt here
		// instead of waking the dispatcher for it (one goroutine wake-up
		// less per request), unless a subscriber's queue has no room, which
		// only the dispatcher may wait for.
		done := b.ring.Drained() && b.dispatchInline(bt)
		b.dmu.Unlock()
		if done {
			slot.n.Add(-1)
			return nil
		}
	}
	_, ok := b.ring.Push(hint, bt)
	slot.n.Add(-1)
	if !ok {
		b.m.ringFull.Inc()
		return route.ErrFull
	}
	return nil
}

// Subscribers returns the number of subscriber streams connected and
// receiving.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}

// Stop stops the bus. New Publish calls fail with route.ErrClosed and new
// subscribers are refused; every batch already published is delivered to the
// subscribers connected now; then their streams end cleanly (the client's
// Recv returns io.EOF). Stop waits for the dispatcher and for those streams
// to finish sending. When ctx ends first, what is left is released
// undelivered, the streams end with codes.Unavailable, and Stop returns an
// error wrapping ctx.Err(). Stop without Start delivers too. Stop is
// idempotent; later calls wait for the first and return its result.
func (b *Bus) Stop(ctx context.Context) error {
	if !b.stopping.CompareAndSwap(false, true) {
		select {
		case <-b.done:
			return b.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.stopErr = b.stop(ctx)
	close(b.done)
	return b.stopErr
}

func (b *Bus) stop(ctx context.Context) error {
	b.closed.Store(true)
	b.mu.Lock()
	b.refusing = true
	b.checkAllGoneLocked()
	b.mu.Unlock()
	b.startDispatcher()

	// Wait for the Publish calls in flight: they never block, so this is
	// short. After it, the ring holds everything that will ever be published.
	for i := range b.pubs {
		for b.pubs[i].n.Load() != 0 {
			runtime.Gosched()
		}
	}
	close(b.stopc)

	var err error
	select {
	case <-b.dispatched:
	case <-ctx.Done():
		err = ctx.Err()
		b.abort()
		<-b.dispatched // every wait of the dispatcher watches killc
	}
	select {
	case <-b.allGone:
	case <-ctx.Done():
		err = ctx.Err()
		b.abort()
	}
	if err != nil {
		b.releaseQueues()
		b.mu.Lock()
		n := b.live
		b.mu.Unlock()
		return fmt.Errorf("grpcout: stop deadline passed with %d subscriber streams still sending; "+
			"their undelivered events were released: %w", n, err)
	}
	return nil
}

// abort makes the dispatcher and every writer give up what they hold.
func (b *Bus) abort() {
	b.killOnce.Do(func() {
		b.aborted.Store(true)
		close(b.killc) // the dispatcher exits and wakes every writer
	})
}

// pokeAll wakes every writer, once a flag they check before parking is set:
// the dispatcher calls it as it exits (allQueued; after an abort too).
func (b *Bus) pokeAll() {
	b.mu.Lock()
	for s := range b.subs {
		s.poke()
	}
	b.mu.Unlock()
}

// run is the dispatcher goroutine.
func (b *Bus) run() {
	defer func() {
		b.allQueued.Store(true)
		b.pokeAll()
		close(b.dispatched)
	}()
	buf := make([]*route.Batch, 0, dispatchChunk)
	for b.ring.Wait(b.stopc) {
		b.dmu.Lock()
		buf = b.ring.Drain(buf[:0], dispatchChunk)
		for i, bt := range buf {
			b.dispatch(bt)
			buf[i] = nil
		}
		b.dmu.Unlock()
	}
}

// releaseQueues releases the queue of every subscriber whose writer has not
// returned yet: after an abort, a writer stuck in Send would hold its queue
// until its client reads. The dispatcher must have exited.
func (b *Bus) releaseQueues() {
	b.mu.Lock()
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.drainQueue(true)
	}
}

// dispatch numbers the events of bt, queues bt to every subscriber that
// matches at least one of them, and releases the dispatcher's reference.
// Dispatcher only; it does not allocate.
func (b *Bus) dispatch(bt *route.Batch) {
	b.deliverAll(bt, b.receivers(bt))
}

// dispatchInline dispatches bt like dispatch if every subscriber that
// receives it has room in its queue now (the caller holds the token, so room
// can only grow), and reports whether it did; otherwise it changes nothing.
func (b *Bus) dispatchInline(bt *route.Batch) bool {
	touched := b.receivers(bt)
	for _, s := range touched {
		if s.q.Len() >= s.q.Cap() {
			clear(touched)
			b.touched = touched[:0]
			return false
		}
	}
	b.deliverAll(bt, touched)
	return true
}

// receivers returns the subscribers that match at least one event of bt, in
// b.touched. Dispatcher only; it does not allocate.
func (b *Bus) receivers(bt *route.Batch) []*subscriber {
	if len(bt.Topics) != len(bt.Events) {
		panic("BUG: grpcout: batch whose Topics and Events differ in length")
	}
	var set route.Set
	for _, t := range bt.Topics {
		set.Add(t)
	}
	b.batchTopics = set
	rt := b.routes.Load()
	b.epoch++
	epoch := b.epoch
	touched := b.touched[:0]
	for w, word := range set {
		for word != 0 {
			id := w<<6 | bits.TrailingZeros64(word)
			word &= word - 1
			if id >= len(rt.byTopic) {
				continue
			}
			for _, s := range rt.byTopic[id] {
				if s.mark != epoch {
					s.mark = epoch
					touched = append(touched, s)
				}
			}
		}
	}
	return touched
}

// deliverAll numbers the events of bt, queues bt to every subscriber in
// touched (b.touched, from receivers) and releases the dispatcher's
// reference. Dispatcher only; it does not allocate.
func (b *Bus) deliverAll(bt *route.Batch, touched []*subscriber) {
	seq := b.seq.Load()
	for i, ev := range bt.Events {
		seq++
		ev.BusSequence = seq
		if ev.Topic == "" {
			ev.Topic = bt.Topics[i].String()
		}
	}
	b.seq.Store(seq)
	if b.aborted.Load() {
		clear(touched)
		b.touched = touched[:0]
		bt.Release()
		return
	}
	if len(touched) > 0 {
		// The receivers that take every event of bt, by form: where two
		// or more take the same form, their writers send the events
		// encoded once (route.Batch.Encoded).
		var recv [2]int32
		for _, s := range touched {
			if s.set.Covers(&b.batchTopics) {
				recv[s.form]++
			}
		}
		bt.Receivers = recv
		if bt.TypedDeferred() {
			// Decoded without the typed view (nobody wanted it then, or a
			// small request: see decode.Options.DeferBelow). If a receiver
			// wants it, the first writer to read the batch builds it.
			for _, s := range touched {
				if s.typed {
					bt.FillOnRead()
					break
				}
			}
		}
		bt.Retain(len(touched))
		for i, s := range touched {
			b.deliver(s, bt)
			touched[i] = nil
		}
	}
	b.touched = touched[:0]
	bt.Release()
}

// Results of waitRoom.
const (
	roomFree = iota
	roomGone
	roomTimeout
	roomAbort
)

// deliver queues bt, on which the caller holds a reference for s, to s,
// applying the slow-subscriber policy when s's queue is full. The reference
// goes to the queue or is released. Dispatcher only.
func (b *Bus) deliver(s *subscriber, bt *route.Batch) {
	blocking := false
	for {
		if s.killed.Load() {
			s.countDropped(bt)
			bt.Release()
			break
		}
		if s.closed.Load() {
			bt.Release()
			break
		}
		if s.q.Push(bt) {
			b.m.deliveries.Inc()
			if s.closed.Load() {
				// The writer left while we pushed and may have drained
				// before the push: nobody else will release it.
				s.drainQueue(false)
			} else {
				s.wake()
			}
			break
		}
		switch b.opts.SlowPolicy {
		case DropOldest:
			s.dropOldest()
		case Disconnect:
			b.kill(s, reasonQueueFull)
		default: // Block
			if !blocking {
				b.timer.Reset(b.opts.BlockTimeout)
				blocking = true
			}
			switch b.waitRoom(s) {
			case roomTimeout:
				blocking = false
				b.kill(s, reasonBlockTimeout)
			case roomAbort:
				bt.Release()
				b.timer.Stop()
				return
			}
		}
	}
	if blocking {
		b.timer.Stop()
	}
}

// waitRoom parks the dispatcher until s's writer has made room, s's writer
// has left, the Block timer fires or Stop aborts.
func (b *Bus) waitRoom(s *subscriber) int {
	s.wantRoom.Store(1)
	if s.q.Len() < s.q.Cap() {
		s.wantRoom.Store(0)
		return roomFree
	}
	select {
	case <-s.room:
		return roomFree
	case <-s.gone:
		s.wantRoom.Store(0)
		return roomGone
	case <-b.timer.C:
		s.wantRoom.Store(0)
		return roomTimeout
	case <-b.killc:
		s.wantRoom.Store(0)
		return roomAbort
	}
}

// kill disconnects s for being too slow: its stream ends with
// codes.ResourceExhausted, its queue is released and counted as dropped, and
// it leaves the routing table. Dispatcher only.
func (b *Bus) kill(s *subscriber, reason string) {
	var msg string
	if reason == reasonBlockTimeout {
		msg = fmt.Sprintf("grpcout: subscriber %q too slow: its queue of %d batches stayed full for %v "+
			"(slow-subscriber=block); read faster, ask for fewer topics, or raise the queue size or block timeout",
			s.id, s.q.Cap(), b.opts.BlockTimeout)
		b.m.killedBlock.Inc()
	} else {
		msg = fmt.Sprintf("grpcout: subscriber %q too slow: its queue of %d batches was full "+
			"(slow-subscriber=disconnect); read faster, ask for fewer topics, or raise the queue size",
			s.id, s.q.Cap())
		b.m.killedFull.Inc()
	}
	s.killErr = status.Error(codes.ResourceExhausted, msg)
	s.killed.Store(true)
	s.poke()
	s.drainQueue(true)
	b.remove(s, false)
	b.log.Warn("grpcout: slow subscriber disconnected",
		"subscriber", s.id, "reason", reason, "policy", b.opts.SlowPolicy.String(),
		"dropped_events", s.droppedN.Load())
}

// WantsTypedView reports whether a connected subscriber wants the events'
// typed view now: the decoder's decode.Options.TypedWanted. A batch decoded
// without the view gets it from the first writer that reads it
// (route.Batch.FillOnRead) if it reaches a subscriber that wants it.
func (b *Bus) WantsTypedView() bool { return b.typedSubs.Load() > 0 }

// subscribe registers a subscriber for the topics in set. maxBatch is the
// client's max_batch_events (0 for the default); typed says whether it
// wants the typed view.
func (b *Bus) subscribe(id string, set route.Set, maxBatch int, typed bool) (*subscriber, error) {
	if maxBatch <= 0 || maxBatch > b.opts.MaxBatchEvents {
		maxBatch = b.opts.MaxBatchEvents
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refusing {
		return nil, status.Error(codes.Unavailable, "grpcout: the bus is shutting down; retry later")
	}
	if len(b.subs) >= b.opts.MaxSubscribers {
		return nil, status.Errorf(codes.ResourceExhausted,
			"grpcout: %d subscriber streams already open, the limit; close unused streams or raise the subscriber limit",
			len(b.subs))
	}
	if len(id) > maxIDLen {
		id = strings.ToValidUTF8(id[:maxIDLen], "")
	}
	label := b.labels.Label(id)
	s := newSubscriber(b, id, set, maxBatch, label, typed)
	if typed {
		// Before the subscriber is routed: a batch it can receive was
		// either decoded with the view or is filled by the dispatcher.
		b.typedSubs.Add(1)
	}
	b.subs[s] = struct{}{}
	b.live++
	b.rebuildLocked()
	return s, nil
}

// remove takes s out of the routing table (once) and, when its handler has
// returned (gone), out of the bus.
func (b *Bus) remove(s *subscriber, gone bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gone {
		delete(b.subs, s)
	}
	if s.removed {
		return
	}
	s.removed = true
	if s.typed {
		b.typedSubs.Add(-1)
	}
	b.live--
	b.rebuildLocked()
	b.checkAllGoneLocked()
}

func (b *Bus) checkAllGoneLocked() {
	if b.refusing && b.live == 0 && !b.allGoneClosed {
		b.allGoneClosed = true
		close(b.allGone)
	}
}

// rebuildLocked publishes a new routing snapshot from b.subs.
func (b *Bus) rebuildLocked() {
	byTopic := make([][]*subscriber, route.NumTopics)
	for s := range b.subs {
		if s.removed {
			continue
		}
		for id := range byTopic {
			if s.set.Has(route.TopicID(id)) {
				byTopic[id] = append(byTopic[id], s)
			}
		}
	}
	b.routes.Store(&routes{byTopic: byTopic})
}
