package decode

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// refCard is a card as encoding/json reads it; Number keeps the id's text.
type refCard struct {
	ID          json.Number `json:"id"`
	Rank        string      `json:"rank"`
	Suit        string      `json:"suit"`
	Enhancement string      `json:"enhancement"`
	Edition     string      `json:"edition"`
	Seal        string      `json:"seal"`
	Position    int32       `json:"position"`
}

type refJoker struct {
	ID         json.Number `json:"id"`
	Name       string      `json:"name"`
	Position   int32       `json:"position"`
	Properties struct {
		Mult      float64 `json:"mult"`
		Chips     float64 `json:"chips"`
		Cost      float64 `json:"cost"`
		SellValue float64 `json:"sell_value"`
		Edition   string  `json:"edition"`
	} `json:"properties"`
}

type refGameState struct {
	InGame            bool    `json:"in_game"`
	GameID            string  `json:"game_id"`
	Ante              int32   `json:"ante"`
	Round             int32   `json:"round"`
	HandNumber        int32   `json:"hand_number"`
	Chips             float64 `json:"chips"`
	Mult              float64 `json:"mult"`
	Money             float64 `json:"money"`
	HandSize          int32   `json:"hand_size"`
	HandsRemaining    int32   `json:"hands_remaining"`
	DiscardsRemaining int32   `json:"discards_remaining"`
	GameState         string  `json:"game_state"`
	UIState           string  `json:"ui_state"`
	FrameCount        int32   `json:"frame_count"`
	Jokers            []refJoker
	Hand              []refCard
	Consumables       []struct {
		ID         json.Number `json:"id"`
		Name       string      `json:"name"`
		CardType   string      `json:"card_type"`
		Position   int32       `json:"position"`
		Properties struct {
			Cost    float64 `json:"cost"`
			Edition string  `json:"edition"`
		} `json:"properties"`
	}
	Deck struct {
		RemainingCount int32     `json:"remaining_count"`
		CardsRemaining []refCard `json:"cards_remaining"`
		FullDeck       []refCard `json:"full_deck"`
	} `json:"deck"`
	Blind struct {
		Name     string  `json:"name"`
		Chips    int32   `json:"chips"`
		ChipText string  `json:"chip_text"`
		Mult     float32 `json:"mult"`
		Defeated bool    `json:"defeated"`
		Boss     bool    `json:"boss"`
	} `json:"blind"`
	ScoreHistory map[string]struct {
		Label string  `json:"label"`
		Amt   float64 `json:"amt"`
	} `json:"score_history"`
}

func checkCards(t *testing.T, want []refCard, got []*jimbotpb.Card) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.ID.String(), g.Id)
		require.Equal(t, rankOf(w.Rank), g.Rank)
		require.NotEqual(t, jimbotpb.Rank_RANK_UNSPECIFIED, g.Rank, w.Rank)
		require.Equal(t, suitOf(w.Suit), g.Suit)
		require.NotEqual(t, jimbotpb.Suit_SUIT_UNSPECIFIED, g.Suit, w.Suit)
		require.Equal(t, w.Enhancement, g.Enhancement)
		require.Equal(t, w.Edition, g.Edition)
		require.Equal(t, w.Seal, g.Seal)
		require.Equal(t, w.Position, g.Position)
	}
}

func checkJokers(t *testing.T, want []refJoker, got []*jimbotpb.Joker) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.ID.String(), g.Id)
		require.Equal(t, w.Name, g.Name)
		require.Equal(t, w.Position, g.Position)
		require.Equal(t, w.Properties.Mult, g.Properties.Mult)
		require.Equal(t, w.Properties.Chips, g.Properties.Chips)
		require.Equal(t, w.Properties.Cost, g.Properties.Cost)
		require.Equal(t, w.Properties.SellValue, g.Properties.SellValue)
		require.Equal(t, w.Properties.Edition, g.Properties.Edition)
	}
}

