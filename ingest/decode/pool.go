package decode

import (
	"sync"
	"sync/atomic"
	"unsafe"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// slab hands out *T values that are reused from one batch to the next: get
// returns the next one (allocating only while the slab grows), reset makes
// them all available again. The caller resets the value it gets.
type slab[T any] struct {
	items []*T
	n     int
}

func (s *slab[T]) get() *T {
	if s.n < len(s.items) {
		v := s.items[s.n]
		s.n++
		return v
	}
	return s.grow()
}

// grow makes room for more values, in one allocation for several of them
// (a new batch state fills its slabs with hundreds of values: after a GC
// emptied the pools, the fan-out's queues may hold thousands of states, each
// made again).
func (s *slab[T]) grow() *T {
	chunk := make([]T, min(max(len(s.items)/2, 8), 256))
	for i := range chunk {
		s.items = append(s.items, &chunk[i])
	}
	v := s.items[s.n]
	s.n++
	return v
}

func (s *slab[T]) reset() { s.n = 0 }

// bytes is the memory the slab holds: its values and their pointers.
func (s *slab[T]) bytes() int {
	var z T
	return len(s.items) * (int(unsafe.Sizeof(z)) + 8)
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

// bytes is the memory the typed views hold (the strings alias the body).
func (c *typedCache) bytes() int {
	return c.heartbeat.bytes() + c.money.bytes() + c.score.bytes() + c.handPlayed.bytes() +
		c.discard.bytes() + c.jokersChanged.bytes() + c.round.bytes() + c.phase.bytes() +
		c.roundComplete.bytes() + c.connTest.bytes() + c.jokerTrig.bytes() + c.errors.bytes() +
		c.ldReq.bytes() + c.ldResp.bytes() + c.gameState.bytes() + c.jokers.bytes() +
		c.consumables.bytes() + c.cards.bytes() + c.scoreHist.bytes() + c.shopItems.bytes()
}

func (c *typedCache) reset() {
	c.heartbeat.reset()
	c.money.reset()
	c.score.reset()
	c.handPlayed.reset()
	c.discard.reset()
	c.jokersChanged.reset()
	c.round.reset()
	c.phase.reset()
	c.roundComplete.reset()
	c.connTest.reset()
	c.jokerTrig.reset()
	c.errors.reset()
	c.ldReq.reset()
	c.ldResp.reset()
	c.gameState.reset()
	c.jokers.reset()
	c.consumables.reset()
	c.cards.reset()
	c.scoreHist.reset()
	c.shopItems.reset()
}

// batchState is everything one decoded batch owns: the route.Batch (whose
// Owner points back here), the arena the events' strings and bytes alias,
// and the reused events and typed payloads. It returns to statePool when the
// batch's last reference is released.
type batchState struct {
	batch *route.Batch
	// orig is the request body (copied by Decode, taken by DecodeSwap);
	// work the pre-pass output when the body needed repair.
	orig, work []byte
	// aux holds bytes made while decoding: unescaped strings, assigned
	// event ids, extra_json objects, deadletter reasons.
	aux     []byte
	repairs []repairAt
	events  slab[jimbotpb.Event]
	typed   typedCache
	// spans is scratch for one event's extra members; members for the
	// parser's members.
	spans   []span
	members []member
	// order is the key order the typed walkers learned (keyOrder), guess
	// the payload types (typeGuess); they outlive the batch, as
	// predictions only.
	order keyOrders
	guess typeGuess
	// flags lists, in event order, the envelope flags of the events whose
	// typed view was deferred (DeferTyped) and that had one set.
	flags  []eventFlags
	pooled keptMark
	// p is the parser of the batch being decoded; spec and keyBuf its
	// scratch, which it does not reset: spec is the event that specTyped
	// reads a payload's typed view into, keyBuf an escaped key of a typed
	// object, decoded (every known key, each character escaped as \uXXXX,
	// fits).
	p      parser
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
	st.reset()
	statePool.put(st)
}

// The kept states are those of ordinary requests: at most maxKept of them,
// each with at most maxKeptBytes of buffers and maxKeptEvents events (a
// state that grows past them is only pooled, and a new one kept instead).
const (
	maxKeptBytes  = 256 << 10
	maxKeptEvents = 512
)

func getState() *batchState {
	st := statePool.get()
	if st == nil {
		st = &batchState{}
		st.order.reset()
		st.batch = route.NewBatch(freeBatch)
		st.batch.Owner = st
		statePool.keep(st)
	}
	st.batch.Reset()
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

// footprint is the memory the state holds, used or not: its route.Batch's
// Bytes, charged to the ingest's budget while the batch is in flight.
func (st *batchState) footprint() int {
	var m member
	return cap(st.orig) + cap(st.work) + cap(st.aux) + cap(st.members)*int(unsafe.Sizeof(m)) +
		st.events.bytes() + st.typed.bytes() + 16*(cap(st.batch.Events)+cap(st.batch.Topics))
}

// reset forgets the batch's contents but keeps every buffer and value.
func (st *batchState) reset() {
	st.batch.Reset()
	st.orig = st.orig[:0]
	st.work = st.work[:0]
	st.aux = st.aux[:0]
	st.repairs = st.repairs[:0]
	st.events.reset()
	st.typed.reset()
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
