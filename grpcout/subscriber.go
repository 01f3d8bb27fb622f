package grpcout

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/ring"
	"github.com/jimbot/jimbus/route"
)

// stream is the part of a Subscribe stream the writer uses.
type stream interface {
	Context() context.Context
	Send(*jimbotpb.EventBatch) error
}

// msgStream is a stream that sends any message its codec encodes: a gRPC
// stream (whose codec is Codec when the server has ServerOption).
type msgStream interface {
	SendMsg(any) error
}

// errAborted ends the streams that Stop could not drain before its deadline.
var errAborted = status.Error(codes.Unavailable, "grpcout: the bus stopped before this stream was drained; reconnect")

// subscriber is one Subscribe stream: its compiled topics, its queue of
// deliveries (a batch with at least one matching event) and the state of its
// writer, the stream's handler goroutine.
//
// q is single-producer/single-consumer: the dispatcher is its only producer.
// Its consumer side is guarded by qmu: the writer pops under it; the
// dispatcher takes it to drop the oldest delivery (DropOldest) or to release
// the queue of a subscriber it disconnects; whoever leaves last drains it.
type subscriber struct {
	// Read-only after newSubscriber.
	bus     *Bus
	id      string
	label   string
	set     route.Set
	max     int
	typed   bool      // wants the typed view
	form    int       // formTyped or formJSON: how it sends events
	jv      *jsonView // copies without the typed view; nil when typed
	q       *ring.Ring[*route.Batch]
	notify  chan struct{} // wakes the parked writer (wake, poke); 1-buffered
	room    chan struct{} // writer -> dispatcher waiting for room (Block); 1-buffered
	gone    chan struct{} // closed when the writer has left
	sent    prometheus.Counter
	dropped prometheus.Counter
	latency prometheus.Histogram
	_       [128]byte

	// Dispatcher only.
	mark    uint64 // the dispatcher's epoch when it last selected this subscriber
	killErr error  // set before killed
	_       [128]byte

	// Written by both sides.
	sleeping atomic.Uint32 // the writer is parked or about to park
	wantRoom atomic.Uint32 // the dispatcher waits for room in q
	closed   atomic.Bool   // the writer has left
	killed   atomic.Bool   // the dispatcher disconnected the subscriber
	ctxDone  atomic.Bool   // the stream's context is done
	droppedN atomic.Uint64
	sentN    atomic.Uint64
	_        [128]byte

	qmu sync.Mutex // the consumer side of q

	// Writer only.
	out    jimbotpb.EventBatch // reused for every Send
	cur    *route.Batch        // a delivery partly packed into out
	curIdx int                 // next event of cur to look at
	held   []*route.Batch      // deliveries packed into out, released after Send
	// wire: the stream is a gRPC stream, whose codec (Codec) can send
	// events encoded once for several subscribers; shared is out with
	// those encodings (parts), nshared of them set.
	wire    bool
	shared  sharedBatch
	nshared int
	// small: the last delivery popped had fewer than coalesceBelow events
	// (true before the first), so a wake-up waits for more before sending
	// (see serve).
	small bool

	// Guarded by bus.mu.
	removed bool
}

// coalesceBelow is the size of a delivery (events) below which a woken
// writer yields before it packs, to send more of them in one message.
const coalesceBelow = 16

func newSubscriber(b *Bus, id string, set route.Set, max int, label string, typed bool) *subscriber {
	var jv *jsonView
	form := formTyped
	if !typed {
		jv = newJSONView(min(max, 16)) // grows to the largest message sent
		form = formJSON
	}
	s := &subscriber{
		typed:   typed,
		form:    form,
		jv:      jv,
		bus:     b,
		id:      id,
		label:   label,
		set:     set,
		max:     max,
		q:       ring.New[*route.Batch](b.opts.QueueSize),
		notify:  make(chan struct{}, 1),
		room:    make(chan struct{}, 1),
		gone:    make(chan struct{}),
		sent:    b.m.sent.WithLabelValues(label),
		dropped: b.m.dropped.WithLabelValues(label),
		latency: b.m.latency,
		out:     jimbotpb.EventBatch{Events: make([]*jimbotpb.Event, 0, max)},
		held:    make([]*route.Batch, 0, max+1),
		small:   true,
	}
	s.shared = sharedBatch{EventBatch: &s.out, parts: make([][]byte, 0, max)}
	return s
}

