package decode

import (
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// parser decodes one body into st and r.
type parser struct {
	d          *Decoder
	st         *batchState
	r          *Result
	kind       Kind
	receivedAt int64
	maxDepth   int
	maxEvents  int
	maxString  int
	typedView  bool
	// deferTyped: the typed view is left out for fillTyped (typedView is
	// false); the parser records what fillTyped cannot read from the event.
	deferTyped bool
	// buf is the body being parsed: st.orig, or st.work after the pre-pass.
	buf      []byte
	repaired bool
	// members is scratch for one event's top-level members.
	members []member
	batchID string
	// rejectID is the event_id of the event being built, which its
	// deadletter keeps; empty outside build.
	rejectID string
	// st.spec.Payload is the typed view that specTyped read from the
	// payload at buf[specAt] (-1: none) of the event being parsed, for type
	// specType.
	specAt   int
	specType jimbotpb.EventType
	// Of the event being parsed: at[k] is the index of the last member
	// with key k (-1: none); dupKeys is set when a known key came twice;
	// mayLong when longField may find a string over maxString.
	at   [numKeys]int16
	base int // the event's first member in members
	// typeParsed and typeKnown are ParseType of the event's member typeAt
	// (-1: none), which specTyped parsed, when the subtype does not matter.
	typeAt     int16
	typeParsed jimbotpb.EventType
	typeKnown  bool
	// envNext[k] is the key that followed key k (numKeys: the start) in the
	// last event: the key eventMembers tries first.
	envNext [numKeys + 1]keyCode
	// srcHash is sourceHash(srcLast), the last source keyed, when srcHashed.
	srcLast   string
	srcHash   uint64
	srcHashed bool
	dupKeys   bool
	mayLong   bool
}

// member is one top-level member of an event object: the key token (with
// its quotes), the value, and which key it is.
type member struct {
	ks, ke, vs, ve int
	// f is the value of a timestamp (see scanNumberF) or of a version of one
	// or two digits (smallInt) when fok.
	f     float64
	code  keyCode
	plain bool // a string value, ASCII without escapes
	fok   bool
}

type keyCode uint8

const (
	kOther keyCode = iota
	kType
	kSource
	kPayload
	kData
	kTimestamp
	kVersion
	kEventID
	kHeaders
	kMetadata
	kPriority
	kSubtype
	kInitial
	kDebug
	numKeys
)

// keyCodeOf classifies a key (its raw bytes, without quotes; esc if it
// holds an escape).
func keyCodeOf(raw []byte, esc bool) keyCode {
	if esc {
		var tmp [16]byte
		if len(raw) > 2*len(tmp) {
			return kOther
		}
		raw = appendUnescaped(tmp[:0], raw)
	}
	switch string(raw) {
	case "type":
		return kType
	case "source":
		return kSource
	case "payload":
		return kPayload
	case "data":
		return kData
	case "timestamp":
		return kTimestamp
	case "version":
		return kVersion
	case "event_id":
		return kEventID
	case "headers":
		return kHeaders
	case "metadata":
		return kMetadata
	case "priority":
		return kPriority
	case "subtype":
		return kSubtype
	case "initial":
		return kInitial
	case "debug":
		return kDebug
	}
	return kOther
}

// Whole-body errors (Result.Fatal).
const (
	fatalEmpty      = "Invalid JSON: empty body"
	fatalNotObject  = "Invalid JSON: expected an object, got "
	fatalNoEvents   = "Invalid JSON: missing field `events`"
	fatalEventsType = "Invalid JSON: invalid type: "
	fatalTooMany    = "Too many events: a batch may hold at most "
)

// Per-event reasons; the prefix depends on the endpoint (see reason).
const (
	whyMissingType   = "missing field `type`"
	whyMissingSource = "missing field `source`"
	whyMissingPay    = "missing field `payload`"
	whyEmptyType     = "Event type cannot be empty"
	whyEmptySource   = "Event source cannot be empty"
	whyUnknownType   = "Unknown event type: "
	whyNotObject     = "expected an event object, got "
	whyBadJSON       = "Invalid JSON: "
	whyTypeNotStr    = "field `type`: invalid type: "
	whySourceNotStr  = "field `source`: invalid type: "
	whyTooLong       = "string too long: "
)

// jsonKind names the JSON type of the value starting with c, for messages.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "map"
	case '[':
		return "sequence"
	case '"':
		return "string"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	default:
		return "number"
	}
}

