package decode

import (
	"sync"
	"sync/atomic"
	"unsafe"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// slab hands out *T values that are reused from one batch to the next: get
// returns the next one (allocating only while the slab grows); zeroing its
// count makes them all available again. The caller resets the value it gets.
//
// A slab's count and the bytes its values hold live in its state's
// slabCounts, with every other slab's (bind): a request touches the lines of
// the slabs it uses, and its reset and footprint the counts alone.
type slab[T any] struct {
	items []*T
	n     *int32 // values handed out
	held  *int   // the bytes that all the state's slabs hold
}

// bind points s's counters at n and held.
func (s *slab[T]) bind(n *int32, held *int) { s.n, s.held = n, held }

func (s *slab[T]) get() *T {
	if n := *s.n; int(n) < len(s.items) {
		*s.n = n + 1
		return s.items[n]
	}
	return s.grow()
}

// grow makes room for more values, in one allocation for several of them
// (a new batch state fills its slabs with hundreds of values: after a GC
// emptied the pools, the fan-out's queues may hold thousands of states, each
// made again).
func (s *slab[T]) grow() *T {
	var z T
	chunk := make([]T, min(max(len(s.items)/2, 8), 256))
	for i := range chunk {
		s.items = append(s.items, &chunk[i])
	}
	*s.held += len(chunk) * (int(unsafe.Sizeof(z)) + 8)
	v := s.items[*s.n]
	*s.n++
	return v
}

// slabCounts are the counters of a state's slabs: n[0] the events', n[1:]
// the typed views' (typedCache.bind's order); held the bytes all of them
// hold, their values and pointers.
type slabCounts struct {
	n    [1 + numTyped]int32
	held int
}

// Typed views: each pairs a payload message with its oneof wrapper, so that
// setting Event.Payload allocates nothing.
type (
	heartbeatView struct {
		w jimbotpb.Event_Heartbeat
		m jimbotpb.HeartbeatEvent
	}
	moneyView struct {
		w jimbotpb.Event_MoneyChanged
		m jimbotpb.MoneyChangedEvent
	}
	scoreView struct {
		w jimbotpb.Event_ScoreChanged
		m jimbotpb.ScoreChangedEvent
	}
	handPlayedView struct {
		w jimbotpb.Event_HandPlayed
		m jimbotpb.HandPlayedEvent
	}
	discardView struct {
		w jimbotpb.Event_CardsDiscarded
		m jimbotpb.CardsDiscardedEvent
	}
	jokersView struct {
		w      jimbotpb.Event_JokersChanged
		m      jimbotpb.JokersChangedEvent
		jokers []*jimbotpb.Joker
	}
	roundView struct {
		w jimbotpb.Event_RoundChanged
		m jimbotpb.RoundChangedEvent
	}
	phaseView struct {
		w jimbotpb.Event_PhaseChanged
		m jimbotpb.PhaseChangedEvent
	}
	roundCompleteView struct {
		w jimbotpb.Event_RoundComplete
		m jimbotpb.RoundCompleteEvent
	}
	connTestView struct {
		w jimbotpb.Event_ConnectionTest
		m jimbotpb.ConnectionTestEvent
	}
	jokerTrigView struct {
		w jimbotpb.Event_JokerTriggered
		m jimbotpb.JokerTriggeredEvent
	}
	errorView struct {
		w jimbotpb.Event_Error
		m jimbotpb.ErrorEvent
	}
	ldReqView struct {
		w       jimbotpb.Event_LearningDecisionRequest
		m       jimbotpb.LearningDecisionRequest
		actions []string
	}
	ldRespView struct {
		w jimbotpb.Event_LearningDecisionResponse
		m jimbotpb.LearningDecisionResponse
	}
	gameStateView struct {
		w           jimbotpb.Event_GameState
		m           jimbotpb.GameStateEvent
		deck        jimbotpb.Deck
		blind       jimbotpb.Blind
		jokers      []*jimbotpb.Joker
		hand        []*jimbotpb.Card
		consumables []*jimbotpb.Consumable
		remaining   []*jimbotpb.Card
		fullDeck    []*jimbotpb.Card
		scores      map[string]*jimbotpb.ScoreHistory
		shop        map[string]*jimbotpb.ShopItem
	}
	jokerView struct {
		j jimbotpb.Joker
		p jimbotpb.JokerProperties
	}
	consumableView struct {
		c jimbotpb.Consumable
		p jimbotpb.ConsumableProperties
	}
)

// typedCache holds the typed payload values of one batch.
type typedCache struct {
	heartbeat     slab[heartbeatView]
	money         slab[moneyView]
	score         slab[scoreView]
	handPlayed    slab[handPlayedView]
	discard       slab[discardView]
	jokersChanged slab[jokersView]
	round         slab[roundView]
	phase         slab[phaseView]
	roundComplete slab[roundCompleteView]
	connTest      slab[connTestView]
	jokerTrig     slab[jokerTrigView]
	errors        slab[errorView]
	ldReq         slab[ldReqView]
	ldResp        slab[ldRespView]
	gameState     slab[gameStateView]
	jokers        slab[jokerView]
	consumables   slab[consumableView]
	cards         slab[jimbotpb.Card]
	scoreHist     slab[jimbotpb.ScoreHistory]
	shopItems     slab[jimbotpb.ShopItem]
}

// numTyped is the number of slabs of a typedCache.
const numTyped = 20

// bind points the slabs' counters at n (numTyped of them) and held.
func (c *typedCache) bind(n []int32, held *int) {
	n = n[:numTyped]
	c.heartbeat.bind(&n[0], held)
	c.money.bind(&n[1], held)
	c.score.bind(&n[2], held)
	c.handPlayed.bind(&n[3], held)
	c.discard.bind(&n[4], held)
	c.jokersChanged.bind(&n[5], held)
	c.round.bind(&n[6], held)
	c.phase.bind(&n[7], held)
	c.roundComplete.bind(&n[8], held)
	c.connTest.bind(&n[9], held)
	c.jokerTrig.bind(&n[10], held)
	c.errors.bind(&n[11], held)
	c.ldReq.bind(&n[12], held)
	c.ldResp.bind(&n[13], held)
	c.gameState.bind(&n[14], held)
	c.jokers.bind(&n[15], held)
	c.consumables.bind(&n[16], held)
	c.cards.bind(&n[17], held)
	c.scoreHist.bind(&n[18], held)
	c.shopItems.bind(&n[19], held)
}

// batchState is everything one decoded batch owns: the route.Batch (whose
// Owner points back here), the arena the events' strings and bytes alias,
// and the reused events and typed payloads. It returns to statePool when the
// batch's last reference is released.
type batchState struct {
	// The fields every request uses come first, together, and the parser
	// right after them: with hundreds of states taking turns (the
	// subscribers' queues hold them) a state is cold, and a single event
	// should cost as few of its cache lines as can be.
	batch *route.Batch
	// orig is the request body (copied by Decode, taken by DecodeSwap);
	// work the pre-pass output when the body needed repair.
	orig, work []byte
	// aux holds bytes made while decoding: unescaped strings, assigned
	// event ids, extra_json objects, deadletter reasons.
	aux     []byte
	repairs []repairAt
	// spans is scratch for one event's extra members; members for the
	// parser's members.
	spans   []span
	members []member
	// flags lists, in event order, the envelope flags of the events whose
	// typed view was deferred (DeferTyped) and that had one set.
	flags  []eventFlags
	pooled keptMark
	counts slabCounts
	events slab[jimbotpb.Event]
	// p is the parser of the batch being decoded.
	p parser

	typed typedCache
	// order is the key order the typed walkers learned (keyOrder), guess
	// the payload types (typeGuess); they outlive the batch, as
	// predictions only.
	order keyOrders
	guess typeGuess
	// spec and keyBuf are the parser's scratch, which it does not reset:
	// spec the event that specTyped reads a payload's typed view into,
	// keyBuf an escaped key of a typed object, decoded (every known key,
	// each character escaped as \uXXXX, fits).
	spec   jimbotpb.Event
	keyBuf [128]byte
}

// eventFlags are the envelope's initial and debug of Batch.Events[idx],
// which the typed GameStateEvent repeats.
type eventFlags struct {
	idx            int
	initial, debug bool
}

// span is [s, e) in the body.
type span struct{ s, e int }

// statePool holds the free batch states.
var statePool keptPool[batchState, *batchState]

// Pool bounds: a batch state grown beyond them by an exceptional request
// (a 2 MiB body, 10,000 events) is left to the garbage collector instead of
// being kept in the pool, so that one large request does not pin its memory.
const (
	maxPooledBytes  = 4 << 20
	maxPooledEvents = 4096
)

// freeBatch is the batch's free function: the last Release recycles it.
func freeBatch(b *route.Batch) {
	st := b.Owner.(*batchState)
	size := cap(st.orig) + cap(st.work) + cap(st.aux)
	if size > maxPooledBytes || len(st.events.items) > maxPooledEvents {
		statePool.drop(st)
		return
	}
	if st.pooled.kept && (size > maxKeptBytes || len(st.events.items) > maxKeptEvents) {
		statePool.drop(st) // pooled, but not kept: the GC may take it
	}
	// Reset by getState, not here: the last Release is often a fan-out
	// writer's, on another core than the next request's decode, and each
	// line it wrote the decode would fetch back.
	statePool.put(st)
}

// The kept states are those of ordinary requests: at most maxKept of them,
// each with at most maxKeptBytes of buffers and maxKeptEvents events (a
// state that grows past them is only pooled, and a new one kept instead).
const (
	maxKeptBytes  = 256 << 10
	maxKeptEvents = 512
)

func getState() *batchState { return readyState(statePool.get()) }

// readyState returns st, a state from the pool, reset for a new batch, or
// a new state when st is nil.
func readyState(st *batchState) *batchState {
	if st == nil {
		st = &batchState{}
		st.events.bind(&st.counts.n[0], &st.counts.held)
		st.typed.bind(st.counts.n[1:], &st.counts.held)
		st.order.reset()
		st.batch = route.NewBatch(freeBatch)
		st.batch.Owner = st
		statePool.keep(st)
		return st
	}
	st.reset()
	return st
}

// keptPool is a sync.Pool that keeps its first maxKept values from the
// garbage collector. sync.Pool (per P, the most recently put first: warm in
// cache) drops what it holds at every other GC, and a batch state made again
// grows every slab and buffer anew: the allocations of a decoder under GC
// pressure, where the subscribers allocate. A kept value also goes through
// the sync.Pool; after a GC emptied it, get finds the kept values that are
// free. Whoever turns a value's free flag from true to false owns it (a
// copy in the sync.Pool can be stale).
type keptPool[T any, P keptValue[T]] struct {
	pool sync.Pool
	mu   sync.Mutex
	n    int
	s    [maxKept]P
}

// keptValue is a pointer to a value of a keptPool: it holds a keptMark.
type keptValue[T any] interface {
	*T
	mark() *keptMark
}

// keptMark is the keptPool's state of a value.
type keptMark struct {
	free atomic.Bool // in the pool
	kept bool        // in keptPool.s; changed with its mutex held
}

// maxKept bounds the values kept; a value past it is only pooled.
const maxKept = 64

// get returns a free value, or nil.
func (k *keptPool[T, P]) get() P {
	for {
		v := k.pool.Get()
		if v == nil {
			break
		}
		if x := v.(P); x.mark().free.CompareAndSwap(true, false) {
			return x
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range k.s[:k.n] {
		if x.mark().free.CompareAndSwap(true, false) {
			return x
		}
	}
	return nil
}

// put gives x back.
func (k *keptPool[T, P]) put(x P) {
	x.mark().free.Store(true)
	k.pool.Put(x)
}

// keep keeps x, a value new from the caller, if there is room.
func (k *keptPool[T, P]) keep(x P) {
	k.mu.Lock()
	if k.n < len(k.s) {
		k.s[k.n] = x
		k.n++
		x.mark().kept = true
	}
	k.mu.Unlock()
}

// drop forgets x, if kept (too large to keep, or to pool).
func (k *keptPool[T, P]) drop(x P) {
	m := x.mark()
	k.mu.Lock()
	if m.kept {
		for i, y := range k.s[:k.n] {
			if y == x {
				k.n--
				k.s[i], k.s[k.n] = k.s[k.n], nil
				break
			}
		}
		m.kept = false
	}
	k.mu.Unlock()
}

// resetSlabs makes every slab's values (events and typed views) available
// again; resetTyped the typed views' alone.
func (st *batchState) resetSlabs() { st.counts.n = [1 + numTyped]int32{} }

func (st *batchState) resetTyped() { clear(st.counts.n[1:]) }

// footprint is the memory the state holds, used or not: its route.Batch's
// Bytes, charged to the ingest's budget while the batch is in flight.
func (st *batchState) footprint() int {
	return cap(st.orig) + cap(st.work) + cap(st.aux) + cap(st.members)*int(unsafe.Sizeof(member{})) +
		st.counts.held + 16*(cap(st.batch.Events)+cap(st.batch.Topics))
}

// reset forgets the batch's contents but keeps every buffer and value.
func (st *batchState) reset() {
	st.batch.Reset()
	st.orig = st.orig[:0]
	st.work = st.work[:0]
	st.aux = st.aux[:0]
	st.repairs = st.repairs[:0]
	st.resetSlabs()
	st.spans = st.spans[:0]
	st.flags = st.flags[:0]
}

// newEvent returns a zeroed event from the batch's slab.
//
// Reused messages are reset to their zero value by assignment, as new(T)
// would give them, rather than by Reset: the protobuf message state is set
// lazily (atomically) on first use, and Reset's atomic store per message is
// measurable when a GAME_STATE brings 60 cards.
func (st *batchState) newEvent() *jimbotpb.Event {
	ev := st.events.get()
	*ev = jimbotpb.Event{}
	return ev
}

var resultPool keptPool[Result, *Result]

func getResult() *Result {
	r := resultPool.get()
	if r == nil {
		r = new(Result)
		resultPool.keep(r)
	}
	return r
}

// putResult resets every field of r but pooled (TestPutResultResets), which
// a stale copy in the pool may be reading, and gives it back.
func putResult(r *Result) {
	clear(r.Errors)
	r.Keys, r.Errors, r.reasons = r.Keys[:0], r.Errors[:0], r.reasons[:0]
	r.Batch, r.Accepted, r.Rejected, r.Fatal, r.Repairs, r.RepairCount, r.kind = nil, 0, 0, "", 0, 0, 0
	resultPool.put(r)
}

func (r *Result) mark() *keptMark { return &r.pooled }

func (st *batchState) mark() *keptMark { return &st.pooled }
