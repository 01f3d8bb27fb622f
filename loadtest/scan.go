package loadtest

import (
	"strings"
)

// uuidLen is the length of a UUID string: 8-4-4-4-12 hex digits.
const uuidLen = 36

// isUUIDAt reports whether b[i:i+36] is UUID-shaped (hex digits of either
// case, dashes at 8, 13, 18 and 23).
func isUUIDAt(b []byte, i int) bool {
	if i < 0 || i+uuidLen > len(b) {
		return false
	}
	for j := 0; j < uuidLen; j++ {
		c := b[i+j]
		switch j {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if hexVal(c) < 0 {
				return false
			}
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// UUIDOffsets returns the offsets in body of every JSON string whose whole
// content is a UUID (event_id, batch_id, and the event_ids repeated inside
// GAME_STATE changes): the offset of its first hex digit.
func UUIDOffsets(body []byte) []int {
	var out []int
	for i := 0; i+uuidLen+1 < len(body); i++ {
		if body[i] != '"' || body[i+uuidLen+1] != '"' || !isUUIDAt(body, i+1) {
			continue
		}
		out = append(out, i+1)
		i += uuidLen + 1
	}
	return out
}

// RewriteMask returns the 48-bit value that RewriteIDs xors into the UUIDs
// of game lane lane in a run with salt salt: the low 24 bits of salt above
// the low 24 bits of lane+1. Distinct lanes (below 2^24-1) of one run get
// distinct masks, and runs whose salts differ in the low 24 bits share none,
// so replaying twice against one bus within its deduplication window does not
// look like resends.
func RewriteMask(salt uint32, lane int) uint64 {
	return uint64(salt&0xffffff)<<24 | uint64(lane+1)&0xffffff
}

// RewriteIDs xors mask into the last 12 hex digits of the UUID at each
// offset of body (offsets from UUIDOffsets), writing lowercase hex. Nothing
// else changes, the length included; the version digit stays. The same UUID
// at two offsets gets the same new value, so the copies inside GAME_STATE
// changes stay equal to their top-level events.
func RewriteIDs(body []byte, offs []int, mask uint64) {
	for _, off := range offs {
		tail := body[off+uuidLen-12 : off+uuidLen]
		for j := 0; j < 12; j++ {
			n := hexVal(tail[j])
			if n < 0 {
				panic("BUG: RewriteIDs at an offset that is not a UUID")
			}
			n ^= int(mask>>(44-4*j)) & 0xf
			tail[j] = hexDigits[n]
		}
	}
}

// BodyKind says how the events of a request body are laid out.
type BodyKind uint8

const (
	// KindNone: no events (GET, the health probe, any other path).
	KindNone BodyKind = iota
	// KindSingle: the body is one event object (POST /api/v1/events).
	KindSingle
	// KindBatch: {"events":[...]} (POST /api/v1/events/batch).
	KindBatch
)

// KindOf returns the layout of a request's body from its method and path,
// as the bus routes them; doubled and trailing slashes are tolerated.
func KindOf(method, path string) BodyKind {
	if method != "POST" {
		return KindNone
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimRight(path, "/")
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	switch path {
	case "/api/v1/events":
		return KindSingle
	case "/api/v1/events/batch":
		return KindBatch
	}
	return KindNone
}

// EventScan is what ScanEvents finds in a body.
type EventScan struct {
	// Events is the number of top-level events.
	Events int
	// IDs holds, for each top-level event with a string event_id, the
	// offset of the id's first byte in the body and its length.
	IDs [][2]int
	// NoID is the number of top-level events without a string event_id
	// (the bus assigns one; they are never deduplicated).
	NoID int
}

// ScanEvents finds the top-level events of body and their event_id values
// without decoding it, tolerating what BalatroMCP's encoder writes (bare
// nan/inf, raw control bytes, invalid UTF-8). Events nested elsewhere (in
// GAME_STATE changes) are not counted. Unescaped quotes inside strings, which
// the mod can write in arrays, make the result unreliable.
func ScanEvents(kind BodyKind, body []byte) EventScan {
	var res EventScan
	if kind == KindNone {
		return res
	}
	// The event objects sit at depth 1 (single) or 3 (batch: object,
	// "events" array, object).
	evDepth := 1
	if kind == KindBatch {
		evDepth = 3
	}
	var (
		stack     [64]byte // container kinds; deeper nesting is counted only
		depth     int
		expectKey bool
		eventsArr bool // the depth-1 key last read is "events"
		inEvent   bool
		hasID     bool
		lastKey   []byte // key last read at the event's depth
	)
	top := func() byte {
		if depth == 0 || depth > len(stack) {
			return 0
		}
		return stack[depth-1]
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case '{', '[':
			if depth < len(stack) {
				stack[depth] = c
			}
			depth++
			expectKey = c == '{'
			if c == '{' && depth == evDepth {
				if kind == KindSingle || (stack[0] == '{' && stack[1] == '[' && eventsArr) {
					inEvent, hasID = true, false
					res.Events++
				}
			}
		case '}', ']':
			if depth == evDepth && inEvent && c == '}' {
				if !hasID {
					res.NoID++
				}
				inEvent = false
			}
			if depth > 0 {
				depth--
			}
			expectKey = false
		case ',':
			expectKey = top() == '{'
		case ':':
			expectKey = false
		case '"':
			j := i + 1
			for j < len(body) && body[j] != '"' {
				if body[j] == '\\' {
					j++
				}
				j++
			}
			if j > len(body) {
				j = len(body)
			}
			s := body[i+1 : j]
			if expectKey {
				if depth == 1 {
					eventsArr = string(s) == "events"
				}
				if depth == evDepth {
					lastKey = s
				}
			} else if inEvent && depth == evDepth && string(lastKey) == "event_id" && !hasID {
				hasID = true
				res.IDs = append(res.IDs, [2]int{i + 1, len(s)})
			}
			i = j
		}
	}
	return res
}