// bytesAt returns buf[s:e] with its capacity cut, so that nobody appends
// into the arena.
func (p *parser) bytesAt(s, e int) []byte { return p.buf[s:e:e] }

// str returns the decoded string of the string token at buf[s:e] (quotes
// included), aliasing the arena when it has no escape and is valid UTF-8.
func (p *parser) str(s, e int) string {
	raw := p.buf[s+1 : e-1]
	if plainASCII(raw) {
		return bstr(raw)
	}
	if !hasBackslash(raw) {
		return p.validStr(raw)
	}
	start := len(p.st.aux)
	p.st.aux = appendUnescaped(p.st.aux, raw)
	out := p.st.aux[start:]
	if utf8.Valid(out) {
		return bstr(out)
	}
	p.st.aux = appendValidUTF8(p.st.aux[:start], append([]byte(nil), out...))
	return bstr(p.st.aux[start:])
}

// validStr returns raw as a string, aliasing it when it is valid UTF-8.
func (p *parser) validStr(raw []byte) string {
	if isASCII(raw) || utf8.Valid(raw) {
		return bstr(raw)
	}
	start := len(p.st.aux)
	p.st.aux = appendValidUTF8(p.st.aux, raw)
	return bstr(p.st.aux[start:])
}

// text returns a scalar value as a string: a string's content, a number's
// or literal's text; "" for null, objects and arrays.
func (p *parser) text(s, e int) string {
	if s >= e {
		return ""
	}
	switch p.buf[s] {
	case '"':
		return p.str(s, e)
	case '{', '[', 'n':
		return ""
	}
	return bstr(p.buf[s:e])
}

// auxString appends the parts to the arena and returns them as one string.
func (p *parser) auxString(parts ...string) string {
	start := len(p.st.aux)
	for _, s := range parts {
		p.st.aux = append(p.st.aux, s...)
	}
	return bstr(p.st.aux[start:])
}

// reasonPrefix is the prefix of a per-event reason: the earlier bus's
// wording, which differs between the two endpoints.
func (p *parser) reasonPrefix(why string) string {
	if p.kind != KindEvent {
		return "Invalid format - "
	}
	switch why {
	case whyMissingType, whyMissingSource, whyMissingPay, whyBadJSON, whyTypeNotStr, whySourceNotStr:
		return "Invalid JSON: "
	}
	return "Invalid event format: "
}

// maxQuoted bounds how much of a client string a reason repeats.
const maxQuoted = 200

func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	s = s[:maxQuoted]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// reject adds a deadletter event for the request's event idx, whose bytes
// are buf[s:e], and records the error.
func (p *parser) reject(idx, s, e int, why, detail string, typ jimbotpb.EventType, typeName, source string) {
	prefix := p.reasonPrefix(why)
	suffix := ""
	switch why {
	case whyBadJSON:
		why = ""
	case whyTypeNotStr, whySourceNotStr:
		suffix = ", expected a string"
	}
	reason := p.auxString(prefix, why, clip(detail), suffix)
	ev := p.deadletter(s, e, reason)
	ev.Type = typ
	ev.TypeName = typeName
	ev.Source = source
	p.r.Rejected++
	start := len(p.r.reasons)
	p.r.reasons = append(p.r.reasons, reason...)
	p.r.Errors = append(p.r.Errors, EventError{Index: idx, Reason: bstr(p.r.reasons[start:])})
}

// deadletter adds an event on system.deadletter carrying buf[s:e] as
// received (before any repair) and the reason.
func (p *parser) deadletter(s, e int, reason string) *jimbotpb.Event {
	ev := p.st.newEvent()
	if p.repaired {
		s, e = origPos(p.st.repairs, s), origPos(p.st.repairs, e)
		ev.Raw = p.st.orig[s:e:e]
	} else {
		ev.Raw = p.bytesAt(s, e)
	}
	if p.rejectID != "" {
		// A rejected event keeps its own id, so it can be traced.
		ev.EventId = p.rejectID
	} else {
		start := len(p.st.aux)
		p.st.aux = appendNewID(p.st.aux)
		ev.EventId = bstr(p.st.aux[start:])
	}
	ev.Timestamp = p.receivedAt / 1e6
	ev.ReceivedAtNs = p.receivedAt
	ev.Topic = route.TopicDeadletter.String()
	ev.DeadletterReason = reason
	ev.Repairs = p.eventRepairs(s, e)
	p.st.batch.Add(ev, route.TopicDeadletter)
	p.r.Keys = append(p.r.Keys, 0)
	return ev
}

