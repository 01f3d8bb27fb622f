package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// TestTypedViewPaths: the typed view takes several paths (read in the
// scanner's pass or after it; members in the predicted order walked in a
// straight line, or one by one): the real bodies give the same view
// whatever their whitespace, their keys' order, or where "type" stands.
func TestTypedViewPaths(t *testing.T) {
	bodies := [][]byte{syntheticBatch(50)}
	for _, n := range []string{"request_batch_state_change.json", "request_batch_first_heartbeat.json"} {
		bodies = append(bodies, readTestdata(t, n))
	}
	for _, n := range []string{"event_GAME_STATE.initial.json", "event_GAME_STATE.with_changes.json", "event_JOKERS_CHANGED.json", "event_HEARTBEAT.json"} {
		bodies = append(bodies, []byte(`{"events":[`+string(readTestdata(t, n))+`]}`))
	}
	bodies = append(bodies, jsonlBodies(t)...)
	// Jokers and cards off the mod's usual shapes: values of other types,
	// escapes, missing, extra and nested members, whitespace inside
	// properties only; the straight-line walk gives up on each at a
	// different member (the properties object: after some fields are set).
	bodies = append(bodies, []byte(`{"events":[{"type":"JOKERS_CHANGED","source":"t","event_id":"j1","payload":{"jokers":[`+
		`{"name":"Joker","id":0.5,"position":0,"properties":{"cost":2,"chips":null,"mult":4,"edition":"none","sell_value":1}},`+
		`{"name":"Greedy\u0020Joker","id":"0.25","position":"1","properties":{"cost":"5","chips":0,"mult":[1],"edition":"holo","sell_value":2.5}},`+
		`{"name":"Blueprint","id":0.7,"position":3,"properties":{"cost":10,"edition":"holographic","extra":{"a":1},"sell_value":5}},`+
		`{"name":"Ride","properties":7,"id":1,"position":4},`+
		`{"name":"Fib","id":2,"position":5,"properties":{}},`+
		`{"name":"Odd","id":3,"position":6,"properties":{"cost":1e2,"mult":-3,"chips":12345678901,"edition":"n\u00e9e","sell_value":true}},`+
		`{"name":"Spaced","id":4,"position":7,"properties": {"cost":3 ,"mult":1}},`+
		`{"properties":{"cost":3},"name":"First","position":8,"id":5}],"old_count":5,"new_count":8}},`+
		`{"type":"GAME_STATE","source":"t","event_id":"g1","payload":{"hand":[`+
		`{"rank":"King","position":0,"enhancement":"none","suit":"Spades","id":0.9,"edition":"none","seal":"none"},`+
		`{"rank":10,"position":"1","enhancement":null,"suit":"diamonds","id":"0.8","edition":{"x":1},"seal":"Red"},`+
		`{"rank":"Ace","suit":"Hearts","position":2,"extra":[1,2],"id":0.7},`+
		`{"rank":"Q\u0075een","position":3 ,"suit":"Clubs"}]}}]}`))
	// Numbers of every shape where the straight-line walks read small
	// integers straight and ids as printed: one and two digits, three,
	// zero, signs, fractions, exponents, at an object's end and not.
	bodies = append(bodies, []byte(`{"events":[{"type":"JOKERS_CHANGED","version":12,"source":"t","event_id":"j2","payload":{"jokers":[`+
		`{"name":"A","id":7,"position":10,"properties":{"cost":12,"chips":100,"mult":0,"edition":"none","sell_value":99}},`+
		`{"name":"B","id":-0.25,"position":100,"properties":{"sell_value":5,"cost":-1,"chips":2.5,"mult":1e1,"edition":"foil"}},`+
		`{"name":"C","id":1e-3,"position":0,"properties":{"cost":0,"mult":9,"sell_value":10}},`+
		`{"name":"D","id":0,"position":7,"properties":{"edition":"none","cost":3}}]}},`+
		`{"type":"GAME_STATE","version":100,"source":"t","event_id":"g2","payload":{"hand":[`+
		`{"rank":"2","position":12,"enhancement":"none","suit":"Spades","id":3,"edition":"none","seal":"none"},`+
		`{"rank":"10","position":100,"enhancement":"none","suit":"Hearts","id":-1,"edition":"none","seal":"none"},`+
		`{"rank":"9","position":0,"enhancement":"none","suit":"Clubs","id":2E2,"edition":"none","seal":"none"},`+
		`{"rank":"7","enhancement":"none","suit":"Diamonds","edition":"none","seal":"none","position":99,"id":0.5}]}}]}`))
	d := New(Options{})
	view := func(ev *jimbotpb.Event) *jimbotpb.Event { return &jimbotpb.Event{Payload: ev.Payload} }
	for _, body := range bodies {
		want := d.Decode(KindBatch, body, 1)
		require.Empty(t, want.Fatal)
		require.Zero(t, want.Rejected)
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // numbers keep their text (card ids are kept as printed)
		require.NoError(t, dec.Decode(&v))
		var indented bytes.Buffer
		require.NoError(t, json.Indent(&indented, body, "", "  "))
		variants := map[string][]byte{
			"indented":  indented.Bytes(),
			"reversed":  writeJSON(v, func(k []string) { sort.Sort(sort.Reverse(sort.StringSlice(k))) }),
			"sorted":    writeJSON(v, sort.Strings),
			"type last": writeJSON(v, typeLast),
			"hash 1":    writeJSON(v, hashOrder(1)),
			"hash 2":    writeJSON(v, hashOrder(2)),
		}
		for name, b := range variants {
			got := d.Decode(KindBatch, b, 1)
			require.Equal(t, want.Accepted, got.Accepted, name)
			for i, ev := range got.Batch.Events {
				w := want.Batch.Events[i]
				require.Equal(t, w.EventId, ev.EventId, name)
				require.NotNil(t, ev.Payload, "%s: event %d", name, i)
				if !proto.Equal(view(w), view(ev)) {
					t.Fatalf("%s: event %d: typed view\n%v\nwant\n%v", name, i, view(ev), view(w))
				}
			}
			got.Batch.Release()
			d.ReleaseResult(got)
		}
		want.Batch.Release()
		d.ReleaseResult(want)
	}
}

