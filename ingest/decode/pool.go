package decode

import (
	"sync"

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
	v := new(T)
	s.items = append(s.items, v)
	s.n++
	return v
}

func (s *slab[T]) reset() { s.n = 0 }

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
	// orig is the copy of the request body; work the pre-pass output when
	// the body needed repair.
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
}

// span is [s, e) in the body.
type span struct{ s, e int }

var statePool sync.Pool

func init() {
	statePool.New = func() any {
		st := &batchState{}
		st.batch = route.NewBatch(freeBatch)
		st.batch.Owner = st
		return st
	}
}

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
	if cap(st.orig)+cap(st.work)+cap(st.aux) > maxPooledBytes || len(st.events.items) > maxPooledEvents {
		return
	}
	st.reset()
	statePool.Put(st)
}

func getState() *batchState {
	st := statePool.Get().(*batchState)
	st.batch.Reset()
	return st
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

var resultPool = sync.Pool{New: func() any { return new(Result) }}

func getResult() *Result {
	return resultPool.Get().(*Result)
}

func putResult(r *Result) {
	clear(r.Errors)
	*r = Result{
		Keys:    r.Keys[:0],
		Errors:  r.Errors[:0],
		reasons: r.reasons[:0],
	}
	resultPool.Put(r)
}
