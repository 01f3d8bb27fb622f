package route

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unsafe"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// TopicID is a small index into the topic table.
type TopicID uint8

// The topics that are not one event type's.
const (
	// TopicDeadletter carries rejected events with their reason and raw bytes.
	TopicDeadletter TopicID = iota
	topicFirstType
)

// topicDef is one row of the table: an event type (with subtype, for the
// types that fan out by subtype) and its topic.
type topicDef struct {
	typ     jimbotpb.EventType
	subtype string // lower case; "" for the type's own topic
	topic   string
}

// table is the topic of every EventType. The first eleven are what earlier
// subscribers already use (CONTRACT section 3); never change a topic here.
var table = []topicDef{
	{jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED, "", "system.deadletter"},
	{jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "", "game.state.update"},
	{jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "system.heartbeat"},
	{jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED, "", "game.money.changed"},
	{jimbotpb.EventType_EVENT_TYPE_SCORE_CHANGED, "", "game.score.changed"},
	{jimbotpb.EventType_EVENT_TYPE_HAND_PLAYED, "", "game.hand.played"},
	{jimbotpb.EventType_EVENT_TYPE_CARDS_DISCARDED, "", "game.cards.discarded"},
	{jimbotpb.EventType_EVENT_TYPE_JOKERS_CHANGED, "", "game.jokers.changed"},
	{jimbotpb.EventType_EVENT_TYPE_ROUND_CHANGED, "", "game.round.changed"},
	{jimbotpb.EventType_EVENT_TYPE_PHASE_CHANGED, "", "game.phase.changed"},
	{jimbotpb.EventType_EVENT_TYPE_ROUND_COMPLETE, "", "game.round.complete"},
	{jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, "", "system.connection.test"},
	{jimbotpb.EventType_EVENT_TYPE_GAME_START, "", "game.lifecycle.start"},
	{jimbotpb.EventType_EVENT_TYPE_GAME_OVER, "", "game.lifecycle.over"},
	{jimbotpb.EventType_EVENT_TYPE_BLIND_DEFEATED, "", "game.blind.defeated"},
	{jimbotpb.EventType_EVENT_TYPE_SHOP_ENTERED, "", "game.shop.entered"},
	{jimbotpb.EventType_EVENT_TYPE_CARD_PURCHASED, "", "game.card.purchased"},
	{jimbotpb.EventType_EVENT_TYPE_CARD_SOLD, "", "game.card.sold"},
	{jimbotpb.EventType_EVENT_TYPE_CARD_ENHANCED, "", "game.card.enhanced"},
	{jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED, "", "game.joker.triggered"},
	{jimbotpb.EventType_EVENT_TYPE_STATE_SNAPSHOT, "", "game.state.snapshot"},
	{jimbotpb.EventType_EVENT_TYPE_ERROR, "", "system.error"},
	{jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, "", "learning.decision.request"},
	{jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE, "", "learning.decision.response"},
	{jimbotpb.EventType_EVENT_TYPE_STRATEGY_REQUEST, "", "strategy.request"},
	{jimbotpb.EventType_EVENT_TYPE_STRATEGY_RESPONSE, "", "strategy.response"},
	{jimbotpb.EventType_EVENT_TYPE_KNOWLEDGE_UPDATE, "", "knowledge.update"},
	{jimbotpb.EventType_EVENT_TYPE_METRIC, "", "metrics.event"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "", "game.scoring.other"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "hand_eval_start", "game.scoring.hand_eval_start"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "hand_eval_complete", "game.scoring.hand_eval_complete"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "score_update", "game.scoring.score_update"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "joker_trigger", "game.scoring.joker_trigger"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "mult_update", "game.scoring.mult_update"},
	{jimbotpb.EventType_EVENT_TYPE_SCORING, "chips_update", "game.scoring.chips_update"},
	{jimbotpb.EventType_EVENT_TYPE_DIAGNOSTIC, "", "system.diagnostic"},
	{jimbotpb.EventType_EVENT_TYPE_CUSTOM, "", "custom.event"},
}

// NumTopics is the number of topics; TopicIDs are below it.
var NumTopics = len(table)

// byType is the type's own topic, indexed by EventType (0 for none).
var byType = func() map[jimbotpb.EventType]TopicID {
	m := make(map[jimbotpb.EventType]TopicID)
	for i, d := range table {
		if d.subtype == "" && i != int(TopicDeadletter) {
			m[d.typ] = TopicID(i)
		}
	}
	return m
}()

// String returns the topic's name, e.g. "game.state.update".
func (id TopicID) String() string {
	if int(id) >= len(table) {
		return "invalid"
	}
	return table[id].topic
}

// Topics returns every topic name, indexed by TopicID.
func Topics() []string {
	out := make([]string, len(table))
	for i, d := range table {
		out[i] = d.topic
	}
	return out
}

// TopicRow is one row of the documented topic table.
type TopicRow struct {
	Type    jimbotpb.EventType
	Subtype string
	Topic   string
}

// Table returns the topic table for documentation and tools.
func Table() []TopicRow {
	out := make([]TopicRow, len(table))
	for i, d := range table {
		out[i] = TopicRow{d.typ, strings.ToUpper(d.subtype), d.topic}
	}
	return out
}

// TopicOf returns the topic of an event of type t and subtype (matched
// case-insensitively; only SCORING fans out by subtype). ok is false for an
// EventType without a topic (UNSPECIFIED or unknown).
func TopicOf(t jimbotpb.EventType, subtype string) (id TopicID, ok bool) {
	if t == jimbotpb.EventType_EVENT_TYPE_SCORING && subtype != "" {
		for i := range table {
			if table[i].typ == t && table[i].subtype != "" && strings.EqualFold(table[i].subtype, subtype) {
				return TopicID(i), true
			}
		}
	}
	if uint32(t) < uint32(len(byTypeIndex)) {
		id = byTypeIndex[t]
		return id, id != TopicDeadletter
	}
	id, ok = byType[t]
	return id, ok
}

// byTypeIndex is byType as an array for the small EventType values (the
// lookup of every event); TopicDeadletter marks a type without a topic.
var byTypeIndex = func() []TopicID {
	const maxIndexed = 256
	var out []TopicID
	for t, id := range byType {
		if t < 0 || t >= maxIndexed {
			continue
		}
		for int(t) >= len(out) {
			out = append(out, TopicDeadletter)
		}
		out[t] = id
	}
	return out
}()

// typeAliases are the type strings the BalatroMCP mod sends that are not an
// EventType name.
var typeAliases = map[string]jimbotpb.EventType{
	"JOKER_TRIGGER": jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED,
}

// maxTypeLen bounds ParseType's work on hostile input.
const maxTypeLen = 64

// ParseType maps a type string as sent (case-insensitive: "HEARTBEAT",
// "connection_test") and its subtype to an EventType. LEARNING_DECISION takes
// its direction from the subtype (REQUEST, RESPONSE). ok is false for an
// unknown type. It does not allocate.
func ParseType(name, subtype string) (t jimbotpb.EventType, ok bool) {
	n := len(name)
	if n == 0 || n > maxTypeLen {
		return 0, false
	}
	first, last := typeWords(name)
	h := typeHashWords(first, last, n)
	for i := h & typeTableMask; ; i = (i + 1) & typeTableMask {
		e := &typeTable[i]
		if e.name == "" {
			return 0, false
		}
		if e.hash != h || len(e.name) != n || !e.matches(name, first, last) {
			continue
		}
		if e.typ == learningDecision {
			if strings.EqualFold(subtype, "RESPONSE") {
				return jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE, true
			}
			return jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, true
		}
		return e.typ, true
	}
}

// typeValues maps "HEARTBEAT" to EVENT_TYPE_HEARTBEAT, for every value but
// UNSPECIFIED.
var typeValues = func() map[string]jimbotpb.EventType {
	m := make(map[string]jimbotpb.EventType)
	for name, v := range jimbotpb.EventType_value {
		if v == 0 {
			continue
		}
		m[strings.TrimPrefix(name, "EVENT_TYPE_")] = jimbotpb.EventType(v)
	}
	return m
}()

// The names ParseType knows (typeValues, typeAliases and LEARNING_DECISION),
// upper-case, in an open-addressing table: one probe and one comparison for
// a known name, where two Go map lookups cost about 60 ns an event. A name
// is hashed from its length and its first and last 8 bytes, upper-cased 8
// at a time (upper8), and compared a word at a time: a byte-at-a-time
// FNV-1a of the upper-cased name was a chain of dependent multiplies (16-18
// ns a name in BenchmarkParseType, 12-13 now).
const (
	// learningDecision marks LEARNING_DECISION, whose type is the subtype's.
	learningDecision = jimbotpb.EventType(-1)
)

type typeEntry struct {
	name        string // upper-case
	first, last uint64 // typeWords(name), kept so that a lookup need not redo them
	hash        uint32
	typ         jimbotpb.EventType
}

var (
	typeTable     []typeEntry
	typeTableMask uint32
)

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// upper8 upper-cases the ASCII letters among the 8 bytes of x; other bytes,
// those of UTF-8 sequences included, stay as they are.
func upper8(x uint64) uint64 {
	low := x &^ msbs                // each byte's low 7 bits: no carry below
	geA := low + (0x80-'a')*lsbs    // top bit: byte >= 'a'
	gtZ := low + (0x80-'z'-1)*lsbs  // top bit: byte > 'z'
	lower := geA &^ gtZ &^ x & msbs // 'a'..'z' (and not a byte >= 0x80)
	return x ^ lower>>2             // 0x80>>2 = 0x20: 'a' - 'A'
}

// word returns the bytes of s[i:i+8], or of s[i:] padded with zeros when s
// is shorter, little-endian.
func word(s string, i int) uint64 {
	if i+8 <= len(s) {
		return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), len(s))[i:])
	}
	var w uint64
	for k := len(s) - 1; k >= i; k-- {
		w = w<<8 | uint64(s[k])
	}
	return w
}

// typeWords returns the first and the last 8 bytes of name (n >= 1),
// upper-cased (the same word twice when n <= 8).
func typeWords(name string) (first, last uint64) {
	first = upper8(word(name, 0))
	last = first
	if len(name) > 8 {
		last = upper8(word(name, len(name)-8))
	}
	return first, last
}

// typeHashWords is the table's hash of a name of n bytes whose upper-cased
// first and last words (typeWords) are given.
func typeHashWords(first, last uint64, n int) uint32 {
	x := first*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(last*0xc2b2ae3d27d4eb4f, 31) ^ uint64(n)
	x ^= x >> 29
	return uint32(x>>32) ^ uint32(x)
}

// matches reports whether name (as long as e.name, at least 1 byte), whose
// upper-cased first and last words are given, is e's name in any case.
func (e *typeEntry) matches(name string, first, last uint64) bool {
	if first != e.first || last != e.last {
		return false
	}
	for i := 8; i < len(name)-8; i += 8 { // the words between them (names over 16 bytes)
		if upper8(word(name, i)) != word(e.name, i) {
			return false
		}
	}
	return true
}

func init() {
	// The precedence of the earlier map lookups: LEARNING_DECISION, then
	// the aliases, then the EventType names.
	names := map[string]jimbotpb.EventType{}
	for k, v := range typeValues {
		names[k] = v
	}
	for k, v := range typeAliases {
		names[k] = v
	}
	names["LEARNING_DECISION"] = learningDecision
	for k := range names {
		if len(k) > maxTypeLen {
			delete(names, k)
		}
	}
	size := 1
	for size < 4*len(names) {
		size *= 2
	}
	typeTable = make([]typeEntry, size)
	typeTableMask = uint32(size - 1)
	for k, v := range names {
		first, last := typeWords(k)
		h := typeHashWords(first, last, len(k))
		i := h & typeTableMask
		for typeTable[i].name != "" {
			i = (i + 1) & typeTableMask
		}
		typeTable[i] = typeEntry{name: k, first: first, last: last, hash: h, typ: v}
	}
}