// wake wakes the writer if it is parked. Dispatcher only, after a push.
func (s *subscriber) wake() {
	if s.sleeping.Load() != 0 && s.sleeping.CompareAndSwap(1, 0) {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// poke wakes the writer whether or not it is parked, for a reason it
// checks before it parks (killed, aborted, allQueued, ctxDone): set the
// reason first. A token left in notify makes the next park return at once,
// which only costs a turn of the loop.
func (s *subscriber) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// pack fills s.out.Events with up to s.max matching events of the queued
// deliveries, in order, and returns how many. A delivery whose events all
// went into out moves to held; one that did not fit entirely stays in cur.
// Writer only; it does not allocate.
func (s *subscriber) pack() int {
	out := s.out.Events[:0]
	max := s.max
	popped := false
	s.qmu.Lock()
	for len(out) < max {
		bt := s.cur
		if bt == nil {
			var ok bool
			if bt, ok = s.q.Pop(); !ok {
				break
			}
			popped = true
			s.cur, s.curIdx = bt, 0
			s.small = len(bt.Events) < coalesceBelow
			// The typed views left to the writers (route.Batch.FillOnRead):
			// built here by the first, before anyone reads the events.
			bt.EnsureTyped()
		}
		evs, tops := bt.Events, bt.Topics
		var enc *route.Encoded
		if s.wire && bt.Receivers[s.form] > 1 {
			// Two or more writers send all of bt in this form: encode it
			// once for all (the first to get here does, the others wait).
			if enc = bt.Encoded(s.form, encodeForm[s.form]); enc.Err != nil {
				enc = nil
			}
		}
		i := s.curIdx
		for ; i < len(evs) && len(out) < max; i++ {
			if s.set.Has(tops[i]) {
				ev := evs[i]
				if s.jv != nil {
					ev = s.jv.of(ev)
				}
				out = append(out, ev)
				if s.wire {
					var part []byte
					if enc != nil {
						part = enc.Event(i)
						s.nshared++
					}
					s.shared.parts = append(s.shared.parts, part)
				}
			}
		}
		if i < len(evs) {
			s.curIdx = i
			break
		}
		s.held = append(s.held, bt)
		s.cur = nil
	}
	s.qmu.Unlock()
	if popped && s.wantRoom.Load() != 0 && s.wantRoom.CompareAndSwap(1, 0) {
		select {
		case s.room <- struct{}{}:
		default:
		}
	}
	s.out.Events = out
	if len(out) == 0 && len(s.held) > 0 {
		s.sentDone(false) // deliveries without a matching event: nothing to send
	}
	return len(out)
}

// sentDone ends a Send of s.out: it counts the events (when ok), observes
// the latency of each delivery completed, and releases those deliveries.
// Writer only; it does not allocate.
func (s *subscriber) sentDone(ok bool) {
	n := len(s.out.Events)
	clear(s.out.Events)
	s.out.Events = s.out.Events[:0]
	clear(s.shared.parts)
	s.shared.parts = s.shared.parts[:0]
	s.nshared = 0
	if s.jv != nil {
		s.jv.reset()
	}
	var now int64
	if ok {
		now = time.Now().UnixNano()
		s.sent.Add(float64(n))
		s.sentN.Add(uint64(n))
	}
	for i, bt := range s.held {
		if ok {
			if at := receivedAt(bt); at > 0 {
				s.latency.Observe(float64(now-at) / 1e9)
			}
		}
		bt.Release()
		s.held[i] = nil
	}
	s.held = s.held[:0]
}

// receivedAt is when bt's request reached ingest, Unix ns; 0 if unknown.
func receivedAt(bt *route.Batch) int64 {
	if bt.ReceivedAt != 0 {
		return bt.ReceivedAt
	}
	if len(bt.Events) > 0 {
		return bt.Events[0].ReceivedAtNs
	}
	return 0
}

// serve is the writer loop, run by the stream's handler goroutine, the only
// one that calls st.Send. It returns nil when the bus stopped and everything
// queued for s was sent, the slow-subscriber error when the dispatcher
// disconnected s, or the stream's error.
func (s *subscriber) serve(st stream) (err error) {
	b := s.bus
	ctx := st.Context()
	ms, isMsg := st.(msgStream)
	s.wire = isMsg && grpc.ServerTransportStreamFromContext(ctx) != nil
	// The writer parks on notify alone, not in a select over every channel
	// that can end a park (which would lock and queue on each of them at
	// every park, about once a delivery under load): whatever else should
	// end a park sets its flag and pokes, the stream's context by AfterFunc.
	stop := context.AfterFunc(ctx, func() {
		s.ctxDone.Store(true)
		s.poke()
	})
	defer stop()
	defer func() { s.leave(err) }()
	final := false
	for {
		if s.killed.Load() {
			return s.killErr
		}
		if b.aborted.Load() {
			return errAborted
		}
		if s.pack() > 0 {
			s.out.Timestamp = time.Now().UnixMilli()
			var err error
			if s.nshared > 0 {
				err = ms.SendMsg(&s.shared)
				if err == nil {
					b.m.shared.Add(float64(s.nshared))
				}
			} else {
				err = st.Send(&s.out)
			}
			s.sentDone(err == nil)
			if err != nil {
				return err
			}
			continue
		}
		if final {
			return nil
		}
		// Park. The dispatcher pushes, then reads sleeping; we store
		// sleeping, then read the queue: one of us sees the other.
		s.sleeping.Store(1)
		if s.q.Len() != 0 {
			s.sleeping.Store(0)
			continue
		}
		switch {
		case s.killed.Load(), b.aborted.Load():
			s.sleeping.Store(0)
			continue
		case b.allQueued.Load():
			// Everything the dispatcher will ever queue is queued and
			// visible: send it, then end the stream.
			s.sleeping.Store(0)
			final = true
			continue
		case s.ctxDone.Load():
			s.sleeping.Store(0)
			return status.FromContextError(ctx.Err()).Err()
		}
		<-s.notify
		// Woken for one delivery: while deliveries are small, let the
		// goroutines that are ready run first (the publishers, under
		// load), so that one Send carries what they queue meanwhile.
		// Without other work this returns at once. Deliveries of many
		// events are sent as they come: each is a message's worth
		// already, and those that would pile up meanwhile are memory
		// (their bodies, events and views) that falls out of the caches
		// before it is sent.
		if s.small {
			runtime.Gosched()
		}
		s.sleeping.Store(0)
	}
}

// leave runs when the writer returns: it releases everything s holds and
// removes s from the bus.
func (s *subscriber) leave(err error) {
	s.closed.Store(true)
	close(s.gone)
	count := s.killed.Load() || s.bus.aborted.Load()
	if bt := s.cur; bt != nil {
		if count {
			s.countDroppedFrom(bt, s.curIdx)
		}
		bt.Release()
		s.cur = nil
	}
	s.sentDone(false)
	s.drainQueue(count)
	s.bus.remove(s, true)
	s.bus.log.Info("grpcout: subscriber left", "subscriber", s.id,
		"sent_events", s.sentN.Load(), "dropped_events", s.droppedN.Load(), "reason", leaveReason(err))
}

func leaveReason(err error) string {
	if err == nil {
		return "bus stopped"
	}
	return err.Error()
}

// drainQueue releases every queued delivery, counting their events as
// dropped when count is set. Any goroutine.
func (s *subscriber) drainQueue(count bool) {
	s.qmu.Lock()
	for {
		bt, ok := s.q.Pop()
		if !ok {
			break
		}
		if count {
			s.countDropped(bt)
		}
		bt.Release()
	}
	s.qmu.Unlock()
}

// dropOldest drops the oldest queued delivery. Dispatcher only.
func (s *subscriber) dropOldest() {
	s.qmu.Lock()
	bt, ok := s.q.Pop()
	s.qmu.Unlock()
	if ok {
		s.countDropped(bt)
		bt.Release()
	}
}

func (s *subscriber) countDropped(bt *route.Batch) { s.countDroppedFrom(bt, 0) }

// countDroppedFrom counts the events of bt from index i on that match s as
// dropped.
func (s *subscriber) countDroppedFrom(bt *route.Batch, i int) {
	n := 0
	for _, t := range bt.Topics[i:] {
		if s.set.Has(t) {
			n++
		}
	}
	if n > 0 {
		s.dropped.Add(float64(n))
		s.droppedN.Add(uint64(n))
	}
}