func checkGameState(t *testing.T, payload []byte, gs *jimbotpb.GameStateEvent) {
	t.Helper()
	var ref refGameState
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&ref))
	require.Equal(t, ref.InGame, gs.InGame)
	require.Equal(t, ref.GameID, gs.GameId)
	require.Equal(t, ref.Ante, gs.Ante)
	require.Equal(t, ref.Round, gs.Round)
	require.Equal(t, ref.HandNumber, gs.HandNumber)
	require.Equal(t, ref.Chips, gs.Chips)
	require.Equal(t, ref.Mult, gs.Mult)
	require.Equal(t, ref.Money, gs.Money)
	require.Equal(t, ref.HandSize, gs.HandSize)
	require.Equal(t, ref.HandsRemaining, gs.HandsRemaining)
	require.Equal(t, ref.DiscardsRemaining, gs.DiscardsRemaining)
	require.Equal(t, ref.GameState, gs.PhaseName)
	require.Equal(t, phaseOf(ref.GameState), gs.GameState)
	require.Equal(t, ref.UIState, gs.UiState)
	require.Equal(t, ref.FrameCount, gs.FrameCount)
	checkJokers(t, ref.Jokers, gs.Jokers)
	checkCards(t, ref.Hand, gs.Hand)
	require.Len(t, gs.Consumables, len(ref.Consumables))
	for i, w := range ref.Consumables {
		g := gs.Consumables[i]
		require.Equal(t, w.ID.String(), g.Id)
		require.Equal(t, w.Name, g.Name)
		require.Equal(t, w.CardType, g.CardType)
		require.Equal(t, w.Position, g.Position)
		require.Equal(t, w.Properties.Cost, g.Properties.Cost)
		require.Equal(t, w.Properties.Edition, g.Properties.Edition)
	}
	require.Equal(t, ref.Deck.RemainingCount, gs.Deck.RemainingCount)
	checkCards(t, ref.Deck.CardsRemaining, gs.Deck.CardsRemaining)
	checkCards(t, ref.Deck.FullDeck, gs.Deck.FullDeck)
	require.Equal(t, ref.Blind.Name, gs.Blind.Name)
	require.Equal(t, ref.Blind.Chips, gs.Blind.Chips)
	require.Equal(t, ref.Blind.ChipText, gs.Blind.ChipText)
	require.Equal(t, ref.Blind.Mult, gs.Blind.Mult)
	require.Equal(t, ref.Blind.Defeated, gs.Blind.Defeated)
	require.Equal(t, ref.Blind.Boss, gs.Blind.Boss)
	require.Len(t, gs.ScoreHistory, len(ref.ScoreHistory))
	for k, w := range ref.ScoreHistory {
		require.Equal(t, w.Label, gs.ScoreHistory[k].Label, k)
		require.Equal(t, w.Amt, gs.ScoreHistory[k].Amt, k)
	}
	require.Empty(t, gs.ShopItems)
	require.Empty(t, gs.Changes)
}

func TestTypedGameState(t *testing.T) {
	d := New(Options{})
	for _, name := range []string{"event_GAME_STATE.initial.json", "event_GAME_STATE.with_changes.json"} {
		t.Run(name, func(t *testing.T) {
			body := readTestdata(t, name)
			r := decodeT(t, d, KindEvent, string(body))
			require.Equal(t, 1, r.Accepted)
			ev := r.Batch.Events[0]
			gs := ev.GetGameState()
			require.NotNil(t, gs)
			checkGameState(t, ev.PayloadJson, gs)
			require.Equal(t, name == "event_GAME_STATE.initial.json", gs.Initial)
			require.False(t, gs.Debug)
			require.Equal(t, jimbotpb.GamePhase_PHASE_PLAYING, gs.GameState)
			require.Contains(t, gs.PhaseName, "UNKNOWN_STATE_")
			require.Len(t, gs.Hand, map[bool]int{true: 8, false: 3}[gs.Initial])
			if gs.Initial {
				require.Equal(t, "0.99989895846132", gs.Hand[0].Id)
				require.Equal(t, jimbotpb.Rank_RANK_KING, gs.Hand[0].Rank)
				require.Equal(t, jimbotpb.Suit_SUIT_SPADES, gs.Hand[0].Suit)
			}
			require.Len(t, gs.Deck.FullDeck, 52)
		})
	}
	// The batches: every GAME_STATE, with its debug flag.
	for _, name := range []string{"request_batch_first_heartbeat.json", "request_batch_state_change.json"} {
		r := decodeT(t, d, KindBatch, string(readTestdata(t, name)))
		n := 0
		for _, ev := range r.Batch.Events {
			if gs := ev.GetGameState(); gs != nil {
				checkGameState(t, ev.PayloadJson, gs)
				n++
			}
		}
		require.Equal(t, 1, n, name)
	}
}

func TestTypedSmall(t *testing.T) {
	d := New(Options{})
	one := func(body string) *jimbotpb.Event {
		t.Helper()
		r := decodeT(t, d, KindEvent, body)
		require.Equal(t, 1, r.Accepted, "%s: %s", body, errText(r))
		return r.Batch.Events[0]
	}
	ev := one(string(readTestdata(t, "event_HEARTBEAT.json")))
	hb := ev.GetHeartbeat()
	require.Equal(t, "0.1.0", hb.Version)
	require.EqualValues(t, 248396, hb.Uptime)
	require.False(t, hb.Headless)
	require.Equal(t, "1", hb.GameState)

	ev = one(string(readTestdata(t, "event_JOKERS_CHANGED.json")))
	jc := ev.GetJokersChanged()
	require.EqualValues(t, 5, jc.OldCount)
	require.EqualValues(t, 6, jc.NewCount)
	var ref struct{ Jokers []refJoker }
	dec := json.NewDecoder(bytes.NewReader(ev.PayloadJson))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&ref))
	checkJokers(t, ref.Jokers, jc.Jokers)

	r := decodeT(t, d, KindBatch, string(readTestdata(t, "request_batch_state_change.json")))
	evs := r.Batch.Events
	require.EqualValues(t, 868, evs[0].GetScoreChanged().OldChips)
	require.EqualValues(t, 4, evs[1].GetHandPlayed().HandsRemaining)
	require.EqualValues(t, 3, evs[2].GetCardsDiscarded().DiscardsRemaining)
	require.EqualValues(t, 6, evs[3].GetRoundChanged().Round)
	require.Equal(t, "BLIND_SELECT", evs[4].GetPhaseChanged().OldPhase)
	require.Equal(t, "UNKNOWN_STATE_1", evs[4].GetPhaseChanged().NewPhase)

	mc := one(`{"type":"MONEY_CHANGED","source":"s","payload":{"difference":9,"old_value":"14","new_value":1e+15}}`).GetMoneyChanged()
	require.EqualValues(t, 9, mc.Difference)
	require.EqualValues(t, 14, mc.OldValue)
	require.EqualValues(t, math.MaxInt32, mc.NewValue)
	mc = one(`{"type":"MONEY_CHANGED","source":"s","payload":{"old_value":9223372036854775807,"new_value":-9223372036854775808,"difference":-1e300}}`).GetMoneyChanged()
	require.EqualValues(t, math.MaxInt32, mc.OldValue)
	require.EqualValues(t, math.MinInt32, mc.NewValue)
	require.EqualValues(t, math.MinInt32, mc.Difference)
	sc := one(`{"type":"SCORE_CHANGED","source":"s","payload":{"old_chips":9223372036854775807,"new_chips":1e+15,"old_mult":1.5,"new_mult":"2.5"}}`).GetScoreChanged()
	require.EqualValues(t, math.MaxInt64, sc.OldChips)
	require.EqualValues(t, 1e15, sc.NewChips)
	require.Equal(t, 1.5, sc.OldMult)
	require.Equal(t, 2.5, sc.NewMult)
	sc = one(`{"type":"SCORE_CHANGED","source":"s","payload":{"old_chips":99999999999999999999999,"new_chips":-1.5e300}}`).GetScoreChanged()
	require.EqualValues(t, math.MaxInt64, sc.OldChips)
	require.EqualValues(t, math.MinInt64, sc.NewChips)
	rc := one(`{"type":"ROUND_COMPLETE","source":"s","payload":{"ante":2,"round":6,"score":1.2345678901235e+14,"money":-3}}`).GetRoundComplete()
	require.EqualValues(t, 2, rc.Ante)
	require.EqualValues(t, 6, rc.Round)
	require.EqualValues(t, 123456789012350, rc.Score)
	require.EqualValues(t, -3, rc.Money)
	ct := one(string(readTestdata(t, "request_connection_test_body.json"))).GetConnectionTest()
	require.Equal(t, "Testing event bus connection", ct.Message)
	jt := one(`{"type":"JOKER_TRIGGER","priority":"low","source":"s","payload":{"joker_name":"Blueprint","context_type":true,"timestamp":1.5}}`)
	require.Equal(t, jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED, jt.Type)
	require.Equal(t, "low", jt.Priority)
	require.Equal(t, "Blueprint", jt.GetJokerTriggered().JokerName)
	require.Equal(t, "true", jt.GetJokerTriggered().ContextType)
	require.Equal(t, "unknown", one(`{"type":"JOKER_TRIGGER","source":"s","payload":{"context_type":"unknown"}}`).GetJokerTriggered().ContextType)
	er := one(`{"type":"ERROR","priority":"high","source":"s","payload":{"message":"boom","context":{},"stack_trace":"stack traceback:\n\t[C]: in ?"}}`).GetError()
	require.Equal(t, "boom", er.Message)
	require.Equal(t, "stack traceback:\n\t[C]: in ?", er.StackTrace)
	ld := one(`{"type":"LEARNING_DECISION","subtype":"REQUEST","priority":"high","source":"s","payload":{"request_id":"REQ-1751439161-1234","game_state":{"in_game":true},"available_actions":["play_hand","discard"],"time_limit_ms":1000}}`)
	require.Equal(t, jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, ld.Type)
	require.Equal(t, "learning.decision.request", ld.Topic)
	require.Equal(t, "REQUEST", ld.Subtype)
	lr := ld.GetLearningDecisionRequest()
	require.Equal(t, "REQ-1751439161-1234", lr.RequestId)
	require.Equal(t, []string{"play_hand", "discard"}, lr.AvailableActions)
	require.EqualValues(t, 1000, lr.TimeLimitMs)
	require.Empty(t, one(`{"type":"LEARNING_DECISION","subtype":"REQUEST","source":"s","payload":{"available_actions":{}}}`).GetLearningDecisionRequest().AvailableActions)
	resp := one(`{"type":"LEARNING_DECISION","subtype":"RESPONSE","source":"s","payload":{"request_id":"r","selected_action":"play_hand","confidence":0.75}}`).GetLearningDecisionResponse()
	require.Equal(t, "play_hand", resp.SelectedAction)
	require.Equal(t, 0.75, resp.Confidence)
	// Unknown shapes never reject and leave the view at its zero values.
	require.NotNil(t, one(`{"type":"GAME_STATE","source":"s","payload":{"jokers":7,"hand":"x","deck":[1,2],"blind":[],"score_history":[],"chips":{"m":1,"e":300},"ante":true}}`).GetGameState())
	require.Nil(t, one(`{"type":"HEARTBEAT","source":"s","payload":null}`).Payload)
	require.Nil(t, one(`{"type":"HEARTBEAT","source":"s","payload":[1]}`).Payload)
	// Types without a typed view keep payload_json only.
	ev = one(`{"type":"SCORING","subtype":"HAND_EVAL_START","source":"s","payload":{"ante":1}}`)
	require.Nil(t, ev.Payload)
	require.Equal(t, "game.scoring.hand_eval_start", ev.Topic)
	// NoTypedView.
	d2 := New(Options{NoTypedView: true})
	r = decodeT(t, d2, KindEvent, string(readTestdata(t, "event_HEARTBEAT.json")))
	require.Nil(t, r.Batch.Events[0].Payload)
	require.NotEmpty(t, r.Batch.Events[0].PayloadJson)
}