// eventRepairs is the OR of the repairs inside buf[s:e].
func (p *parser) eventRepairs(s, e int) uint32 {
	if !p.repaired {
		return 0
	}
	return repairBits(p.st.repairs, s, e)
}

// event parses the event object at buf[i] (the request's event idx, nested
// at depth) strictly and adds it, or its deadletter, to the batch.
func (p *parser) event(i, idx, depth int) (int, synErr) {
	if depth >= p.maxDepth {
		return 0, synErr{i, msgTooDeep}
	}
	base := len(p.members)
	p.base = base
	p.specAt = -1
	p.typeAt = -1
	p.at = noMembers
	p.dupKeys, p.mayLong = false, false
	end, e := p.eventMembers(i, idx, depth, base)
	p.members = p.members[:base]
	return end, e
}

// envKeys are the tokens of the known envelope keys, indexed by keyCode
// (kOther: none).
var envKeys = newKeySet("", "type", "source", "payload", "data", "timestamp", "version", "event_id",
	"headers", "metadata", "priority", "subtype", "initial", "debug")

// envOrder is parser.envNext before the first event: the order BalatroMCP
// writes its events' keys in.
var envOrder = func() (a [numKeys + 1]keyCode) {
	a[numKeys] = kType
	a[kType] = kVersion
	a[kVersion] = kSource
	a[kSource] = kPayload
	a[kPayload] = kEventID
	a[kEventID] = kTimestamp
	return a
}()

// noMembers is parser.at before an event's first member.
var noMembers = func() (a [numKeys]int16) {
	for k := range a {
		a[k] = -1
	}
	return a
}()

// eventMembers is event: it collects the members in p.members[base:],
// with p.at (the last member of each known key), p.dupKeys and p.mayLong.
func (p *parser) eventMembers(i, idx, depth, base int) (int, synErr) {
	b := p.buf
	prevCode := numKeys // the start of the object
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == '}' {
		p.build(i, j+1, idx, depth, p.members[base:])
		return j + 1, synErr{}
	}
	for {
		if j >= len(b) {
			return 0, synErr{j, msgEOF}
		}
		if b[j] != '"' {
			return 0, synErr{j, msgWantKey}
		}
		var e synErr
		// The member is written in place (a copy of it appended cost more).
		n := len(p.members)
		if n < cap(p.members) {
			p.members = p.members[:n+1]
		} else {
			p.members = append(p.members, member{})
		}
		m := &p.members[n]
		*m = member{ks: j, code: kOther}
		n -= base
		// The key the previous one was followed by last time (envNext), as
		// a token `"key":` (see keySet), else scan and classify it.
		if c := p.envNext[prevCode]; c != kOther && j+24 <= len(b) && envKeys.toks[c].at(b, j) {
			m.code = c
			m.ke = j + envKeys.toks[c].n - 1 // at the colon
			j = m.ke
		} else {
			var kesc bool
			if _, w := strWord(b, j+1); w != 0 && b[j+1+bits.TrailingZeros64(w)>>3] == '"' {
				m.ke = j + 2 + bits.TrailingZeros64(w)>>3 // a short key, no escape
			} else if m.ke, kesc, e = scanString(b, j); e.msg != "" {
				return 0, e
			}
			j = skipWS(b, m.ke)
			if j >= len(b) {
				return 0, synErr{j, msgEOF}
			}
			if b[j] != ':' {
				return 0, synErr{j, msgWantColon}
			}
			m.code = keyCodeOf(b[m.ks+1:m.ke-1], kesc)
		}
		p.envNext[prevCode] = m.code
		prevCode = m.code
		m.vs = skipWS(b, j+1)
		switch c := p.at1(m.vs); {
		case c == '"':
			var esc, ascii bool
			m.ve, esc, ascii, e = scanStringA(b, m.vs)
			m.plain = ascii && !esc
		case c == '{' && (m.code == kPayload || m.code == kData) && p.typedView:
			m.ve, e = p.specTyped(m.vs, depth+1)
		case c == '-' || isDigit(c):
			switch m.code {
			case kTimestamp:
				m.ve, m.f, m.fok, e = scanNumberF(b, m.vs)
			case kVersion:
				if ve, v, ok := smallInt(b, m.vs); ok {
					m.ve, m.f, m.fok = ve, float64(v), true
					break
				}
				m.ve, e = scanNumber(b, m.vs)
			default:
				m.ve, e = scanNumber(b, m.vs)
			}
		default:
			m.ve, e = skipValue(b, m.vs, depth+1, p.maxDepth)
		}
		if e.msg != "" {
			return 0, e
		}
		if m.code != kOther {
			if n > math.MaxInt16 {
				m.code = kOther
			} else {
				if p.at[m.code] >= 0 {
					p.dupKeys = true
				}
				p.at[m.code] = int16(n)
			}
		}
		j = m.ve
		if j < len(b) && b[j] <= ' ' {
			j = skipWS(b, j)
		}
		if j >= len(b) {
			return 0, synErr{j, msgEOF}
		}
		switch b[j] {
		case ',':
			j = skipWS(b, j+1)
		case '}':
			// No string of an object shorter than maxString is longer.
			if j+1-i > p.maxString {
				p.mayLong = p.mayBeLong(p.members[base:])
			}
			p.build(i, j+1, idx, depth, p.members[base:])
			return j + 1, synErr{}
		default:
			return 0, synErr{j, msgWantComma}
		}
	}
}

