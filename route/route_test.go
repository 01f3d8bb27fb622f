package route

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

func TestMatch(t *testing.T) {
	f := func(pattern, topic string, want bool) {
		t.Helper()
		require.Equal(t, want, Match(pattern, topic), "Match(%q, %q)", pattern, topic)
	}
	f("game.state.update", "game.state.update", true)
	f("game.*.*", "game.state.update", true)
	f("game.state", "game.state.update", false)
	f("*.*.*", "system.heartbeat", false)
	f("*.*", "system.heartbeat", true)
	f("system.*", "system.heartbeat", true)
	f("system.*", "system.connection.test", false)
	f(">", "system.heartbeat", true)
	f(">", "a", true)
	f("game.>", "game.state.update", true)
	f("game.>", "game", false)
	f("game.>", "game.x", true)
	f("*.>", "game.x", true)
	f("*.>", "game", false)
	f("game.*", "game.state.update", false)
	f("game.*.update", "game.state.update", true)
	f("game.*.update", "game.state.changed", false)
	f("*", "game", true)
	f("*", "game.state", false)
	f("", "game", false)
	f("game.state.update.extra", "game.state.update", false)
}

func TestValidatePattern(t *testing.T) {
	f := func(p string, ok bool) {
		t.Helper()
		err := ValidatePattern(p)
		if ok {
			require.NoError(t, err, p)
		} else {
			require.ErrorIs(t, err, ErrBadPattern, p)
		}
	}
	f(">", true)
	f("game.*.*", true)
	f("game.>", true)
	f("", false)
	f("game..x", false)
	f(".game", false)
	f("game.>.x", false)
	f("ga*me", false)
	f("game.st>", false)
	f("game state", false)
}

func TestCompile(t *testing.T) {
	s, err := Compile()
	require.NoError(t, err)
	for i := 0; i < NumTopics; i++ {
		require.True(t, s.Has(TopicID(i)))
	}
	s, err = Compile("game.*.*")
	require.NoError(t, err)
	gs, _ := TopicOf(jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "")
	hb, _ := TopicOf(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "")
	require.True(t, s.Has(gs))
	require.False(t, s.Has(hb))
	require.False(t, s.Has(TopicDeadletter))
	s, err = Compile("system.heartbeat", "system.deadletter")
	require.NoError(t, err)
	require.True(t, s.Has(hb))
	require.True(t, s.Has(TopicDeadletter))
	require.False(t, s.Has(gs))
	s, err = Compile("nothing.matches")
	require.NoError(t, err)
	require.True(t, s.Empty())
	_, err = Compile("bad..pattern")
	require.ErrorIs(t, err, ErrBadPattern)
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = ">"
	}
	_, err = Compile(many...)
	require.ErrorIs(t, err, ErrBadPattern)
}

func TestTopicTable(t *testing.T) {
	f := func(typ jimbotpb.EventType, subtype, want string) {
		t.Helper()
		id, ok := TopicOf(typ, subtype)
		require.True(t, ok, typ.String())
		require.Equal(t, want, id.String())
	}
	// The topics earlier subscribers rely on (CONTRACT section 3).
	f(jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "", "game.state.update")
	f(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "system.heartbeat")
	f(jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED, "", "game.money.changed")
	f(jimbotpb.EventType_EVENT_TYPE_SCORE_CHANGED, "", "game.score.changed")
	f(jimbotpb.EventType_EVENT_TYPE_HAND_PLAYED, "", "game.hand.played")
	f(jimbotpb.EventType_EVENT_TYPE_CARDS_DISCARDED, "", "game.cards.discarded")
	f(jimbotpb.EventType_EVENT_TYPE_JOKERS_CHANGED, "", "game.jokers.changed")
	f(jimbotpb.EventType_EVENT_TYPE_ROUND_CHANGED, "", "game.round.changed")
	f(jimbotpb.EventType_EVENT_TYPE_PHASE_CHANGED, "", "game.phase.changed")
	f(jimbotpb.EventType_EVENT_TYPE_ROUND_COMPLETE, "", "game.round.complete")
	f(jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, "", "system.connection.test")
	f(jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, "", "learning.decision.request")
	f(jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE, "", "learning.decision.response")
	f(jimbotpb.EventType_EVENT_TYPE_STRATEGY_REQUEST, "", "strategy.request")
	f(jimbotpb.EventType_EVENT_TYPE_STRATEGY_RESPONSE, "", "strategy.response")
	f(jimbotpb.EventType_EVENT_TYPE_KNOWLEDGE_UPDATE, "", "knowledge.update")
	f(jimbotpb.EventType_EVENT_TYPE_SCORING, "HAND_EVAL_START", "game.scoring.hand_eval_start")
	f(jimbotpb.EventType_EVENT_TYPE_SCORING, "weird", "game.scoring.other")
	f(jimbotpb.EventType_EVENT_TYPE_SCORING, "", "game.scoring.other")
	require.True(t, Match("metrics.*", mustTopic(t, jimbotpb.EventType_EVENT_TYPE_METRIC)))

	// Every EventType has a topic, and topics are unique.
	seen := map[string]bool{}
	for _, name := range Topics() {
		require.False(t, seen[name], name)
		seen[name] = true
	}
	for v := range jimbotpb.EventType_name {
		if v == 0 {
			continue
		}
		_, ok := TopicOf(jimbotpb.EventType(v), "")
		require.True(t, ok, jimbotpb.EventType(v).String())
	}
	_, ok := TopicOf(jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED, "")
	require.False(t, ok)
}

