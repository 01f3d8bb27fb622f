package decode

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

const repNF = uint32(jimbotpb.Repair_REPAIR_NON_FINITE)
const repCB = uint32(jimbotpb.Repair_REPAIR_CONTROL_BYTE)

func batchOf(events ...string) string {
	return `{"source":"BalatroMCP","timestamp":1751439182000,"batch_id":"b","events":[` + strings.Join(events, ",") + `]}`
}

func mcEvent(payload string) string {
	return `{"type":"MONEY_CHANGED","version":1,"source":"BalatroMCP","payload":` + payload + `,"event_id":"e1","timestamp":266945.45746667}`
}

// TestQuirks has one body per quirk of balatromcp-client.md section 3.
func TestQuirks(t *testing.T) {
	d := New(Options{})
	good := mcEvent(`{"difference":9,"old_value":14,"new_value":23}`)

	t.Run("Q1Q2_non_finite", func(t *testing.T) {
		for _, tok := range []string{"nan", "-nan", "inf", "-inf", "-nan(ind)", "1.#INF", "-1.#INF", "-1.#IND", "1.#QNAN"} {
			body := batchOf(good, mcEvent(`{"difference":`+tok+`,"old_value":14,"new_value":[`+tok+`, `+tok+`]}`))
			r := decodeT(t, d, KindBatch, body)
			require.Empty(t, errText(r), tok)
			require.Equal(t, 2, r.Accepted)
			require.Equal(t, repNF, r.Repairs)
			require.Equal(t, 3, r.RepairCount)
			require.Zero(t, r.Batch.Events[0].Repairs, "the untouched event has no repair bit")
			ev := r.Batch.Events[1]
			require.Equal(t, repNF, ev.Repairs)
			require.Equal(t, `{"difference":null,"old_value":14,"new_value":[null, null]}`, string(ev.PayloadJson))
			require.EqualValues(t, 0, ev.GetMoneyChanged().Difference)
			require.EqualValues(t, 14, ev.GetMoneyChanged().OldValue)
			require.Equal(t, "b", ev.BatchId)
		}
		// A whole GAME_STATE with nan chips, single event.
		gs := strings.Replace(string(readTestdata(t, "event_GAME_STATE.initial.json")), `"chips":0,`, `"chips":nan,`, 1)
		r := decodeT(t, d, KindEvent, gs)
		require.Equal(t, 1, r.Accepted, errText(r))
		require.Equal(t, repNF, r.Batch.Events[0].Repairs)
		require.Zero(t, r.Batch.Events[0].GetGameState().Chips)
	})

	t.Run("Q3_large_numbers", func(t *testing.T) {
		p := `{"old_value":1e+15,"new_value":1.2345678901235e+14,"difference":9.007199254741e+15,"tiny":1e-05,"neg":-0,"big":1751439161000}`
		r := decodeT(t, d, KindBatch, batchOf(mcEvent(p)))
		require.Equal(t, 1, r.Accepted, errText(r))
		ev := r.Batch.Events[0]
		require.Equal(t, p, string(ev.PayloadJson))
		require.EqualValues(t, 2147483647, ev.GetMoneyChanged().OldValue)
		require.Zero(t, r.Repairs)
	})

	t.Run("Q4_float_ids_and_timestamps", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"GAME_STATE","source":"BalatroMCP","timestamp":248396.16926667,"payload":{"hand":[{"id":0.99989895846132,"rank":"King","suit":"Spades","position":0}],"jokers":[{"id":"joker_3","name":"Joker","position":1.0}],"blind":{"name":"Big Blind","chips":1.2e+3,"mult":1.5}}}`)
		ev := r.Batch.Events[0]
		gs := ev.GetGameState()
		require.Equal(t, "0.99989895846132", gs.Hand[0].Id)
		require.Equal(t, "joker_3", gs.Jokers[0].Id)
		require.EqualValues(t, 1, gs.Jokers[0].Position)
		require.EqualValues(t, 1200, gs.Blind.Chips)
		require.EqualValues(t, 1.5, gs.Blind.Mult)
		require.Equal(t, 248396.16926667, ev.ClientTimestamp)
	})

	t.Run("Q5_clocks", func(t *testing.T) {
		// An event timestamp from love.timer: not epoch, the server's time
		// stands in; connection_test's epoch ms is used as is.
		r := decodeT(t, d, KindBatch, batchOf(good))
		require.Equal(t, recvAt/1e6, r.Batch.Events[0].Timestamp)
		require.Equal(t, 266945.45746667, r.Batch.Events[0].ClientTimestamp)
		r = decodeT(t, d, KindEvent, string(readTestdata(t, "request_connection_test_body.json")))
		require.EqualValues(t, 1751439161000, r.Batch.Events[0].Timestamp)
		// Absent or null: server time, client 0.
		r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"s","payload":{},"timestamp":null}`)
		require.Equal(t, recvAt/1e6, r.Batch.Events[0].Timestamp)
		require.Zero(t, r.Batch.Events[0].ClientTimestamp)
		require.Empty(t, r.Batch.Events[0].ExtraJson)
		// A numeric string is read; garbage is kept in extra_json.
		r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"s","payload":{},"timestamp":"1751439161000.5"}`)
		require.Equal(t, 1751439161000.5, r.Batch.Events[0].ClientTimestamp)
		r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"s","payload":{},"timestamp":{"t":1}}`)
		require.Equal(t, `{"timestamp":{"t":1}}`, string(r.Batch.Events[0].ExtraJson))
	})

	t.Run("Q6_empty_tables", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"GAME_STATE","changes":{},"source":"BalatroMCP","payload":{"jokers":{},"hand":{},"consumables":{},"shop_items":{},"score_history":{},"deck":{"remaining_count":0,"cards_remaining":{},"full_deck":{}}}}`)
		require.Equal(t, 1, r.Accepted, errText(r))
		ev := r.Batch.Events[0]
		gs := ev.GetGameState()
		require.Empty(t, gs.Jokers)
		require.Empty(t, gs.Hand)
		require.Empty(t, gs.Consumables)
		require.Empty(t, gs.Deck.FullDeck)
		require.Empty(t, gs.ScoreHistory)
		require.Equal(t, `{"changes":{}}`, string(ev.ExtraJson))
	})

	t.Run("Q7_scalars_as_strings", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"MONEY_CHANGED","source":"s","payload":{"old_value":"14","new_value":"2.5","difference":"true"}}`)
		mc := r.Batch.Events[0].GetMoneyChanged()
		require.EqualValues(t, 14, mc.OldValue)
		require.EqualValues(t, 2, mc.NewValue)
		require.EqualValues(t, 0, mc.Difference)
		r = decodeT(t, d, KindEvent, `{"type":"GAME_STATE","source":"s","payload":{"in_game":"true","ante":"3","blind":{"chips":"300","boss":"true"}}}`)
		gs := r.Batch.Events[0].GetGameState()
		require.True(t, gs.InGame)
		require.EqualValues(t, 3, gs.Ante)
		require.EqualValues(t, 300, gs.Blind.Chips)
		require.True(t, gs.Blind.Boss)
	})

	t.Run("Q8_unescaped_quotes_in_arrays", func(t *testing.T) {
		broken := `{"type":"DIAGNOSTIC","source":"BalatroMCP","payload":{"available_functions":["a"b","c\d"]},"event_id":"x"}`
		body := batchOf(good, broken, good)
		r := decodeT(t, d, KindBatch, body)
		require.Empty(t, r.Fatal)
		require.Equal(t, 2, r.Accepted)
		require.Equal(t, 1, r.Rejected)
		require.Equal(t, 1, r.Errors[0].Index)
		require.Contains(t, r.Errors[0].Reason, "Invalid format - ")
		require.Contains(t, errText(r), "Processed 2/3 events. Errors: Event 1: Invalid format - ")
		require.Equal(t, broken, string(r.Batch.Events[1].Raw))
		require.Equal(t, route.TopicDeadletter, r.Batch.Topics[1])
		require.Equal(t, "b", r.Batch.Events[0].BatchId)
		require.Equal(t, "b", r.Batch.Events[2].BatchId)
	})

	t.Run("Q9_unescaped_keys", func(t *testing.T) {
		broken := mcEvent(`{"we"ird":1,"inf":2}`)
		r := decodeT(t, d, KindBatch, batchOf(broken, good))
		require.Equal(t, 1, r.Accepted)
		require.Equal(t, 1, r.Rejected)
		require.Equal(t, broken, string(r.Batch.Events[0].Raw))
		// Number-like keys are fine.
		r = decodeT(t, d, KindBatch, batchOf(mcEvent(`{"1":1,"1.5":2,"inf":3,"nan":nan}`)))
		require.Equal(t, 1, r.Accepted)
		require.Equal(t, `{"1":1,"1.5":2,"inf":3,"nan":null}`, string(r.Batch.Events[0].PayloadJson))
	})

	t.Run("Q10_control_bytes_and_utf8", func(t *testing.T) {
		raw := "{\"type\":\"ERROR\",\"source\":\"Balatro\x01MCP\",\"payload\":{\"message\":\"esc\x1b[0m nul\x00 bs\x08 ff\x0c tab\t\"},\"event_id\":\"e\x1f\"}"
		r := decodeT(t, d, KindBatch, batchOf(good, raw))
		require.Equal(t, 2, r.Accepted, errText(r))
		require.Equal(t, repCB, r.Repairs)
		require.Equal(t, 7, r.RepairCount)
		ev := r.Batch.Events[1]
		require.Equal(t, repCB, ev.Repairs)
		require.Zero(t, r.Batch.Events[0].Repairs)
		require.Equal(t, "Balatro\x01MCP", ev.Source)
		require.Equal(t, "e\x1f", ev.EventId)
		require.Equal(t, `{"message":"esc\u001b[0m nul\u0000 bs\u0008 ff\u000c tab\u0009"}`, string(ev.PayloadJson))
		require.Equal(t, "esc\x1b[0m nul\x00 bs\x08 ff\x0c tab\t", ev.GetError().Message)
		// Invalid UTF-8 is accepted; proto strings get U+FFFD, bytes stay.
		r = decodeT(t, d, KindEvent, "{\"type\":\"HEARTBEAT\",\"source\":\"a\xff\xfeb\",\"payload\":{\"version\":\"\xc0\x80\"},\"odd\":\"\xff\"}")
		require.Equal(t, 1, r.Accepted, errText(r))
		ev = r.Batch.Events[0]
		require.Equal(t, "a\ufffd\ufffdb", ev.Source)
		require.Equal(t, "\ufffd\ufffd", ev.GetHeartbeat().Version)
		require.Equal(t, "{\"version\":\"\xc0\x80\"}", string(ev.PayloadJson))
		require.Equal(t, "{\"odd\":\"\xff\"}", string(ev.ExtraJson))
		_, err := proto.Marshal(ev)
		require.NoError(t, err)
		// Escapes are decoded; a lone surrogate becomes U+FFFD.
		r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"a\"b\\c\/d\u00e9\ud83d\ude80\ud800","payload":{}}`)
		require.Equal(t, "a\"b\\c/dé🚀\ufffd", r.Batch.Events[0].Source)
	})

	t.Run("Q11_lists_as_objects", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"GAME_STATE","source":"s","payload":{"hand":{"1":{"rank":"Ace","suit":"Hearts","id":1},"2":{"rank":"10","suit":"Clubs","id":2}},"jokers":[{"1":1,"2":2},{"1":3}],"consumables":["10","20"]}}`)
		gs := r.Batch.Events[0].GetGameState()
		require.Len(t, gs.Hand, 2)
		require.Equal(t, jimbotpb.Rank_RANK_ACE, gs.Hand[0].Rank)
		require.Equal(t, jimbotpb.Suit_SUIT_CLUBS, gs.Hand[1].Suit)
		require.Len(t, gs.Jokers, 2)
		require.Empty(t, gs.Consumables)
	})

	t.Run("Q12_missing_and_null", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"GAME_STATE","source":"s","payload":{"in_game":false,"timestamp":1751439161,"phase":"MENU","blind":null,"deck":{"full_deck":[{"rank":"unknown","suit":"unknown"},{"rank":null,"suit":null,"id":null}]}}}`)
		gs := r.Batch.Events[0].GetGameState()
		require.Nil(t, gs.Blind)
		require.Equal(t, jimbotpb.GamePhase_PHASE_MENU, gs.GameState)
		require.Equal(t, "MENU", gs.PhaseName)
		require.Len(t, gs.Deck.FullDeck, 2)
		require.Empty(t, gs.Deck.FullDeck[0].Id)
		require.Equal(t, jimbotpb.Rank_RANK_UNSPECIFIED, gs.Deck.FullDeck[1].Rank)
	})

	t.Run("Q13_mixed_types", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"GAME_STATE","source":"s","payload":{"chips":{"m":1.5,"e":400},"money":{"array":[1]},"jokers":[{"id":"joker_1","properties":{"mult":{"m":1}}}]}}`)
		require.Equal(t, 1, r.Accepted)
		gs := r.Batch.Events[0].GetGameState()
		require.Zero(t, gs.Chips)
		require.Equal(t, "joker_1", gs.Jokers[0].Id)
	})

	t.Run("Q14_duplicate_ids_in_changes", func(t *testing.T) {
		body := readTestdata(t, "request_batch_state_change.json")
		r := decodeT(t, d, KindBatch, string(body))
		require.Equal(t, 6, r.Accepted)
		seen := map[uint64]bool{}
		for _, k := range r.Keys {
			require.False(t, seen[k])
			seen[k] = true
		}
		gsEv := r.Batch.Events[5]
		var extra struct{ Changes []refEvent }
		require.NoError(t, json.Unmarshal(gsEv.ExtraJson, &extra))
		require.Len(t, extra.Changes, 5)
		require.Equal(t, r.Batch.Events[0].EventId, extra.Changes[0].str(t, "event_id"))
		// The same events resent in a new batch have the same keys.
		body2 := bytes.Replace(body, []byte("de39f1f4-7dfc-49c0-b364-72c1dbe6fd38"), []byte("new-batch"), 1)
		r2 := decodeT(t, d, KindBatch, string(body2))
		require.Equal(t, r.Keys, r2.Keys)
		require.Equal(t, "new-batch", r2.Batch.Events[0].BatchId)
	})

	t.Run("Q15_envelope", func(t *testing.T) {
		r := decodeT(t, d, KindEvent, `{"type":"connection_test","data":{"message":"m"},"source":"BalatroMCP","timestamp":1751439161000}`)
		ev := r.Batch.Events[0]
		require.Equal(t, `{"message":"m"}`, string(ev.PayloadJson))
		require.EqualValues(t, 1, ev.Version)
		require.True(t, strings.HasPrefix(ev.EventId, "jb-"))
		require.Zero(t, r.Keys[0])
		require.Empty(t, ev.ExtraJson)
		// Extra keys, case-insensitive type, headers and metadata, version kept.
		r = decodeT(t, d, KindEvent, `{"type":"heartbeat","source":"s","payload":{},"version":2,"priority":"high","subtype":"X","debug":true,"initial":false,"unknown_key":[1, {"a":"b"}],"headers":{"h":"1"},"metadata":{"m":"2","n":3,"o":{"p":1}},"event_id":"id-1","data":"alias ignored"}`)
		ev = r.Batch.Events[0]
		require.Equal(t, jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, ev.Type)
		require.Equal(t, "heartbeat", ev.TypeName)
		require.EqualValues(t, 2, ev.Version)
		require.Equal(t, "high", ev.Priority)
		require.Equal(t, "X", ev.Subtype)
		require.Equal(t, "id-1", ev.EventId)
		require.NotZero(t, r.Keys[0])
		require.Equal(t, map[string]string{"h": "1", "m": "2", "n": "3", "o": `{"p":1}`}, ev.Metadata)
		require.Equal(t, `{"debug":true,"initial":false,"unknown_key":[1, {"a":"b"}],"data":"alias ignored"}`, string(ev.ExtraJson))
		// Keys are case-sensitive: TYPE is not type.
		r = decodeT(t, d, KindEvent, `{"TYPE":"HEARTBEAT","source":"s","payload":{}}`)
		require.Equal(t, "Invalid JSON: missing field `type`", errText(r))
		// Version 1e+15 saturates; a huge event_id number is kept as text.
		r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"s","payload":{},"version":1e+15,"event_id":12345678901234567890}`)
		require.EqualValues(t, 2147483647, r.Batch.Events[0].Version)
		require.Equal(t, "12345678901234567890", r.Batch.Events[0].EventId)
	})

	t.Run("Q16_key_order", func(t *testing.T) {
		a := `{"type":"HEARTBEAT","version":1,"source":"BalatroMCP","payload":{"version":"0.1.0","uptime":1.5},"event_id":"e","timestamp":1.25}`
		b := `{"timestamp":1.25,"event_id":"e","payload":{"version":"0.1.0","uptime":1.5},"source":"BalatroMCP","version":1,"type":"HEARTBEAT"}`
		ra := decodeT(t, d, KindEvent, a)
		rb := decodeT(t, d, KindEvent, b)
		require.Equal(t, ra.Keys, rb.Keys)
		require.True(t, proto.Equal(ra.Batch.Events[0].GetHeartbeat(), rb.Batch.Events[0].GetHeartbeat()))
	})

	t.Run("Q17_whitespace", func(t *testing.T) {
		body := readTestdata(t, "request_batch_state_change.json")
		var v any
		require.NoError(t, json.Unmarshal(body, &v))
		pretty, err := json.MarshalIndent(v, "", "  ")
		require.NoError(t, err)
		pretty = append(append([]byte(" \r\n\t"), pretty...), "\n\n"...)
		r := decodeT(t, d, KindBatch, string(pretty))
		require.Equal(t, 6, r.Accepted, errText(r))
		require.Zero(t, r.Repairs)
		for _, ev := range r.Batch.Events {
			require.True(t, bytes.Contains(pretty, ev.PayloadJson))
			if len(ev.ExtraJson) > 0 {
				var x any
				require.NoError(t, json.Unmarshal(ev.ExtraJson, &x), string(ev.ExtraJson))
			}
		}
	})
}

func TestPrepass(t *testing.T) {
	f := func(in, want string, bits uint32, n int) {
		t.Helper()
		out, gotBits, gotN := Prepass(nil, []byte(in))
		require.Equal(t, want, string(out), in)
		require.Equal(t, bits, gotBits, in)
		require.Equal(t, n, gotN, in)
	}
	f(`{"a":nan}`, `{"a":null}`, repNF, 1)
	f(`[nan,-nan,inf,-inf,-nan(ind),1.#INF,-1.#INF,-1.#IND,1.#QNAN]`, `[null,null,null,null,null,null,null,null,null]`, repNF, 9)
	f(`[ nan , inf ]`, `[ null , null ]`, repNF, 2)
	f(`nan`, `null`, repNF, 1)
	f("{\"a\":\"x\x01y\x1f\"}", `{"a":"x\u0001y\u001f"}`, repCB, 2)
	f("{\"a\":\"\x00\",\"b\":inf}", `{"a":"\u0000","b":null}`, repNF|repCB, 2)
	// Inside strings and keys nothing but control bytes changes.
	f(`{"nan":"nan","inf":"-inf 1.#INF","s":"\"nan\" inf"}`, `{"nan":"nan","inf":"-inf 1.#INF","s":"\"nan\" inf"}`, 0, 0)
	// Not tokens: part of another word or number.
	f(`{"a":nanx,"b":1.5,"c":-1,"d":10,"e":infinite,"f":null,"g":1e5}`, `{"a":nanx,"b":1.5,"c":-1,"d":10,"e":infinite,"f":null,"g":1e5}`, 0, 0)
	// Valid JSON passes unchanged, byte for byte.
	for _, name := range []string{"request_batch_state_change.json", "request_batch_first_heartbeat.json",
		"event_GAME_STATE.initial.json", "request_connection_test_body.json", "captured_heartbeat_batches_2025-07-01.jsonl"} {
		in := readTestdata(t, name)
		out, bits, n := Prepass(nil, in)
		require.Equal(t, in, out, name)
		require.Zero(t, bits)
		require.Zero(t, n)
	}
	f(`{"a":"\\","b":"\\\"nan"}`, `{"a":"\\","b":"\\\"nan"}`, 0, 0)
	// Positions map back to the input.
	in := []byte("[nan,\"\x01\",1.#QNAN,7]")
	out, rs := prepass(nil, in, nil)
	require.Equal(t, `[null,"\u0001",null,7]`, string(out))
	require.Equal(t, len(in)-2, origPos(rs, len(out)-2)) // the 7
	require.Equal(t, 0, origPos(rs, 0))
	require.Equal(t, repNF|repCB, repairBits(rs, 0, len(out)))
	require.Equal(t, repCB, repairBits(rs, 5, 13))
}

// TestPoolReuse checks that a recycled batch carries nothing of the
// previous request.
func TestPoolReuse(t *testing.T) {
	d := New(Options{})
	big := readTestdata(t, "request_batch_first_heartbeat.json")
	for i := 0; i < 3; i++ {
		r := d.Decode(KindBatch, big, recvAt)
		require.Equal(t, 2, r.Accepted)
		r.Batch.Release()
		d.ReleaseResult(r)
		r = d.Decode(KindBatch, []byte(batchOf(
			`{"type":"GAME_STATE","source":"s","payload":{"hand":{}}}`,
			`{"type":"HEARTBEAT","source":"s","payload":{},"metadata":{"a":"b"},"x":1}`,
			`{"type":"HEARTBEAT","source":"s","payload":{}}`,
		)), recvAt)
		require.Equal(t, 3, r.Accepted)
		gs := r.Batch.Events[0].GetGameState()
		require.Empty(t, gs.Hand)
		require.Nil(t, gs.Deck)
		require.Empty(t, gs.ScoreHistory)
		require.Empty(t, r.Batch.Events[0].ExtraJson)
		require.Nil(t, r.Batch.Events[2].Metadata)
		require.Empty(t, r.Batch.Events[2].ExtraJson)
		require.Empty(t, r.Batch.Events[2].GetHeartbeat().Version)
		r.Batch.Release()
		d.ReleaseResult(r)
	}
}

// TestCallerBodyNotAliased: the caller may reuse its body right away.
func TestCallerBodyNotAliased(t *testing.T) {
	d := New(Options{})
	body := readTestdata(t, "request_batch_state_change.json")
	want := string(body)
	var ref struct{ Events []refEvent }
	require.NoError(t, json.Unmarshal(body, &ref))
	r := d.Decode(KindBatch, body, recvAt)
	defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
	for i := range body {
		body[i] = 'X'
	}
	for i, ev := range r.Batch.Events {
		checkEvent(t, ref.Events[i], ev, r.Batch.Topics[i], r.Keys[i], "de39f1f4-7dfc-49c0-b364-72c1dbe6fd38")
		require.Contains(t, want, string(ev.PayloadJson))
	}
}

// TestConcurrent decodes from several goroutines, releasing batches on
// other goroutines (as the fan-out does); run with -race.
func TestConcurrent(t *testing.T) {
	d := New(Options{})
	bodies := [][]byte{
		readTestdata(t, "request_batch_state_change.json"),
		readTestdata(t, "request_batch_first_heartbeat.json"),
		syntheticBatch(50),
		[]byte(batchOf(mcEvent(`{"a":nan}`), mcEvent("{\"s\":\"\x01\"}"))),
	}
	want := make([]int, len(bodies))
	for i, b := range bodies {
		r := d.Decode(KindBatch, b, recvAt)
		want[i] = r.Accepted
		r.Batch.Release()
		d.ReleaseResult(r)
	}
	release := make(chan *route.Batch, 64)
	var rel sync.WaitGroup
	rel.Add(1)
	go func() {
		defer rel.Done()
		for b := range release {
			for _, ev := range b.Events {
				if _, err := proto.Marshal(ev); err != nil {
					t.Error(err)
				}
			}
			b.Release()
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := (g + i) % len(bodies)
				r := d.Decode(KindBatch, bodies[k], recvAt)
				if r.Accepted != want[k] || r.Fatal != "" {
					t.Errorf("body %d: %d accepted, want %d: %s", k, r.Accepted, want[k], r.AppendError(nil))
				}
				r.Batch.Retain(1)
				release <- r.Batch
				r.Batch.Release()
				d.ReleaseResult(r)
			}
		}()
	}
	wg.Wait()
	close(release)
	rel.Wait()
}

func TestFromProto(t *testing.T) {
	d := New(Options{})
	evs := []*jimbotpb.Event{
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "grpc", EventId: "a", ClientTimestamp: 1.5},
		{TypeName: "connection_test", Source: "grpc", PayloadJson: []byte(`{"message":"x"}`)},
		{TypeName: "SCORING", Subtype: "score_update", Source: "grpc"},
		{TypeName: "NOPE", Source: "grpc"},
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT},
		{Source: "grpc"},
	}
	r := d.FromProto("batch-9", evs, recvAt)
	defer d.ReleaseResult(r)
	require.Equal(t, 3, r.Accepted)
	require.Equal(t, 3, r.Rejected)
	require.Equal(t, "Processed 3/6 events. Errors: Event 3: Invalid format - Unknown event type: NOPE; "+
		"Event 4: Invalid format - Event source cannot be empty; Event 5: Invalid format - missing field `type`", errText(r))
	b := r.Batch
	require.Equal(t, 6, b.Len())
	require.Equal(t, "system.heartbeat", b.Events[0].Topic)
	require.Equal(t, Key("grpc", "a", 1.5), r.Keys[0])
	require.Equal(t, "system.connection.test", b.Events[1].Topic)
	require.Equal(t, jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, b.Events[1].Type)
	require.True(t, strings.HasPrefix(b.Events[1].EventId, "jb-"))
	require.Zero(t, r.Keys[1])
	require.Equal(t, "game.scoring.score_update", b.Events[2].Topic)
	for i := 3; i < 6; i++ {
		require.Equal(t, route.TopicDeadletter, b.Topics[i])
		require.Equal(t, "system.deadletter", b.Events[i].Topic)
		require.NotEmpty(t, b.Events[i].DeadletterReason)
		require.Zero(t, r.Keys[i])
	}
	for _, ev := range b.Events {
		require.Equal(t, "batch-9", ev.BatchId)
		require.Equal(t, recvAt, ev.ReceivedAtNs)
	}
	b.Release() // no free function: nothing happens
}

// TestDepth: nesting beyond MaxDepth rejects the event, not the batch.
func TestDepth(t *testing.T) {
	d := New(Options{MaxDepth: 16})
	deep := strings.Repeat("[", 20) + strings.Repeat("]", 20)
	ok := strings.Repeat("[", 5) + strings.Repeat("]", 5)
	r := decodeT(t, d, KindBatch, batchOf(mcEvent(ok), mcEvent(deep), mcEvent(ok)))
	require.Equal(t, 2, r.Accepted)
	require.Equal(t, 1, r.Rejected)
	require.Contains(t, errText(r), "Event 1: Invalid format - nesting too deep at offset ")
	r = decodeT(t, d, KindEvent, mcEvent(deep))
	require.Contains(t, r.Fatal, "nesting too deep")
	// 10,000 levels with the default limit: refused, cheaply.
	d = New(Options{})
	r = decodeT(t, d, KindBatch, `{"events":[`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`]}`)
	require.Equal(t, 1, r.Rejected)
	r = decodeT(t, d, KindEvent, strings.Repeat("{\"a\":", 10000)+"1"+strings.Repeat("}", 10000))
	require.NotEmpty(t, r.Fatal)
}