// mayBeLong reports whether longField may find a string over maxString in
// the members ms: a key over it, a string value of the envelope over it, or
// headers or metadata (longField looks inside them).
func (p *parser) mayBeLong(ms []member) bool {
	b := p.buf
	for i := range ms {
		m := &ms[i]
		if m.ke-m.ks-2 > p.maxString {
			return true
		}
		switch m.code {
		case kType, kSource, kSubtype, kEventID, kPriority:
			l := m.ve - m.vs
			if b[m.vs] == '"' {
				l -= 2
			}
			if l > p.maxString {
				return true
			}
		case kHeaders, kMetadata:
			if b[m.vs] == '{' {
				return true
			}
		}
	}
	return false
}

// at1 returns buf[i], or 0 past the end.
func (p *parser) at1(i int) byte {
	if i < len(p.buf) {
		return p.buf[i]
	}
	return 0
}

// mstr is str for the string value of m.
func (p *parser) mstr(m *member) string {
	if m.plain {
		return bstr(p.buf[m.vs+1 : m.ve-1])
	}
	return p.str(m.vs, m.ve)
}

// build turns the members of the valid event object buf[s:e] into an event
// or a deadletter. p.at has the last member of each known key (the last
// occurrence wins, as encoding/json).
func (p *parser) build(s, e, idx, depth int, ms []member) {
	b := p.buf
	at := &p.at
	get := func(c keyCode) *member {
		if at[c] < 0 {
			return nil
		}
		return &ms[at[c]]
	}

	// type and source: required strings.
	var typeName, source string
	tm, sm := get(kType), get(kSource)
	if tm != nil && b[tm.vs] == '"' {
		typeName = p.mstr(tm)
	}
	if sm != nil && b[sm.vs] == '"' {
		source = p.mstr(sm)
	}
	typ, known := jimbotpb.EventType(0), false
	var subtype string
	if m := get(kSubtype); m != nil && b[m.vs] == '"' {
		subtype = p.mstr(m)
	}
	switch {
	case typeName == "":
	case p.typeAt >= 0 && p.typeAt == at[kType]:
		// specTyped parsed this member's type already (one that does not
		// depend on the subtype)
		typ, known = p.typeParsed, p.typeKnown
	default:
		typ, known = route.ParseType(typeName, subtype)
	}
	// rejectID is the event_id of the event being built, which its
	// deadletter keeps.
	if m := get(kEventID); m != nil && b[m.vs] == '"' {
		p.rejectID = p.mstr(m)
	}
	p.buildEvent(s, e, idx, depth, ms, typeName, source, subtype, typ, known)
	p.rejectID = ""
}