func mustTopic(t *testing.T, typ jimbotpb.EventType) string {
	id, ok := TopicOf(typ, "")
	require.True(t, ok)
	return id.String()
}

func TestParseType(t *testing.T) {
	f := func(name, subtype string, want jimbotpb.EventType, ok bool) {
		t.Helper()
		got, gotOK := ParseType(name, subtype)
		require.Equal(t, ok, gotOK, name)
		require.Equal(t, want, got, name)
	}
	f("HEARTBEAT", "", jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, true)
	f("heartbeat", "", jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, true)
	f("connection_test", "", jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, true)
	f("JOKER_TRIGGER", "", jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED, true)
	f("JOKER_TRIGGERED", "", jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED, true)
	f("LEARNING_DECISION", "REQUEST", jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, true)
	f("LEARNING_DECISION", "response", jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE, true)
	f("SCORING", "HAND_EVAL_START", jimbotpb.EventType_EVENT_TYPE_SCORING, true)
	f("DIAGNOSTIC", "", jimbotpb.EventType_EVENT_TYPE_DIAGNOSTIC, true)
	f("ERROR", "", jimbotpb.EventType_EVENT_TYPE_ERROR, true)
	f("CUSTOM", "", jimbotpb.EventType_EVENT_TYPE_CUSTOM, true)
	f("UNSPECIFIED", "", 0, false)
	f("INVALID_TYPE", "", 0, false)
	f("", "", 0, false)
	f("type with spaces", "", 0, false)
	f("🚀💀🔥", "", 0, false)
	f("EXTREMELY_LONG_EVENT_TYPE_NAME_THAT_EXCEEDS_REASONABLE_LIMITS_AND_SHOULD_BE_REJECTED_BY_THE_SERVER", "", 0, false)
}

func TestBatchRefs(t *testing.T) {
	freed := 0
	b := NewBatch(func(*Batch) { freed++ })
	b.Add(&jimbotpb.Event{}, TopicDeadletter)
	b.Retain(2)
	b.Release()
	b.Release()
	require.Equal(t, 0, freed)
	b.Release()
	require.Equal(t, 1, freed)
	require.Panics(t, func() { b.Release() })
	b.Reset()
	require.Equal(t, 0, b.Len())
	b.Release()
	require.Equal(t, 2, freed)
}

// TestParseTypeCase: every known name in random mixes of case, and random
// near misses, answer as a case-insensitive lookup of the maps would.
func TestParseTypeCase(t *testing.T) {
	want := map[string]jimbotpb.EventType{}
	for k, v := range typeValues {
		want[k] = v
	}
	for k, v := range typeAliases {
		want[k] = v
	}
	want["LEARNING_DECISION"] = jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST
	r := rand.New(rand.NewPCG(7, 8))
	for name, v := range want {
		for range 20 {
			b := []byte(name)
			for i := range b {
				if r.IntN(2) == 0 {
					b[i] = byte(strings.ToLower(string(b[i]))[0])
				}
			}
			got, ok := ParseType(string(b), "")
			require.True(t, ok, string(b))
			require.Equal(t, v, got, string(b))
			// One byte changed: unknown, unless it is a case change.
			i := r.IntN(len(b))
			c := b[i]
			b[i] = byte(r.IntN(256))
			if strings.EqualFold(string(b[i]), string(c)) {
				continue
			}
			wv, wok := want[strings.ToUpper(string(b))]
			got, ok = ParseType(string(b), "")
			require.Equal(t, wok, ok, "%q", b)
			if ok {
				require.Equal(t, wv, got, "%q", b)
			}
		}
	}
}