// TestFastPathBadNumbers: an invalid number where the straight-line walks
// read small integers straight (a joker's properties, the envelope's
// version) or ids without valuing them (a card's and a joker's), and at the
// positions beside them, fails the event as it does anywhere else; the
// valid ones pass.
func TestFastPathBadNumbers(t *testing.T) {
	places := []string{
		`{"type":"JOKERS_CHANGED","source":"t","event_id":"x","payload":{"jokers":[{"name":"J","id":0.5,"position":1,"properties":{"cost":%s,"mult":1}}]}}`,
		`{"type":"JOKERS_CHANGED","source":"t","event_id":"x","payload":{"jokers":[{"name":"J","id":0.5,"position":1,"properties":{"mult":1,"sell_value":%s}}]}}`,
		`{"type":"JOKERS_CHANGED","source":"t","event_id":"x","payload":{"jokers":[{"name":"J","id":0.5,"position":%s,"properties":{}}]}}`,
		`{"type":"JOKERS_CHANGED","source":"t","event_id":"x","payload":{"jokers":[{"name":"J","id":%s,"position":1}]}}`,
		`{"type":"GAME_STATE","source":"t","event_id":"x","payload":{"hand":[{"rank":"2","position":%s,"suit":"Spades","id":0.5}]}}`,
		`{"type":"GAME_STATE","source":"t","event_id":"x","payload":{"hand":[{"rank":"2","suit":"Spades","id":%s,"seal":"none"}]}}`,
		`{"type":"HEARTBEAT","version":%s,"source":"t","event_id":"x","payload":{}}`,
	}
	d := New(Options{})
	for _, place := range places {
		for _, tok := range []string{"05", "00", "-", "1.", "1e", "01.5", "--1", "1.e2", "+1", "0x1"} {
			body := fmt.Sprintf(`{"events":[`+place+`]}`, tok)
			r := d.Decode(KindBatch, []byte(body), 1)
			require.Zero(t, r.Accepted, "%s", body)
			if r.Batch != nil {
				r.Batch.Release()
			}
			d.ReleaseResult(r)
		}
		for _, tok := range []string{"0", "7", "42", "100", "-3", "2.5", "1e2"} {
			body := fmt.Sprintf(`{"events":[`+place+`]}`, tok)
			r := d.Decode(KindBatch, []byte(body), 1)
			require.Equal(t, 1, r.Accepted, "%s", body)
			r.Batch.Release()
			d.ReleaseResult(r)
		}
	}
}

// writeJSON writes v as compact JSON with each object's keys in the order
// order leaves them (in place).
func writeJSON(v any, order func([]string)) []byte {
	var out []byte
	var w func(v any)
	w = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			order(keys)
			out = append(out, '{')
			for i, k := range keys {
				if i > 0 {
					out = append(out, ',')
				}
				kb, _ := json.Marshal(k)
				out = append(out, kb...)
				out = append(out, ':')
				w(x[k])
			}
			out = append(out, '}')
		case []any:
			out = append(out, '[')
			for i, e := range x {
				if i > 0 {
					out = append(out, ',')
				}
				w(e)
			}
			out = append(out, ']')
		case json.Number:
			out = append(out, x...)
		default:
			b, _ := json.Marshal(x)
			out = append(out, b...)
		}
	}
	w(v)
	return out
}