// buildEvent is the rest of build.
func (p *parser) buildEvent(s, e, idx, depth int, ms []member, typeName, source, subtype string, typ jimbotpb.EventType, known bool) {
	b := p.buf
	at := &p.at
	get := func(c keyCode) *member {
		if at[c] < 0 {
			return nil
		}
		return &ms[at[c]]
	}
	tm, sm := get(kType), get(kSource)
	payload := get(kPayload)
	if payload == nil {
		payload = get(kData)
	}
	var long []byte
	var tmp [128]byte
	if p.mayLong {
		long = p.longField(ms, tmp[:0])
	}
	switch {
	case len(long) > 0:
		p.rejectID = "" // it may be the long string
		if len(source) > p.maxString {
			source = ""
		}
		p.reject(idx, s, e, whyTooLong, bstr(long), 0, "", source) // copied by reject
		return
	case tm == nil:
		p.reject(idx, s, e, whyMissingType, "", 0, "", source)
		return
	case b[tm.vs] != '"':
		p.reject(idx, s, e, whyTypeNotStr, jsonKind(b[tm.vs]), 0, "", source)
		return
	case sm == nil:
		p.reject(idx, s, e, whyMissingSource, "", typ, typeName, "")
		return
	case b[sm.vs] != '"':
		p.reject(idx, s, e, whySourceNotStr, jsonKind(b[sm.vs]), typ, typeName, "")
		return
	case payload == nil:
		p.reject(idx, s, e, whyMissingPay, "", typ, typeName, source)
		return
	case typeName == "":
		p.reject(idx, s, e, whyEmptyType, "", 0, "", source)
		return
	case source == "":
		p.reject(idx, s, e, whyEmptySource, "", typ, typeName, "")
		return
	case !known:
		p.reject(idx, s, e, whyUnknownType, typeName, 0, typeName, source)
		return
	}
	topic, ok := route.TopicOf(typ, subtype)
	if !ok {
		p.reject(idx, s, e, whyUnknownType, typeName, 0, typeName, source)
		return
	}

	ev := p.st.newEvent()
	ev.Type = typ
	ev.TypeName = typeName
	ev.Source = source
	ev.Subtype = subtype
	ev.Topic = topic.String()
	ev.ReceivedAtNs = p.receivedAt
	ev.PayloadJson = p.bytesAt(payload.vs, payload.ve)
	ev.Version = 1
	ev.Repairs = p.eventRepairs(s, e)
	// spans collects the members that go to extra_json.
	p.st.spans = p.st.spans[:0]
	keep := func(m *member) { p.st.spans = append(p.st.spans, span{m.ks, m.ve}) }
	var initial, debug bool
	for n := range ms {
		m := &ms[n]
		if p.dupKeys && m.code != kOther && int(at[m.code]) != n {
			continue // an earlier duplicate of a known key
		}
		c := b[m.vs]
		switch m.code {
		case kType, kSource:
		case kPayload:
		case kData:
			if at[kPayload] >= 0 {
				keep(m)
			}
		case kTimestamp:
			if c == 'n' {
				break
			}
			if m.fok {
				ev.ClientTimestamp = m.f
				break
			}
			raw := b[m.vs:m.ve]
			if c == '"' {
				raw = raw[1 : len(raw)-1]
			}
			if f, ok := parseFloat(raw); ok {
				ev.ClientTimestamp = f
			} else {
				keep(m)
			}
		case kVersion:
			if c == 'n' {
				break
			}
			if m.fok { // a small integer, valued in its scan
				ev.Version = int32(m.f)
				break
			}
			raw := b[m.vs:m.ve]
			if c == '"' {
				raw = raw[1 : len(raw)-1]
			}
			if v, ok := parseInt64(raw); ok {
				ev.Version = satI32(v)
			} else {
				keep(m)
			}
		case kEventID:
			switch {
			case c == '"':
				ev.EventId = p.rejectID // mstr of this member
			case c == '-' || isDigit(c):
				ev.EventId = p.text(m.vs, m.ve)
			case c != 'n':
				keep(m)
			}
		case kHeaders, kMetadata:
			if c == '{' {
				p.metadata(ev, m.vs)
			} else if c != 'n' {
				keep(m)
			}
		case kPriority:
			if c == '"' {
				ev.Priority = p.mstr(m)
			} else if c != 'n' {
				keep(m)
			}
		case kSubtype:
			if c != '"' && c != 'n' {
				keep(m)
			}
		case kInitial:
			initial = c == 't'
			keep(m)
		case kDebug:
			debug = c == 't'
			keep(m)
		default:
			keep(m)
		}
	}
	if sp := p.st.spans; len(sp) > 0 {
		start := len(p.st.aux)
		a := append(p.st.aux, '{')
		for k, x := range sp {
			if k > 0 {
				a = append(a, ',')
			}
			// key token, then ':' and the value, each as received.
			a = appendMember(a, b, x.s, x.e)
		}
		a = append(a, '}')
		p.st.aux = a
		ev.ExtraJson = a[start:len(a):len(a)]
	}
	key := uint64(0)
	if ev.EventId != "" {
		if !p.srcHashed || ev.Source != p.srcLast {
			p.srcLast, p.srcHash, p.srcHashed = ev.Source, sourceHash(ev.Source), true
		}
		key = keyWith(p.srcHash, ev.EventId, ev.ClientTimestamp)
		if h := p.d.opts.KeyHint; h != nil {
			h(key)
		}
	} else {
		start := len(p.st.aux)
		p.st.aux = appendNewID(p.st.aux)
		ev.EventId = bstr(p.st.aux[start:])
	}
	if ct := ev.ClientTimestamp; ct >= 1e12 && ct < 1e16 {
		ev.Timestamp = int64(ct)
	} else {
		ev.Timestamp = p.receivedAt / 1e6
	}
	if p.typedView {
		p.typed(ev, payload.vs, payload.ve, depth+1, initial, debug)
	} else if p.deferTyped && (initial || debug) {
		p.st.flags = append(p.st.flags, eventFlags{len(p.st.batch.Events), initial, debug})
	}
	p.st.batch.Add(ev, topic)
	p.r.Keys = append(p.r.Keys, key)
	p.r.Accepted++
}

