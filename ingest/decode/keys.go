package decode

import "encoding/binary"

// Keys of the typed view's objects. Each walker knows its object's keys as a
// keySet. The mod writes the keys of an object in Lua's hash order, which is
// the same for every object of one kind within a game process but differs
// between processes, so the order is learned: a batch state keeps, for each
// keySet, the key that followed each key last time (keyOrder), starting from
// the order of the reference captures. nextK compares the bytes at the next
// key with the token `"key":` of the key it predicts (or the one after that,
// for a key left out), one or three masked word compares; only when neither
// matches does it scan the key, look it up and remember it as the one that
// follows (a match of the second guess changes nothing, so that objects with
// and without a key do not undo each other's order). A matched token is a
// valid key string followed by its colon, so both ways validate the same
// bytes. Walkers switch on the key's index.

// keySet is the keys of one kind of object, in the reference captures'
// order, and its index in a batch state's keyOrders.
type keySet struct {
	toks []keyTok
	id   int
}

// Bounds of the learned key orders: keySets, and keys in one (maxSetKeys+1
// is a power of two: slots are masked with maxSetKeys, which drops their
// bounds checks).
const (
	maxKeySets = 32
	maxSetKeys = 31
)

// numKeySets counts the keySets made (newKeySet).
var numKeySets int

// keyOrder is the learned key order of one kind of object: the index of the
// key predicted in each slot, where slot 0 is the object's start and slot
// i+1 the place right after key i; len(toks) or more predicts nothing (the
// object's end).
type keyOrder [maxSetKeys + 1]uint8

// keyOrders is a batch state's keyOrder of every keySet.
type keyOrders [maxKeySets]keyOrder

// reset sets every order to its keySet's first one (firstOrders).
func (o *keyOrders) reset() { *o = firstOrders }

// firstOrders is the order each keySet starts from: slot s predicts key s
// (the reference captures' order), but for the keys a keySet made by
// skipping leaves out.
var firstOrders = func() (o keyOrders) {
	for i := range o {
		for s := range o[i] {
			o[i][s] = uint8(s)
		}
	}
	return o
}()

// skipping returns a keySet of the same keys, with the same indexes, whose
// order is learned apart from ks's and starts without key k: the key before
// k predicts the one after it. Two kinds of object with the same keys, one
// of them without k, each keep their own prediction.
func (ks *keySet) skipping(k int) keySet {
	o := newKeySet()
	o.toks = ks.toks
	firstOrders[o.id][k] = uint8(k + 1)
	return o
}

// The key at b[j] is predicted in one compare: k := ord[slot], then
// toks[k].at(b, j) (inlined by each walker, as it is the common case; at
// j+24 <= len(b)); when that fails, skipped makes the second guess.

// skipped returns the index of the key whose token starts at b[j] if it is
// the one predicted after key k (k did not come: a key left out), and where
// its value starts; -1 if it is not.
func (ks *keySet) skipped(ord *keyOrder, k int, b []byte, j int) (int, int) {
	toks := ks.toks
	if k < len(toks) {
		if k = int(ord[(k+1)&maxSetKeys]); k < len(toks) && toks[k].at(b, j) {
			return k, j + toks[k].n
		}
	}
	return -1, 0
}

// keyTok is the token `"key":` as little-endian words, with masks of its
// bytes.
type keyTok struct {
	w, m [3]uint64
	n    int // the token's length; 0: "" or longer than 24 bytes, never predicted
	key  string
}

func newKeySet(keys ...string) keySet {
	if len(keys) > maxSetKeys || numKeySets >= maxKeySets {
		panic("decode: too many keys or keySets for keyOrders")
	}
	ks := keySet{toks: make([]keyTok, len(keys)), id: numKeySets}
	numKeySets++
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
	w := (*[24]byte)(b[j:]) // one length check for the three words
	x0 := binary.LittleEndian.Uint64(w[:])
	x1 := binary.LittleEndian.Uint64(w[8:])
	if x0&t.m[0] != t.w[0] || x1&t.m[1] != t.w[1] || t.n == 0 {
		return false
	}
	return t.n <= 16 || binary.LittleEndian.Uint64(w[16:])&t.m[2] == t.w[2]
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
	deckCardKeys  = cardKeys.skipping(cardPosition) // a deck's cards have no position, a hand's have
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
