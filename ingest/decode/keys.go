package decode

import "encoding/binary"

// Keys of the typed view's objects. Each walker knows its object's keys as a
// keySet, in the order BalatroMCP writes them (its objects of one kind come
// with their keys in one order, give or take a missing one). nextK compares
// the bytes at the next key with the token `"key":` of the key it predicts
// (the one after the last it matched, or the one after that), one or three
// masked word compares; only when neither matches does it scan the key and
// look it up. A matched token is a valid key string followed by its colon,
// so both ways validate the same bytes. Walkers switch on the key's index.

// keySet is the keys of one kind of object, in the mod's order.
type keySet struct {
	toks []keyTok
}

// keyTok is the token `"key":` as little-endian words, with masks of its
// bytes.
type keyTok struct {
	w, m [3]uint64
	n    int // the token's length; 0: "" or longer than 24 bytes, never predicted
	key  string
}

func newKeySet(keys ...string) keySet {
	ks := keySet{toks: make([]keyTok, len(keys))}
	for i, k := range keys {
		t := &ks.toks[i]
		t.key = k
		tok := `"` + k + `":`
		if k == "" || len(tok) > 24 {
			continue // never predicted
		}
		t.n = len(tok)
		var buf, mask [24]byte
		copy(buf[:], tok)
		for j := range tok {
			mask[j] = 0xff
		}
		for w := range 3 {
			t.w[w] = binary.LittleEndian.Uint64(buf[8*w:])
			t.m[w] = binary.LittleEndian.Uint64(mask[8*w:])
		}
	}
	return ks
}

// at reports whether the token of t starts at b[j]; j+24 <= len(b).
func (t *keyTok) at(b []byte, j int) bool {
	x0 := binary.LittleEndian.Uint64(b[j:])
	x1 := binary.LittleEndian.Uint64(b[j+8:])
	if x0&t.m[0] != t.w[0] || x1&t.m[1] != t.w[1] || t.n == 0 {
		return false
	}
	return t.n <= 16 || binary.LittleEndian.Uint64(b[j+16:])&t.m[2] == t.w[2]
}

// lookup returns the index of key (its decoded bytes), or -1.
func (s *keySet) lookup(key []byte) int {
	for i := range s.toks {
		if s.toks[i].key == string(key) {
			return i
		}
	}
	return -1
}

// The keys of each kind of object, and their indexes.
var (
	cardKeys      = newKeySet("rank", "position", "enhancement", "suit", "id", "edition", "seal")
	jokerKeys     = newKeySet("name", "id", "position", "properties")
	jokerPropKeys = newKeySet("cost", "chips", "mult", "edition", "sell_value")
	consKeys      = newKeySet("name", "card_type", "id", "position", "properties")
	consPropKeys  = newKeySet("cost", "edition")
	blindKeys     = newKeySet("name", "chips", "mult", "chip_text", "defeated", "boss")
	scoreKeys     = newKeySet("label", "amt")
	shopKeys      = newKeySet("name", "cost", "rarity")
	deckKeys      = newKeySet("remaining_count", "cards_remaining", "full_deck")
	gameStateKeys = newKeySet("hand_number", "game_id", "hand_size", "score_history", "hand", "ui_state",
		"consumables", "frame_count", "shop_items", "in_game", "ante", "round", "money", "timestamp", "blind",
		"chips", "game_state", "deck", "mult", "jokers", "discards_remaining", "hands_remaining", "phase")
	heartbeatKeys     = newKeySet("game_state", "headless", "version", "uptime")
	moneyKeys         = newKeySet("difference", "old_value", "new_value")
	scoreChangedKeys  = newKeySet("new_chips", "old_mult", "new_mult", "old_chips")
	handPlayedKeys    = newKeySet("hand_number", "hands_remaining")
	discardKeys       = newKeySet("discards_remaining")
	jokersChangedKeys = newKeySet("jokers", "old_count", "new_count")
	roundKeys         = newKeySet("ante", "round")
	phaseKeys         = newKeySet("old_phase", "new_phase")
	roundCompleteKeys = newKeySet("ante", "round", "score", "money")
	messageKeys       = newKeySet("message")
	jokerTrigKeys     = newKeySet("joker_name", "context_type")
	errorKeys         = newKeySet("message", "stack_trace")
	ldReqKeys         = newKeySet("request_id", "time_limit_ms", "available_actions")
	ldRespKeys        = newKeySet("request_id", "selected_action", "confidence")
)

const (
	cardRank = iota
	cardPosition
	cardEnhancement
	cardSuit
	cardID
	cardEdition
	cardSeal
)

const (
	jokerName = iota
	jokerID
	jokerPosition
	jokerProperties
)

const (
	jpCost = iota
	jpChips
	jpMult
	jpEdition
	jpSellValue
)

const (
	consName = iota
	consCardType
	consID
	consPosition
	consProperties
)

const (
	blindName = iota
	blindChips
	blindMult
	blindChipText
	blindDefeated
	blindBoss
)

const (
	gsHandNumber = iota
	gsGameID
	gsHandSize
	gsScoreHistory
	gsHand
	gsUIState
	gsConsumables
	gsFrameCount
	gsShopItems
	gsInGame
	gsAnte
	gsRound
	gsMoney
	gsTimestamp // not in the view; known so that the prediction goes on
	gsBlind
	gsChips
	gsGameState
	gsDeck
	gsMult
	gsJokers
	gsDiscardsRemaining
	gsHandsRemaining
	gsPhase
)