// longField checks the envelope strings of an event's members against
// maxString (see Options.MaxStringLen). It appends to dst the detail of the
// first one that is too long ("field `source` has 5000 bytes, at most
// 4096") and returns it; dst unchanged when none is.
func (p *parser) longField(ms []member, dst []byte) []byte {
	b, limit := p.buf, p.maxString
	too := func(what, name string, n int) []byte {
		dst = append(dst, what...)
		dst = append(dst, name...)
		dst = append(dst, " has "...)
		dst = appendInt(dst, n)
		dst = append(dst, " bytes, at most "...)
		return appendInt(dst, limit)
	}
	for n := range ms {
		m := ms[n]
		if l := m.ke - m.ks - 2; l > limit {
			return too("a member name", "", l)
		}
		var name string
		switch m.code {
		case kType:
			name = "`type`"
		case kSource:
			name = "`source`"
		case kSubtype:
			name = "`subtype`"
		case kEventID:
			name = "`event_id`"
		case kPriority:
			name = "`priority`"
		case kHeaders, kMetadata:
			if b[m.vs] != '{' {
				continue
			}
			name = "`metadata`"
			if m.code == kHeaders {
				name = "`headers`"
			}
			it, _ := newObjIter(b, m.vs)
			for {
				ks, ke, vs, ve, ok := it.next()
				if !ok {
					break
				}
				if l := ke - ks - 2; l > limit {
					return too("a key of field ", name, l)
				}
				if ve < 0 {
					ve = skipTrusted(b, vs)
					it.skipTo(ve)
				}
				l := ve - vs
				if b[vs] == '"' {
					l -= 2
				}
				if l > limit {
					return too("a value of field ", name, l)
				}
			}
			continue
		default:
			continue
		}
		l := m.ve - m.vs
		if b[m.vs] == '"' {
			l -= 2
		}
		if l > limit {
			return too("field ", name, l)
		}
	}
	return dst
}

// appendMember appends the member buf[s:e] ("key" ws : ws value) as
// "key":value, dropping the whitespace around the colon.
func appendMember(dst, b []byte, s, e int) []byte {
	ke := endOfString(b, s)
	dst = append(dst, b[s:ke]...)
	dst = append(dst, ':')
	vs := skipWS(b, ke)
	vs = skipWS(b, vs+1)
	return append(dst, b[vs:e]...)
}

// metadata adds the members of the object at buf[i] to ev.Metadata; values
// that are not strings are kept as their JSON text.
func (p *parser) metadata(ev *jimbotpb.Event, i int) {
	it, _ := newObjIter(p.buf, i)
	for {
		ks, ke, vs, ve, ok := it.next()
		if !ok {
			return
		}
		if ev.Metadata == nil {
			ev.Metadata = make(map[string]string)
		}
		k := p.str(ks, ke)
		if ve < 0 {
			ve = skipTrusted(p.buf, vs)
			it.skipTo(ve)
		}
		var v string
		if p.buf[vs] == '"' {
			v = p.str(vs, ve)
		} else {
			v = p.validStr(p.buf[vs:ve])
		}
		ev.Metadata[k] = v
	}
}

// appendInt appends n in decimal.
func appendInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }
