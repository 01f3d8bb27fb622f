package loadtest

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// A small model of a Balatro run, just rich enough to give the change
// detector what a real game gives it: phases (with the mod's
// UNKNOWN_STATE_n spellings), money, score, hands, discards, jokers, ante
// and round, and a full GAME_STATE payload of realistic size.

type phase struct {
	name  string // as the mod sends it (get_game_phase)
	state int    // G.STATE, sent as a string in ui_state and HEARTBEAT
}

var (
	phSelecting   = phase{"UNKNOWN_STATE_1", 1}
	phHandPlayed  = phase{"UNKNOWN_STATE_2", 2}
	phDrawToHand  = phase{"UNKNOWN_STATE_3", 3}
	phShop        = phase{"SHOP", 5}
	phBlindSelect = phase{"BLIND_SELECT", 7}
	phRoundEval   = phase{"ROUND_EVAL", 8}
	phTarotPack   = phase{"TAROT_PACK", 9}
	phPlanetPack  = phase{"PLANET_PACK", 10}
)

var (
	ranks      = []string{"2", "3", "4", "5", "6", "7", "8", "9", "10", "Jack", "Queen", "King", "Ace"}
	suits      = []string{"Spades", "Hearts", "Clubs", "Diamonds"}
	jokerNames = []string{"Joker", "Greedy Joker", "Lusty Joker", "Wrathful Joker", "Gluttonous Joker",
		"Jolly Joker", "Zany Joker", "Mad Joker", "Crazy Joker", "Droll Joker", "Sly Joker", "Half Joker",
		"Joker Stencil", "Four Fingers", "Mime", "Credit Card", "Ceremonial Dagger", "Banner",
		"Mystic Summit", "Marble Joker", "Loyalty Card", "8 Ball", "Misprint", "Raised Fist",
		"Fibonacci", "Scary Face", "Abstract Joker", "Gros Michel", "Even Steven", "Odd Todd",
		"Scholar", "Business Card", "Supernova", "Ride the Bus", "Blueprint"}
	tarots   = []string{"The Fool", "The Magician", "The High Priestess", "The Empress", "The Emperor", "The Hierophant", "The Lovers", "The Chariot", "Justice", "The Hermit"}
	planets  = []string{"Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto"}
	bosses   = []string{"The Hook", "The Ox", "The House", "The Wall", "The Wheel", "The Arm", "The Club", "The Fish", "The Psychic", "The Goad", "The Water", "The Window", "The Manacle", "The Eye", "The Mouth", "The Plant", "The Serpent", "The Pillar", "The Needle", "The Head", "The Tooth", "The Flint", "The Mark"}
	anteBase = []float64{300, 800, 2000, 5000, 11000, 20000, 35000, 50000}
	editions = []string{"foil", "holographic", "polychrome", "negative"}
	seals    = []string{"Red", "Blue", "Gold", "Purple"}
)

type card struct {
	rank, suit    string
	id            float64
	edition, seal string
}

type joker struct {
	name            string
	id              float64
	cost, mult      float64
	edition         string
	sellValue, chip float64
}

type consumable struct {
	name, kind string
	id         float64
	cost       float64
}

type blind struct {
	name       string
	chips      float64
	mult       float64
	boss       bool
	chipsShown string
}

type game struct {
	ante, round, handNumber int
	phase                   phase
	money, chips            float64
	hands, discards         int
	jokers                  []joker
	cons                    []consumable
	deck                    []card // G.playing_cards: 52, fixed order
	draw, hand              []int  // indices into deck
	blind                   blind
	nextID                  int
	pending                 int // cards played, redrawn after scoring
	shopSteps               int
	overflowed              bool

	bestHand, cardsPlayed, cardsDiscarded, rerolls, purchased float64
	furthestAnte, furthestRound                               int
}

// snapshot is what the change detector compares.
type snapshot struct {
	money, chips                         float64
	hands, discards, jokers, ante, round int
	handNumber                           int
	phase                                string
}

func (gm *game) snapshot() snapshot {
	return snapshot{money: gm.money, chips: gm.chips, hands: gm.hands, discards: gm.discards,
		jokers: len(gm.jokers), ante: gm.ante, round: gm.round, handNumber: gm.handNumber, phase: gm.phase.name}
}

// uniqueVal is Balatro's card.unique_val, which the mod sends as the id.
func uniqueVal(id int) float64 { return 1 - float64(id)/1603301 }

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func (gm *game) newID() float64 {
	gm.nextID++
	return uniqueVal(gm.nextID)
}