// hashOrder orders keys as a Lua table's hash part may: by a hash of each
// key and salt, so that every object with the same keys has the same order,
// and another salt (another game process) gives another order.
func hashOrder(salt uint64) func([]string) {
	h := func(k string) uint64 {
		f := fnv.New64a()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], salt)
		f.Write(b[:])
		f.Write([]byte(k))
		return f.Sum64()
	}
	return func(keys []string) {
		sort.SliceStable(keys, func(i, j int) bool { return h(keys[i]) < h(keys[j]) })
	}
}

// hashOrdered is body with every object's keys in hashOrder(salt).
func hashOrdered(tb testing.TB, body []byte, salt uint64) []byte {
	tb.Helper()
	return writeJSON(decodeAny(tb, body), hashOrder(salt))
}

// TestKeyOrderLearned: the walkers learn the key order of the objects they
// meet (the mod's is Lua hash order, which differs between game processes):
// after a GAME_STATE whose cards come in another order, the batch state
// predicts that order, card after card, and the next batch in the
// reference order is learned back.
func TestKeyOrderLearned(t *testing.T) {
	gs := readTestdata(t, "event_GAME_STATE.initial.json")
	canonical := []byte(`{"events":[` + string(gs) + `]}`)
	cardOrder := func(body []byte) []int {
		i := bytes.Index(body, []byte(`"hand":[{`))
		require.Positive(t, i)
		card := body[i+len(`"hand":[`):]
		card = card[:bytes.IndexByte(card, '}')+1]
		var ks []int
		for j := 0; j < len(card); j++ {
			for k, tok := range cardKeys.toks {
				if bytes.HasPrefix(card[j:], []byte(`"`+tok.key+`":`)) {
					ks = append(ks, k)
				}
			}
		}
		require.Len(t, ks, len(cardKeys.toks))
		return ks
	}
	// predicted reports whether every key of a card in order is the one the
	// state predicts after the key before it, or the one after that (the
	// second guess, for a key left out): no card key is looked up.
	predicted := func(r *Result, order []int) bool {
		ord := &r.Batch.Owner.(*batchState).order[cardKeys.id]
		slot := 0
		for _, k := range order {
			p := int(ord[slot])
			if k != p && (p >= len(cardKeys.toks) || k != int(ord[p+1])) {
				return false
			}
			slot = k + 1
		}
		return true
	}
	d := New(Options{})
	for _, salt := range []uint64{1, 2, 3} {
		body := hashOrdered(t, canonical, salt)
		want := cardOrder(body)
		require.NotEqual(t, cardOrder(canonical), want, "salt %d: the same order as the captures", salt)
		r := d.Decode(KindBatch, body, 1)
		require.Equal(t, 1, r.Accepted)
		require.False(t, predicted(r, cardOrder(canonical)), "salt %d: not learned", salt)
		require.True(t, predicted(r, want), "salt %d", salt)
		gs := r.Batch.Events[0].GetGameState()
		require.Len(t, gs.GetHand(), 8)
		require.Equal(t, jimbotpb.Rank_RANK_KING, gs.GetHand()[0].GetRank())
		r.Batch.Release()
		d.ReleaseResult(r)

		r = d.Decode(KindBatch, canonical, 1) // usually the same state, from the pool
		require.True(t, predicted(r, cardOrder(canonical)), "salt %d: learned back", salt)
		r.Batch.Release()
		d.ReleaseResult(r)

		// Cards with a container value (the straight line stops there,
		// the general walk goes on) in the order learned: nothing changes.
		// The pool may hand the second decode another state (under the
		// race detector sync.Pool drops a quarter of what it is given),
		// so the pair is decoded until one state takes both.
		odd := hashOrdered(t, regexp.MustCompile(`"rank":("[^"]*")`).ReplaceAll(canonical, []byte(`"rank":{"v":$1}`)), salt)
		for try := 0; ; try++ {
			require.Less(t, try, 100, "salt %d: never the same state for both decodes", salt)
			r = d.Decode(KindBatch, body, 1)
			st := r.Batch.Owner.(*batchState)
			learned := st.order[cardKeys.id]
			r.Batch.Release()
			d.ReleaseResult(r)
			r = d.Decode(KindBatch, odd, 1)
			require.Equal(t, 1, r.Accepted)
			same := r.Batch.Owner.(*batchState) == st
			if same {
				require.Equal(t, learned, st.order[cardKeys.id], "salt %d: a container value", salt)
			}
			r.Batch.Release()
			d.ReleaseResult(r)
			if same {
				break
			}
		}
	}
}

// TestDeckOrderApart: a hand's cards carry a position and a deck's do not;
// each list learns its own key order (cardKeys for the hand, deckCardKeys
// for cards_remaining and full_deck). Here the hand comes in the captures'
// order and the deck in another: after the GAME_STATE each order predicts
// its own list's cards by their first guesses, and the deck's did not
// overwrite the hand's.
func TestDeckOrderApart(t *testing.T) {
	hand := `{"rank":"King","position":0,"enhancement":"none","suit":"Spades","id":0.5,"edition":"none","seal":"none"}`
	deck := `{"seal":"none","suit":"Hearts","rank":"6","edition":"none","id":0.25,"enhancement":"none"}`
	body := []byte(`{"events":[{"type":"GAME_STATE","source":"t","event_id":"g","payload":{` +
		`"hand":[` + hand + `,` + hand + `],"deck":{"remaining_count":3,"cards_remaining":[` + deck + `,` + deck + `,` + deck + `]}}}]}`)
	d := New(Options{})
	r := d.Decode(KindBatch, body, 1)
	require.Equal(t, 1, r.Accepted)
	defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
	gs := r.Batch.Events[0].GetGameState()
	require.Len(t, gs.GetHand(), 2)
	require.Len(t, gs.GetDeck().GetCardsRemaining(), 3)
	st := r.Batch.Owner.(*batchState)
	firstGuesses := func(ks *keySet, card string) bool {
		ord := &st.order[ks.id]
		slot := 0
		for j := 0; j < len(card); j++ {
			for k, tok := range ks.toks {
				if strings.HasPrefix(card[j:], `"`+tok.key+`":`) {
					if int(ord[slot]) != k {
						return false
					}
					slot = k + 1
				}
			}
		}
		return true
	}
	require.True(t, firstGuesses(&cardKeys, hand), "hand")
	require.True(t, firstGuesses(&deckCardKeys, deck), "deck")
}

// TestTypeGuess: when an event's "type" comes after its payload, the
// payload is walked by the walker of the type last seen with a payload that
// began with the same key; a wrong guess still gives the right view.
func TestTypeGuess(t *testing.T) {
	d := New(Options{})
	body := hashOrdered(t, syntheticBatch(50), 2) // "type" after "payload"
	require.Less(t, bytes.Index(body, []byte(`"payload"`)), bytes.Index(body, []byte(`"type"`)))
	r := d.Decode(KindBatch, body, 1)
	require.Equal(t, 50, r.Accepted)
	g := &r.Batch.Owner.(*batchState).guess
	for i, ev := range r.Batch.Events {
		require.Equal(t, ev.Type, g.get(ev.PayloadJson, 0), "event %d: learned", i)
	}
	r.Batch.Release()
	d.ReleaseResult(r)

	// HAND_PLAYED and GAME_STATE payloads that both begin with
	// "hand_number", one after the other: every guess but the first is
	// wrong.
	gs := bytes.Replace(readTestdata(t, "event_GAME_STATE.initial.json"), []byte(`"type":"GAME_STATE",`), nil, 1)
	gs = append(gs[:len(gs)-1], `,"type":"GAME_STATE"}`...)
	hp := `{"source":"BalatroMCP","payload":{"hand_number":2,"hands_remaining":3},"type":"HAND_PLAYED"}`
	mixed := []byte(`{"events":[` + hp + `,` + string(gs) + `,` + hp + `,` + string(gs) + `]}`)
	require.Contains(t, string(gs), `"payload":{"hand_number":`)
	typeFirst := writeJSON(decodeAny(t, mixed), func(k []string) {
		for i, key := range k {
			if key == "type" {
				copy(k[1:i+1], k[:i])
				k[0] = "type"
			}
		}
	})
	want := d.Decode(KindBatch, typeFirst, 1)
	for range 2 {
		got := d.Decode(KindBatch, mixed, 1)
		require.Equal(t, 4, got.Accepted)
		for i, ev := range got.Batch.Events {
			w := want.Batch.Events[i]
			require.Equal(t, w.Type, ev.Type)
			require.True(t, proto.Equal(&jimbotpb.Event{Payload: w.Payload}, &jimbotpb.Event{Payload: ev.Payload}), "event %d: %v", i, ev.Payload)
		}
		got.Batch.Release()
		d.ReleaseResult(got)
	}
	want.Batch.Release()
	d.ReleaseResult(want)
}

func decodeAny(tb testing.TB, body []byte) any {
	tb.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// typeLast puts "type" last: the typed view is read after the scan.
func typeLast(keys []string) {
	for i, k := range keys {
		if k == "type" {
			copy(keys[i:], keys[i+1:])
			keys[len(keys)-1] = "type"
			return
		}
	}
}