// TestParseTypeTable: the hashed table answers as the maps it is built from.
func TestParseTypeTable(t *testing.T) {
	for name, v := range typeValues {
		for _, n := range []string{name, strings.ToLower(name)} {
			got, ok := ParseType(n, "")
			want := v
			if a, isAlias := typeAliases[name]; isAlias {
				want = a
			}
			if name == "LEARNING_DECISION" {
				want = jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST
			}
			require.True(t, ok, n)
			require.Equal(t, want, got, n)
		}
	}
	for name, v := range typeAliases {
		got, ok := ParseType(name, "")
		require.True(t, ok, name)
		require.Equal(t, v, got, name)
	}
	for _, n := range []string{"", "x", "HEARTBEAT ", "HEARTBEATS", "EVENT_TYPE_HEARTBEAT", "UNSPECIFIED", strings.Repeat("A", 65)} {
		_, ok := ParseType(n, "")
		require.False(t, ok, n)
	}
	got, ok := ParseType("learning_decision", "response")
	require.True(t, ok)
	require.Equal(t, jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE, got)
	for v := range jimbotpb.EventType_name {
		id, ok := TopicOf(jimbotpb.EventType(v), "")
		wid, wok := byType[jimbotpb.EventType(v)]
		require.Equal(t, wok, ok, v)
		require.Equal(t, wid, id, v)
	}
	for _, v := range []int32{-1, 1000, 255, 256} {
		_, ok := TopicOf(jimbotpb.EventType(v), "")
		require.False(t, ok, v)
	}
}

func TestParseView(t *testing.T) {
	for s, want := range map[string]jimbotpb.PayloadView{
		"": jimbotpb.PayloadView_PAYLOAD_VIEW_UNSPECIFIED, "default": jimbotpb.PayloadView_PAYLOAD_VIEW_UNSPECIFIED,
		"typed": jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED, "JSON": jimbotpb.PayloadView_PAYLOAD_VIEW_JSON,
	} {
		got, err := ParseView(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	_, err := ParseView("both")
	require.ErrorContains(t, err, "want default, typed or json")
}

// TestBudget: Charge takes a batch's Bytes while they fit, once; the last
// Release (or Uncharge, or Reset) gives them back; one batch larger than the
// whole budget passes only when nothing else is charged.
func TestBudget(t *testing.T) {
	g := NewBudget(100)
	mk := func(n int) *Batch { b := NewBatch(nil); b.Bytes = n; return b }
	a, b, c := mk(60), mk(50), mk(40)
	require.True(t, a.Charge(g))
	require.True(t, a.Charge(g), "charged once")
	require.Equal(t, int64(60), g.Used())
	require.False(t, b.Charge(g))
	require.Equal(t, int64(60), g.Used(), "a refusal charges nothing")
	require.True(t, c.Charge(g))
	require.Equal(t, int64(100), g.Used())
	a.Retain(1)
	a.Release()
	require.Equal(t, int64(100), g.Used(), "not the last reference")
	a.Release()
	require.Equal(t, int64(40), g.Used())
	require.True(t, b.Charge(g))
	b.Uncharge()
	b.Uncharge()
	require.Equal(t, int64(40), g.Used())
	c.Reset()
	require.Zero(t, g.Used(), "Reset returns the charge")

	huge := mk(500)
	require.True(t, huge.Charge(g), "alone, a batch beyond the budget passes")
	require.False(t, mk(1).Charge(g))
	huge.Release()
	require.Zero(t, g.Used())

	// A shared encoding made after publication is charged too, until the
	// last Release, even beyond the limit.
	enc := mk(90)
	enc.Add(&jimbotpb.Event{EventId: "x"}, TopicDeadletter)
	require.True(t, enc.Charge(g))
	enc.Retain(1)
	e := enc.Encoded(0, func(b *Batch, e *Encoded) {
		e.Buf = make([]byte, 30)
		e.Ends = append(e.Ends, 30)
	})
	require.Equal(t, int64(90+cap(e.Buf)+8*cap(e.Ends)), g.Used())
	enc.Release()
	require.Positive(t, g.Used(), "not the last reference")
	enc.Release()
	require.Zero(t, g.Used())

	free := NewBudget(0)
	require.True(t, mk(1<<40).Charge(free))
	require.Equal(t, int64(1<<40), free.Used())
	require.True(t, mk(1).Charge(nil), "no budget: nothing to charge")
}

// TestBatchEncoded: the first caller of a form encodes, callers during that
// wait for it, later callers get the encoding; Reset starts over and drops
// an outsized buffer.
func TestBatchEncoded(t *testing.T) {
	b := NewBatch(nil)
	b.Add(&jimbotpb.Event{EventId: "a"}, TopicDeadletter)
	b.Add(&jimbotpb.Event{EventId: "bc"}, TopicDeadletter)
	calls := 0
	waiters := make(chan *Encoded, 4)
	encode := func(b *Batch, e *Encoded) {
		calls++
		if calls == 1 {
			for range cap(waiters) {
				go func() { waiters <- b.Encoded(0, nil) }() // they wait
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, ev := range b.Events {
			e.Buf = append(e.Buf, ev.EventId...)
			e.Ends = append(e.Ends, len(e.Buf))
		}
	}
	e := b.Encoded(0, encode)
	for range cap(waiters) {
		require.Same(t, e, <-waiters)
	}
	require.Equal(t, "a", string(e.Event(0)))
	require.Equal(t, "bc", string(e.Event(1)))
	require.Same(t, e, b.Encoded(0, encode))
	require.Equal(t, 1, calls)
	require.NotSame(t, e, b.Encoded(1, encode), "each form its own")
	require.Equal(t, 2, calls)

	e.Buf = make([]byte, maxKeptEncoded+1)
	b.Reset()
	require.Nil(t, e.Buf, "outsized buffer dropped")
	b.Add(&jimbotpb.Event{EventId: "d"}, TopicDeadletter)
	require.Equal(t, "d", string(b.Encoded(0, encode).Event(0)))
	require.Equal(t, 3, calls)

	// A panicking encode still lets the waiters go, with Err set.
	b.Reset()
	e = b.Encoded(1, func(*Batch, *Encoded) { panic("boom") })
	require.ErrorContains(t, e.Err, "boom")
	require.Same(t, e, b.Encoded(1, nil))
}

// TestBatchFillOnRead: the views that FillOnRead hands to the consumers
// are built once, by the first consumer to call EnsureTyped, while the
// others wait and then see them; without FillOnRead, EnsureTyped builds
// nothing.
func TestBatchFillOnRead(t *testing.T) {
	var calls atomic.Int32
	fill := func(b *Batch) {
		if calls.Add(1) == 1 {
			time.Sleep(10 * time.Millisecond) // the other consumers come meanwhile
		}
		for _, ev := range b.Events {
			ev.Payload = &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Version: ev.EventId}}
		}
	}
	b := NewBatch(nil)
	b.Add(&jimbotpb.Event{EventId: "a"}, TopicDeadletter)
	b.Add(&jimbotpb.Event{EventId: "b"}, TopicDeadletter)
	b.DeferTyped(fill)
	b.EnsureTyped()
	require.Zero(t, calls.Load(), "EnsureTyped before FillOnRead")
	require.True(t, b.TypedDeferred())

	b.FillOnRead()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.EnsureTyped()
			for _, ev := range b.Events {
				if ev.GetHeartbeat().GetVersion() != ev.EventId {
					t.Errorf("event %s: view %v after EnsureTyped", ev.EventId, ev.Payload)
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), calls.Load())
	require.False(t, b.TypedDeferred())
	b.EnsureTyped()
	require.Equal(t, int32(1), calls.Load())

	// Reset forgets a hand-over that no consumer took up.
	b.Reset()
	b.DeferTyped(fill)
	b.FillOnRead()
	b.Reset()
	require.False(t, b.pending.Load())
	// FillOnRead without a deferred view hands nothing over.
	b.FillOnRead()
	require.False(t, b.pending.Load())
}

// TestUpper8: every byte value, in every position and beside every other
// kind of byte, is upper-cased as ASCII alone (UTF-8 bytes unchanged).
func TestUpper8(t *testing.T) {
	ref := func(c byte) byte {
		if 'a' <= c && c <= 'z' {
			return c - ('a' - 'A')
		}
		return c
	}
	for _, fill := range []byte{0, 'a', 'Z', 0x7f, 0x80, 0xff} {
		for pos := range 8 {
			for c := range 256 {
				var in, want [8]byte
				for i := range in {
					in[i] = fill
				}
				in[pos] = byte(c)
				for i := range in {
					want[i] = ref(in[i])
				}
				got := upper8(binary.LittleEndian.Uint64(in[:]))
				require.Equal(t, binary.LittleEndian.Uint64(want[:]), got, "byte %#x at %d among %#x", c, pos, fill)
			}
		}
	}
}