func TestTypedEnums(t *testing.T) {
	f := func(s string, want jimbotpb.Rank) {
		t.Helper()
		require.Equal(t, want, rankOf(s), s)
	}
	f("King", jimbotpb.Rank_RANK_KING)
	f("Queen", jimbotpb.Rank_RANK_QUEEN)
	f("Jack", jimbotpb.Rank_RANK_JACK)
	f("Ace", jimbotpb.Rank_RANK_ACE)
	f("A", jimbotpb.Rank_RANK_ACE)
	f("10", jimbotpb.Rank_RANK_TEN)
	// The number cards, each digit by name (rankOf values them directly);
	// the other short spellings take the general path.
	for i, name := range []string{"TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"} {
		f(string(rune('2'+i)), jimbotpb.Rank(jimbotpb.Rank_value["RANK_"+name]))
	}
	f("1", jimbotpb.Rank_RANK_ACE)
	f("11", jimbotpb.Rank_RANK_JACK)
	f("14", jimbotpb.Rank_RANK_ACE)
	f("T", jimbotpb.Rank_RANK_TEN)
	f("0", jimbotpb.Rank_RANK_UNSPECIFIED)
	f(":", jimbotpb.Rank_RANK_UNSPECIFIED)
	f("unknown", jimbotpb.Rank_RANK_UNSPECIFIED)
	f("a very long rank name", jimbotpb.Rank_RANK_UNSPECIFIED)
	require.Equal(t, jimbotpb.Suit_SUIT_SPADES, suitOf("Spades"))
	require.Equal(t, jimbotpb.Suit_SUIT_HEARTS, suitOf("Hearts"))
	require.Equal(t, jimbotpb.Suit_SUIT_CLUBS, suitOf("Clubs"))
	require.Equal(t, jimbotpb.Suit_SUIT_DIAMONDS, suitOf("Diamonds"))
	require.Equal(t, jimbotpb.Suit_SUIT_UNSPECIFIED, suitOf("unknown"))
	p := func(s string, want jimbotpb.GamePhase) {
		t.Helper()
		require.Equal(t, want, phaseOf(s), s)
	}
	p("MENU", jimbotpb.GamePhase_PHASE_MENU)
	p("BLIND_SELECT", jimbotpb.GamePhase_PHASE_BLIND_SELECT)
	p("SHOP", jimbotpb.GamePhase_PHASE_SHOP)
	p("UNKNOWN_STATE_1", jimbotpb.GamePhase_PHASE_PLAYING)
	p("GAME_OVER", jimbotpb.GamePhase_PHASE_GAME_OVER)
	p("ROUND_EVAL", jimbotpb.GamePhase_PHASE_ROUND_EVAL)
	p("TAROT_PACK", jimbotpb.GamePhase_PHASE_TAROT_PACK)
	p("PLANET_PACK", jimbotpb.GamePhase_PHASE_PLANET_PACK)
	p("SPECTRAL_PACK", jimbotpb.GamePhase_PHASE_SPECTRAL_PACK)
	p("STANDARD_PACK", jimbotpb.GamePhase_PHASE_STANDARD_PACK)
	p("BUFFOON_PACK", jimbotpb.GamePhase_PHASE_BUFFOON_PACK)
	p("BOOSTER_PACK", jimbotpb.GamePhase_PHASE_BOOSTER_PACK)
	p("UNKNOWN_STATE_12", jimbotpb.GamePhase_PHASE_UNSPECIFIED)
	p("UNKNOWN", jimbotpb.GamePhase_PHASE_UNSPECIFIED)
	p("ERROR_NO_UTILS", jimbotpb.GamePhase_PHASE_UNSPECIFIED)
}