func rare(rng *rand.Rand, p float64, xs []string) string {
	if rng.Float64() < p {
		return pick(rng, xs)
	}
	return "none"
}

func (gm *game) newJoker(rng *rand.Rand) joker {
	cost := float64(2 + rng.IntN(9))
	return joker{name: pick(rng, jokerNames), id: gm.newID(), cost: cost, mult: float64(rng.IntN(3) * 2),
		edition: rare(rng, 0.1, editions[:3]), sellValue: math.Max(1, math.Floor(cost/2))}
}

func (gm *game) newConsumable(rng *rand.Rand) consumable {
	if rng.IntN(2) == 0 {
		return consumable{name: pick(rng, tarots), kind: "Tarot", id: gm.newID(), cost: 3}
	}
	return consumable{name: pick(rng, planets), kind: "Planet", id: gm.newID(), cost: 3}
}

// initGame starts the model in the middle of a run, selecting a hand.
func (g *gen) initGame() {
	rng, gm := g.rng, &g.g
	gm.nextID = 150 + rng.IntN(50)
	for _, s := range suits {
		for _, r := range ranks {
			gm.deck = append(gm.deck, card{rank: r, suit: s, id: gm.newID(),
				edition: rare(rng, 0.04, editions[:3]), seal: rare(rng, 0.04, seals)})
		}
	}
	for range 4 + rng.IntN(2) {
		gm.jokers = append(gm.jokers, gm.newJoker(rng))
	}
	for range 2 {
		gm.cons = append(gm.cons, gm.newConsumable(rng))
	}
	gm.ante = 1 + rng.IntN(3)
	gm.round = (gm.ante-1)*3 + rng.IntN(3)
	gm.money = float64(4 + rng.IntN(25))
	gm.furthestAnte, gm.furthestRound = gm.ante, gm.round
	gm.bestHand = float64(100 + rng.IntN(400))
	gm.cardsPlayed = float64(5 * gm.round * 3)
	gm.cardsDiscarded = float64(3 * gm.round * 2)
	gm.purchased = float64(len(gm.jokers) + rng.IntN(3))
	gm.rerolls = float64(rng.IntN(3))
	gm.selectBlind(rng)
}

func commas(v float64) string {
	if math.IsNaN(v) {
		return "nan"
	}
	s := strconv.FormatFloat(v, 'f', 0, 64)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// selectBlind starts the next round: new blind, hands and discards reset,
// score reset, a fresh hand of 8.
func (gm *game) selectBlind(rng *rand.Rand) {
	gm.round++
	gm.furthestRound = max(gm.furthestRound, gm.round)
	base := anteBase[min(gm.ante, len(anteBase))-1]
	switch gm.round % 3 {
	case 1:
		gm.blind = blind{name: "Small Blind", chips: base, mult: 1}
	case 2:
		gm.blind = blind{name: "Big Blind", chips: base * 1.5, mult: 1.5}
	default:
		gm.blind = blind{name: pick(rng, bosses), chips: base * 2, mult: 2, boss: true}
	}
	gm.blind.chipsShown = commas(gm.blind.chips)
	gm.hands, gm.discards, gm.chips, gm.handNumber = 4, 3, 0, 0
	gm.draw = rng.Perm(len(gm.deck))
	gm.hand = gm.draw[:8:8]
	gm.draw = gm.draw[8:]
	gm.phase = phSelecting
}

func (gm *game) drawCards(n int) {
	n = min(n, len(gm.draw))
	gm.hand = append(gm.hand, gm.draw[:n]...)
	gm.draw = gm.draw[n:]
}

func (gm *game) removeFromHand(rng *rand.Rand, n int) {
	for range min(n, len(gm.hand)) {
		i := rng.IntN(len(gm.hand))
		gm.hand = append(gm.hand[:i], gm.hand[i+1:]...)
	}
}

// step advances the game by one player action or one game transition.
func (gm *game) step(rng *rand.Rand, overflowDue bool) {
	switch gm.phase {
	case phBlindSelect:
		gm.selectBlind(rng)
	case phSelecting:
		k := 1 + rng.IntN(5)
		if gm.discards > 0 && rng.Float64() < 0.3 {
			gm.discards--
			gm.cardsDiscarded += float64(k)
			gm.removeFromHand(rng, k)
			gm.drawCards(k)
			gm.phase = phDrawToHand
			return
		}
		gm.hands--
		gm.handNumber++
		gm.cardsPlayed += float64(k)
		gm.removeFromHand(rng, k)
		gm.pending = k
		gm.phase = phHandPlayed
	case phHandPlayed:
		var score float64
		if gm.hands == 0 {
			score = (gm.blind.chips - gm.chips) * (1 + rng.Float64()/2) // the AI never loses
		} else {
			score = gm.blind.chips * (0.25 + rng.Float64()*0.35)
		}
		score = math.Max(1, math.Round(score))
		gm.bestHand = math.Max(gm.bestHand, score)
		gm.chips += score
		if overflowDue && !gm.overflowed {
			// Very late or modded runs overflow: the mod writes the bare
			// tokens inf and nan.
			gm.overflowed = true
			gm.chips = math.Inf(1)
			gm.blind.chips = math.NaN()
			gm.blind.chipsShown = "nan"
		}
		if gm.chips >= gm.blind.chips || math.IsInf(gm.chips, 1) {
			gm.hand = nil
			gm.draw = gm.draw[:0]
			for i := range gm.deck {
				gm.draw = append(gm.draw, i)
			}
			gm.phase = phRoundEval
			return
		}
		gm.drawCards(gm.pending)
		gm.phase = phDrawToHand
	case phDrawToHand:
		gm.phase = phSelecting
	case phRoundEval:
		reward := 3.0
		if gm.blind.mult == 1.5 {
			reward = 4
		}
		if gm.blind.boss {
			reward = 5
			gm.ante++
			gm.furthestAnte = max(gm.furthestAnte, gm.ante)
		}
		gm.money += reward + float64(gm.hands) + math.Min(5, math.Floor(gm.money/5))
		if math.IsNaN(gm.blind.chips) {
			gm.blind.chips = 0
		}
		gm.shopSteps = 0
		gm.phase = phShop
	case phShop:
		gm.shopSteps++
		r := rng.Float64()
		switch {
		case gm.shopSteps > 3 || r >= 0.85:
			gm.leaveShop()
		case r < 0.45:
			if len(gm.jokers) >= 5 && rng.IntN(2) == 0 {
				i := rng.IntN(len(gm.jokers))
				gm.money += gm.jokers[i].sellValue
				gm.jokers = append(gm.jokers[:i], gm.jokers[i+1:]...)
			} else if j := gm.newJoker(rng); len(gm.jokers) < 5 && gm.money >= j.cost {
				gm.money -= j.cost
				gm.jokers = append(gm.jokers, j)
				gm.purchased++
			} else {
				gm.leaveShop()
			}
		case r < 0.65 && gm.money >= 5:
			gm.money -= 5
			gm.rerolls++
		case gm.money >= 4:
			gm.money -= 4
			if rng.IntN(2) == 0 {
				gm.phase = phTarotPack
			} else {
				gm.phase = phPlanetPack
			}
		default:
			gm.leaveShop()
		}
	case phTarotPack, phPlanetPack:
		if len(gm.cons) < 2 {
			gm.cons = append(gm.cons, gm.newConsumable(rng))
		} else {
			gm.cons[rng.IntN(len(gm.cons))] = gm.newConsumable(rng)
		}
		gm.phase = phShop
	}
}

func (gm *game) leaveShop() {
	gm.blind = blind{name: "", chips: 0, mult: 1, chipsShown: "0"}
	gm.phase = phBlindSelect
}

func (gm *game) appendJokers(b []byte) []byte {
	if len(gm.jokers) == 0 {
		return append(b, "{}"...)
	}
	b = append(b, '[')
	for i, j := range gm.jokers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendLuaStr(b, j.name)
		b = append(b, `,"id":`...)
		b = appendLuaNum(b, j.id)
		b = append(b, `,"position":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"properties":{"cost":`...)
		b = appendLuaNum(b, j.cost)
		b = append(b, `,"chips":`...)
		b = appendLuaNum(b, j.chip)
		b = append(b, `,"mult":`...)
		b = appendLuaNum(b, j.mult)
		b = append(b, `,"edition":`...)
		b = appendLuaStr(b, j.edition)
		b = append(b, `,"sell_value":`...)
		b = appendLuaNum(b, j.sellValue)
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// appendCard writes a hand card (with position) or a deck card (pos < 0).
func appendCard(b []byte, c *card, pos int) []byte {
	b = append(b, `{"rank":`...)
	b = appendLuaStr(b, c.rank)
	if pos >= 0 {
		b = append(b, `,"position":`...)
		b = strconv.AppendInt(b, int64(pos), 10)
	}
	b = append(b, `,"enhancement":"none","suit":`...)
	b = appendLuaStr(b, c.suit)
	b = append(b, `,"id":`...)
	b = appendLuaNum(b, c.id)
	b = append(b, `,"edition":`...)
	b = appendLuaStr(b, c.edition)
	b = append(b, `,"seal":`...)
	b = appendLuaStr(b, c.seal)
	return append(b, '}')
}

func appendHistory(b []byte, key, label string, amt float64, first bool) []byte {
	b = appendKey(b, key, first)
	b = append(b, `{"label":`...)
	b = appendLuaStr(b, label)
	b = append(b, `,"amt":`...)
	b = appendLuaNum(b, amt)
	return append(b, '}')
}

// appendPayload writes get_current_state() in the mod's key order.
func (gm *game) appendPayload(b []byte, epochSec int64) []byte {
	b = append(b, `{"hand_number":`...)
	b = strconv.AppendInt(b, int64(gm.handNumber), 10)
	b = append(b, `,"game_id":"unknown","hand_size":8,"score_history":{`...)
	b = appendHistory(b, "furthest_ante", "Ante", float64(gm.furthestAnte), true)
	b = appendHistory(b, "cards_purchased", "Cards Purchased", gm.purchased, false)
	b = appendHistory(b, "furthest_round", "Round", float64(gm.furthestRound), false)
	b = appendHistory(b, "hand", "Best Hand", gm.bestHand, false)
	b = appendHistory(b, "poker_hand", "Most Played Hand", 0, false)
	b = appendHistory(b, "new_collection", "New Discoveries", 0, false)
	b = appendHistory(b, "cards_played", "Cards Played", gm.cardsPlayed, false)
	b = appendHistory(b, "times_rerolled", "Times Rerolled", gm.rerolls, false)
	b = appendHistory(b, "cards_discarded", "Cards Discarded", gm.cardsDiscarded, false)
	b = append(b, `},"hand":`...)
	if len(gm.hand) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, '[')
		for i, ci := range gm.hand {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCard(b, &gm.deck[ci], i)
		}
		b = append(b, ']')
	}
	b = append(b, `,"ui_state":"`...)
	b = strconv.AppendInt(b, int64(gm.phase.state), 10)
	b = append(b, `","consumables":`...)
	if len(gm.cons) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, '[')
		for i, c := range gm.cons {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendLuaStr(b, c.name)
			b = append(b, `,"card_type":`...)
			b = appendLuaStr(b, c.kind)
			b = append(b, `,"id":`...)
			b = appendLuaNum(b, c.id)
			b = append(b, `,"position":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `,"properties":{"cost":`...)
			b = appendLuaNum(b, c.cost)
			b = append(b, `,"edition":"none"}}`...)
		}
		b = append(b, ']')
	}
	b = append(b, `,"frame_count":0,"shop_items":{},"in_game":true,"ante":`...)
	b = strconv.AppendInt(b, int64(gm.ante), 10)
	b = append(b, `,"round":`...)
	b = strconv.AppendInt(b, int64(gm.round), 10)
	b = append(b, `,"money":`...)
	b = appendLuaNum(b, gm.money)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, epochSec, 10)
	b = append(b, `,"blind":{"name":`...)
	b = appendLuaStr(b, gm.blind.name)
	b = append(b, `,"chips":`...)
	b = appendLuaNum(b, gm.blind.chips)
	b = append(b, `,"mult":`...)
	b = appendLuaNum(b, gm.blind.mult)
	b = append(b, `,"chip_text":`...)
	b = appendLuaStr(b, gm.blind.chipsShown)
	b = append(b, `,"defeated":false,"boss":`...)
	b = appendLuaBool(b, gm.blind.boss)
	b = append(b, `},"chips":`...)
	b = appendLuaNum(b, gm.chips)
	b = append(b, `,"game_state":`...)
	b = appendLuaStr(b, gm.phase.name)
	b = append(b, `,"deck":{"remaining_count":`...)
	b = strconv.AppendInt(b, int64(len(gm.draw)), 10)
	b = append(b, `,"cards_remaining":`...)
	if len(gm.draw) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, '[')
		for i, ci := range gm.draw[:min(5, len(gm.draw))] {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCard(b, &gm.deck[ci], -1)
		}
		b = append(b, ']')
	}
	b = append(b, `,"full_deck":[`...)
	for i := range gm.deck {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCard(b, &gm.deck[i], -1)
	}
	b = append(b, `]},"mult":0,"jokers":`...)
	b = gm.appendJokers(b)
	b = append(b, `,"discards_remaining":`...)
	b = strconv.AppendInt(b, int64(gm.discards), 10)
	b = append(b, `,"hands_remaining":`...)
	b = strconv.AppendInt(b, int64(gm.hands), 10)
	return append(b, '}')
}
