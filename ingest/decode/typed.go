package decode

import (
	"encoding/binary"
	"math"
	"math/bits"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// The typed view: a best-effort decoding of payload_json into the event's
// oneof. It never fails and never rejects an event: a value of the wrong
// JSON type is ignored, a number that does not fit its field is saturated, a
// numeric string counts as a number (Q7), {} counts as an empty list (Q6),
// and a list written as an object (Q11) is read through its values.
//
// It is read in the same pass as the strict scan of the payload. The
// walkers below validate what they walk exactly as skipValue does (the same
// checks in the same order, the same errors at the same offsets), so when an
// event's "type" member comes before its payload, as BalatroMCP writes them,
// the scanner validates the payload with the walker of that type instead of
// skipValue (parser.specTyped), and build keeps the view if the event's type
// turns out to be the one guessed. When the type comes after the payload
// (the mod's envelope is a Lua table too: half of the game processes write
// it so), the walker is that of the type last seen with a payload that
// began with the same key (typeGuess). Otherwise (nothing to guess from, a
// wrong guess, a later duplicate "type", LEARNING_DECISION whose subtype
// decides) build walks the validated payload again (parser.typed). Either
// way each payload byte is read by one walker, not by a validator and then
// a walker, as long as the guesses hold.

// vIter is the strict walk of an object or an array, with skipValue's
// checks. next validates each scalar value and what follows it; a container
// value is the caller's to walk (then close), or next validates it when the
// caller leaves it.
type vIter struct {
	j     int // the next member or element; after the closing bracket once done
	depth int // the depth of the values (skipValue's depth for them)
	pend  int // a container value next returned that nobody walked, or -1
	done  bool
	arr   bool
	slot  int // nextK: the keyOrder slot of the next key
	v     valueInfo
}

// valueInfo is what next and nextK found out about the value they returned
// last, while validating it.
type valueInfo struct {
	plain bool // a string, ASCII without escapes
	// isInt is set for an integer token (nextK only), whose value is num
	// (and numF, as float64).
	isInt bool
	num   int64
	numF  float64
}

// i32v, i64v and f64v are i32, i64 and f64 for the value v describes.
func (p *parser) i32v(v valueInfo, s, e int) int32 {
	if v.isInt {
		return satI32(v.num)
	}
	return p.i32(s, e)
}

func (p *parser) i64v(v valueInfo, s, e int) int64 {
	if v.isInt {
		return v.num
	}
	return p.i64(s, e)
}

func (p *parser) f64v(v valueInfo, s, e int) float64 {
	if v.isInt {
		return v.numF
	}
	return p.f64(s, e)
}

// open starts the walk of the object or array at buf[i], nested at depth
// (skipValue's depth for it).
func (p *parser) open(i, depth int) (vIter, synErr) {
	b := p.buf
	if depth >= p.maxDepth {
		return vIter{done: true, pend: -1}, synErr{i, msgTooDeep}
	}
	it := vIter{depth: depth + 1, arr: b[i] == '[', pend: -1}
	j := skipWS(b, i+1)
	if j < len(b) && (b[j] == '}' && !it.arr || b[j] == ']' && it.arr) {
		it.j, it.done = j+1, true
		return it, synErr{}
	}
	it.j = j
	return it, synErr{}
}

// next returns the next member (ks, ke: the key token with its quotes) or
// element, with its value at buf[vs:ve]; ve is -1 for an object or array,
// which the caller may walk and then close. ok is false once the container
// is closed, or with an error.
func (p *parser) next(it *vIter) (ks, ke, vs, ve int, ok bool, e synErr) {
	b := p.buf
	if it.pend >= 0 {
		end, e := skipValue(b, it.pend, it.depth, p.maxDepth)
		if e.msg != "" {
			return 0, 0, 0, 0, false, e
		}
		it.pend = -1
		if e = p.after(it, end); e.msg != "" {
			return 0, 0, 0, 0, false, e
		}
	}
	if it.done {
		return 0, 0, 0, 0, false, synErr{}
	}
	j := it.j
	if !it.arr {
		if j >= len(b) {
			return 0, 0, 0, 0, false, synErr{j, msgEOF}
		}
		if b[j] != '"' {
			return 0, 0, 0, 0, false, synErr{j, msgWantKey}
		}
		ks = j
		// A key shorter than 8 bytes without escapes (nearly all of them)
		// inline, else scanString.
		if _, m := strWord(b, j+1); m != 0 && b[j+1+bits.TrailingZeros64(m)>>3] == '"' {
			ke = j + 2 + bits.TrailingZeros64(m)>>3
		} else if ke, _, e = scanString(b, j); e.msg != "" {
			return 0, 0, 0, 0, false, e
		}
		k := ke
		if k < len(b) && b[k] != ':' {
			k = skipWS(b, k)
		}
		if k >= len(b) {
			return 0, 0, 0, 0, false, synErr{k, msgEOF}
		}
		if b[k] != ':' {
			return 0, 0, 0, 0, false, synErr{k, msgWantColon}
		}
		j = skipWS(b, k+1)
	}
	vs = j
	if j >= len(b) {
		return 0, 0, 0, 0, false, synErr{j, msgEOF}
	}
	it.v.isInt = false // (set by nextK only)
	switch c := b[j]; {
	case c == '"':
		// Likewise a string value shorter than 8 bytes inline.
		if x, m := strWord(b, j+1); m != 0 && b[j+1+bits.TrailingZeros64(m)>>3] == '"' {
			ve = j + 2 + bits.TrailingZeros64(m)>>3
			it.v.plain = x&((m&-m)>>7-1)&swarHigh == 0
		} else {
			var ascii, esc bool
			ve, esc, ascii, e = scanStringA(b, j)
			it.v.plain = ascii && !esc
		}
	case c == '{' || c == '[':
		it.pend = j
		return ks, ke, vs, -1, true, synErr{}
	case c == '-' || isDigit(c):
		ve, e = scanNumber(b, j)
	default:
		ve, e = skipValue(b, j, it.depth, p.maxDepth)
	}
	if e.msg != "" {
		return 0, 0, 0, 0, false, e
	}
	if e = p.after(it, ve); e.msg != "" {
		return 0, 0, 0, 0, false, e
	}
	return ks, ke, vs, ve, true, synErr{}
}

// nextK is next for an object of a kind with known keys: it returns the
// index of the member's key in ks (-1 for another key) instead of the key
// token, and predicts the next key (see keySet).
func (p *parser) nextK(it *vIter, ks *keySet) (id, vs, ve int, ok bool, e synErr) {
	b := p.buf
	if it.pend >= 0 {
		end, e := skipValue(b, it.pend, it.depth, p.maxDepth)
		if e.msg != "" {
			return 0, 0, 0, false, e
		}
		it.pend = -1
		if e = p.after(it, end); e.msg != "" {
			return 0, 0, 0, false, e
		}
	}
	if it.done {
		return 0, 0, 0, false, synErr{}
	}
	j := it.j
	if j >= len(b) {
		return 0, 0, 0, false, synErr{j, msgEOF}
	}
	if b[j] != '"' {
		return 0, 0, 0, false, synErr{j, msgWantKey}
	}
	id = -1
	k := 0 // after the colon
	ord := &p.st.order[ks.id]
	if j+24 <= len(b) {
		toks := ks.toks
		if n := int(ord[it.slot&maxSetKeys]); n < len(toks) && toks[n].at(b, j) {
			id, k = n, j+toks[n].n
		} else {
			id, k = ks.skipped(ord, n, b, j)
		}
	}
	if id < 0 {
		ke, esc, e := scanString(b, j)
		if e.msg != "" {
			return 0, 0, 0, false, e
		}
		k = ke
		if k < len(b) && b[k] != ':' {
			k = skipWS(b, k)
		}
		if k >= len(b) {
			return 0, 0, 0, false, synErr{k, msgEOF}
		}
		if b[k] != ':' {
			return 0, 0, 0, false, synErr{k, msgWantColon}
		}
		k++
		raw := b[j+1 : ke-1]
		if esc && len(raw) <= len(p.st.keyBuf) {
			// decodes to at most len(raw) bytes: no allocation
			raw = appendUnescaped(p.st.keyBuf[:0], raw)
		}
		id = ks.lookup(raw) // an escaped key too long to decode here is no known key
		if id >= 0 {
			ord[it.slot&maxSetKeys] = uint8(id) // learn: the next object predicts it
		}
	}
	if id >= 0 {
		it.slot = id + 1
	}
	j = k
	if j < len(b) && b[j] <= ' ' {
		j = skipWS(b, j)
	}
	vs = j
	if j >= len(b) {
		return 0, 0, 0, false, synErr{j, msgEOF}
	}
	it.v.isInt = false
	switch c := b[j]; {
	case c == '"':
		if x, m := strWord(b, j+1); m != 0 && b[j+1+bits.TrailingZeros64(m)>>3] == '"' {
			ve = j + 2 + bits.TrailingZeros64(m)>>3
			it.v.plain = x&((m&-m)>>7-1)&swarHigh == 0
		} else {
			var ascii, esc bool
			ve, esc, ascii, e = scanStringA(b, j)
			it.v.plain = ascii && !esc
		}
	case c == '{' || c == '[':
		it.pend = j
		return id, vs, -1, true, synErr{}
	case c == '-' || isDigit(c):
		// An integer of up to 18 digits (the usual number of a payload) is
		// read as it is validated.
		ve, e = scanNumberV(b, j, &it.v)
	default:
		ve, e = skipValue(b, j, it.depth, p.maxDepth)
	}
	if e.msg != "" {
		return 0, 0, 0, false, e
	}
	if e = p.after(it, ve); e.msg != "" {
		return 0, 0, 0, false, e
	}
	return id, vs, ve, true, synErr{}
}

// close tells it that the container value next returned last, which the
// caller walked, ends at end.
func (p *parser) close(it *vIter, end int) synErr {
	it.pend = -1
	return p.after(it, end)
}

// after steps over what follows the value that ends at ve: ',' or the
// closing bracket.
func (p *parser) after(it *vIter, ve int) synErr {
	b := p.buf
	j := ve
	if j < len(b) && b[j] <= ' ' {
		j = skipWS(b, j)
	}
	if j >= len(b) {
		return synErr{j, msgEOF}
	}
	switch c := b[j]; {
	case c == ',':
		j++
		if j < len(b) && b[j] <= ' ' {
			j = skipWS(b, j)
		}
		it.j = j
	case c == '}' && !it.arr || c == ']' && it.arr:
		it.j, it.done = j+1, true
	default:
		return synErr{j, msgWantComma}
	}
	return synErr{}
}

// textv is text for the value v describes.
func (p *parser) textv(v valueInfo, s, e int) string {
	if v.plain && e > s && p.buf[s] == '"' {
		return bstr(p.buf[s+1 : e-1])
	}
	return p.text(s, e)
}

// specTyped validates the payload object at buf[vs] (nested at depth) of
// the event being parsed, and returns its end. It is the typed walk of the
// event's type if a "type" member came before it, else of the type guessed
// from its first key (typeGuess), kept in p.st.spec for build.
func (p *parser) specTyped(vs, depth int) (int, synErr) {
	typ := jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED
	if n := p.at[kType]; n >= 0 {
		if m := &p.members[p.base+int(n)]; p.buf[m.vs] == '"' {
			var known bool
			if typ, known = route.ParseType(p.mstr(m), ""); typ != jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST {
				// build's ParseType of the same member, if it stays the type
				p.typeAt, p.typeParsed, p.typeKnown = n, typ, known
			}
		}
	} else {
		typ = p.st.guess.get(p.buf, vs)
	}
	switch typ {
	case jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED,
		jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST,
		jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE: // the subtype decides
		return skipValue(p.buf, vs, depth, p.maxDepth)
	}
	p.st.spec.Payload = nil
	end, e := p.walkTyped(&p.st.spec, typ, vs, depth)
	if e.msg == "" && p.st.spec.Payload != nil {
		p.specAt, p.specType = vs, typ
	}
	return end, e
}

// typed sets ev's typed oneof view from the validated payload at buf[s:e],
// nested at depth, unless specTyped read it already.
func (p *parser) typed(ev *jimbotpb.Event, s, e, depth int, initial, debug bool) {
	if s >= e || p.buf[s] != '{' {
		return
	}
	if p.specAt == s && p.specType == ev.Type {
		ev.Payload = p.st.spec.Payload
	} else {
		p.walkTyped(ev, ev.Type, s, depth) // validated already: no error
		p.st.guess.learn(p.buf, s, ev.Type)
	}
	if gs, ok := ev.Payload.(*jimbotpb.Event_GameState); ok {
		gs.GameState.Initial = initial
		gs.GameState.Debug = debug
	}
}

// fillTyped builds the typed views that Decode deferred (Options.
// TypedWanted said no): it walks each accepted event's payload_json, which
// aliases the batch's buffers, into the batch state's reused views, as
// Decode would have. It runs on the one goroutine that owns the batch
// (route.Batch.FillTyped).
func fillTyped(b *route.Batch) {
	st := b.Owner.(*batchState)
	p := parser{st: st, maxDepth: math.MaxInt, specAt: -1}
	flags := st.flags
	for i, ev := range b.Events {
		pj := ev.PayloadJson
		if ev.Payload != nil || ev.DeadletterReason != "" || len(pj) == 0 || pj[0] != '{' {
			continue
		}
		var initial, debug bool
		for len(flags) > 0 && flags[0].idx < i {
			flags = flags[1:]
		}
		if len(flags) > 0 && flags[0].idx == i {
			initial, debug = flags[0].initial, flags[0].debug
		}
		p.buf = pj
		p.typed(ev, 0, len(pj), 1, initial, debug)
	}
}

// walkTyped walks the object at buf[s] (nested at depth), validating it,
// into dst.Payload as the view of type typ (types without a view: nothing
// set), and returns its end.
func (p *parser) walkTyped(dst *jimbotpb.Event, typ jimbotpb.EventType, s, depth int) (int, synErr) {
	c := &p.st.typed
	switch typ {
	case jimbotpb.EventType_EVENT_TYPE_GAME_STATE:
		v := c.gameState.get()
		end, e := p.gameState(v, s, depth)
		v.w.GameState = &v.m
		dst.Payload = &v.w
		return end, e
	case jimbotpb.EventType_EVENT_TYPE_HEARTBEAT:
		v := c.heartbeat.get()
		m := &v.m
		*m = jimbotpb.HeartbeatEvent{}
		v.w.Heartbeat = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &heartbeatKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // game_state
				m.GameState = p.textv(v, vs, ve)
			case 1: // headless
				m.Headless = p.boolean(vs, ve)
			case 2: // version
				m.Version = p.textv(v, vs, ve)
			case 3: // uptime
				m.Uptime = p.i64v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED:
		v := c.money.get()
		m := &v.m
		*m = jimbotpb.MoneyChangedEvent{}
		v.w.MoneyChanged = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &moneyKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // difference
				m.Difference = p.i32v(v, vs, ve)
			case 1: // old_value
				m.OldValue = p.i32v(v, vs, ve)
			case 2: // new_value
				m.NewValue = p.i32v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_SCORE_CHANGED:
		v := c.score.get()
		m := &v.m
		*m = jimbotpb.ScoreChangedEvent{}
		v.w.ScoreChanged = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &scoreChangedKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // new_chips
				m.NewChips = p.i64v(v, vs, ve)
			case 1: // old_mult
				m.OldMult = p.f64v(v, vs, ve)
			case 2: // new_mult
				m.NewMult = p.f64v(v, vs, ve)
			case 3: // old_chips
				m.OldChips = p.i64v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_HAND_PLAYED:
		v := c.handPlayed.get()
		m := &v.m
		*m = jimbotpb.HandPlayedEvent{}
		v.w.HandPlayed = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &handPlayedKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // hand_number
				m.HandNumber = p.i32v(v, vs, ve)
			case 1: // hands_remaining
				m.HandsRemaining = p.i32v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_CARDS_DISCARDED:
		v := c.discard.get()
		m := &v.m
		*m = jimbotpb.CardsDiscardedEvent{}
		v.w.CardsDiscarded = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &discardKeys, func(k, vs, ve int, v valueInfo) {
			if k == 0 { // discards_remaining
				m.DiscardsRemaining = p.i32v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_JOKERS_CHANGED:
		v := c.jokersChanged.get()
		m := &v.m
		*m = jimbotpb.JokersChangedEvent{}
		v.w.JokersChanged = m
		dst.Payload = &v.w
		it, e := p.open(s, depth)
		for e.msg == "" {
			id, vs, ve, ok, e2 := p.nextK(&it, &jokersChangedKeys)
			if !ok {
				e = e2
				break
			}
			switch id {
			case 0: // jokers
				if ve < 0 {
					var end int
					v.jokers, end, e = p.jokers(v.jokers[:0], vs, it.depth)
					m.Jokers = v.jokers
					if e.msg == "" {
						e = p.close(&it, end)
					}
				}
			case 1: // old_count
				m.OldCount = p.i32v(it.v, vs, ve)
			case 2: // new_count
				m.NewCount = p.i32v(it.v, vs, ve)
			}
		}
		return it.j, e
	case jimbotpb.EventType_EVENT_TYPE_ROUND_CHANGED:
		v := c.round.get()
		m := &v.m
		*m = jimbotpb.RoundChangedEvent{}
		v.w.RoundChanged = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &roundKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // ante
				m.Ante = p.i32v(v, vs, ve)
			case 1: // round
				m.Round = p.i32v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_PHASE_CHANGED:
		v := c.phase.get()
		m := &v.m
		*m = jimbotpb.PhaseChangedEvent{}
		v.w.PhaseChanged = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &phaseKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // old_phase
				m.OldPhase = p.textv(v, vs, ve)
			case 1: // new_phase
				m.NewPhase = p.textv(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_ROUND_COMPLETE:
		v := c.roundComplete.get()
		m := &v.m
		*m = jimbotpb.RoundCompleteEvent{}
		v.w.RoundComplete = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &roundCompleteKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // ante
				m.Ante = p.i32v(v, vs, ve)
			case 1: // round
				m.Round = p.i32v(v, vs, ve)
			case 2: // score
				m.Score = p.i64v(v, vs, ve)
			case 3: // money
				m.Money = p.i32v(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST:
		v := c.connTest.get()
		m := &v.m
		*m = jimbotpb.ConnectionTestEvent{}
		v.w.ConnectionTest = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &messageKeys, func(k, vs, ve int, v valueInfo) {
			if k == 0 { // message
				m.Message = p.textv(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED:
		v := c.jokerTrig.get()
		m := &v.m
		*m = jimbotpb.JokerTriggeredEvent{}
		v.w.JokerTriggered = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &jokerTrigKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // joker_name
				m.JokerName = p.textv(v, vs, ve)
			case 1: // context_type: true or "unknown" (Q13)
				m.ContextType = p.textv(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_ERROR:
		v := c.errors.get()
		m := &v.m
		*m = jimbotpb.ErrorEvent{}
		v.w.Error = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &errorKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // message
				m.Message = p.textv(v, vs, ve)
			case 1: // stack_trace
				m.StackTrace = p.textv(v, vs, ve)
			}
		})
	case jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST:
		v := c.ldReq.get()
		m := &v.m
		*m = jimbotpb.LearningDecisionRequest{}
		v.w.LearningDecisionRequest = m
		dst.Payload = &v.w
		it, e := p.open(s, depth)
		for e.msg == "" {
			id, vs, ve, ok, e2 := p.nextK(&it, &ldReqKeys)
			if !ok {
				e = e2
				break
			}
			switch id {
			case 0: // request_id
				m.RequestId = p.textv(it.v, vs, ve)
			case 1: // time_limit_ms
				m.TimeLimitMs = p.i32v(it.v, vs, ve)
			case 2: // available_actions
				if ve >= 0 {
					break
				}
				v.actions = v.actions[:0]
				var el vIter
				el, e = p.open(vs, it.depth)
				for e.msg == "" {
					_, _, es, ee, ok, e2 := p.next(&el)
					if !ok {
						e = e2
						break
					}
					v.actions = append(v.actions, p.textv(el.v, es, ee))
				}
				m.AvailableActions = v.actions
				if e.msg == "" {
					e = p.close(&it, el.j)
				}
			}
		}
		return it.j, e
	case jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE:
		v := c.ldResp.get()
		m := &v.m
		*m = jimbotpb.LearningDecisionResponse{}
		v.w.LearningDecisionResponse = m
		dst.Payload = &v.w
		return p.walkFlat(s, depth, &ldRespKeys, func(k, vs, ve int, v valueInfo) {
			switch k {
			case 0: // request_id
				m.RequestId = p.textv(v, vs, ve)
			case 1: // selected_action
				m.SelectedAction = p.textv(v, vs, ve)
			case 2: // confidence
				m.Confidence = p.f64v(v, vs, ve)
			}
		})
	}
	return skipValue(p.buf, s, depth, p.maxDepth)
}

// gameState fills v from the GAME_STATE payload at buf[s] (nested at depth)
// and returns its end.
func (p *parser) gameState(v *gameStateView, s, depth int) (int, synErr) {
	m := &v.m
	*m = jimbotpb.GameStateEvent{}
	it, e := p.open(s, depth)
	for e.msg == "" {
		id, vs, ve, ok, e2 := p.nextK(&it, &gameStateKeys)
		if !ok {
			e = e2
			break
		}
		switch id {
		case gsInGame:
			m.InGame = p.boolean(vs, ve)
		case gsGameID:
			m.GameId = p.textv(it.v, vs, ve)
		case gsAnte:
			m.Ante = p.i32v(it.v, vs, ve)
		case gsRound:
			m.Round = p.i32v(it.v, vs, ve)
		case gsHandNumber:
			m.HandNumber = p.i32v(it.v, vs, ve)
		case gsChips:
			m.Chips = p.f64v(it.v, vs, ve)
		case gsMult:
			m.Mult = p.f64v(it.v, vs, ve)
		case gsMoney:
			m.Money = p.f64v(it.v, vs, ve)
		case gsHandSize:
			m.HandSize = p.i32v(it.v, vs, ve)
		case gsHandsRemaining:
			m.HandsRemaining = p.i32v(it.v, vs, ve)
		case gsDiscardsRemaining:
			m.DiscardsRemaining = p.i32v(it.v, vs, ve)
		case gsFrameCount:
			m.FrameCount = p.i32v(it.v, vs, ve)
		case gsUIState:
			m.UiState = p.textv(it.v, vs, ve)
		case gsGameState, gsPhase: // "phase" in the degenerate menu payload
			m.PhaseName = p.textv(it.v, vs, ve)
			m.GameState = phaseOf(m.PhaseName)
		}
		if ve >= 0 {
			continue // a scalar where a list or object belongs: ignored
		}
		end := -1
		d := it.depth
		switch id {
		case gsJokers:
			v.jokers, end, e = p.jokers(v.jokers[:0], vs, d)
			m.Jokers = v.jokers
		case gsHand:
			v.hand, end, e = p.cards(v.hand[:0], vs, d, &cardKeys)
			m.Hand = v.hand
		case gsConsumables:
			v.consumables, end, e = p.consumables(v.consumables[:0], vs, d)
			m.Consumables = v.consumables
		case gsDeck:
			if p.buf[vs] == '{' { // not an object: ignored
				end, e = p.deck(v, vs, d)
				m.Deck = &v.deck
			}
		case gsBlind:
			if p.buf[vs] == '{' {
				end, e = p.blind(&v.blind, vs, d)
				m.Blind = &v.blind
			}
		case gsScoreHistory:
			if p.buf[vs] == '{' {
				if v.scores == nil {
					v.scores = make(map[string]*jimbotpb.ScoreHistory, 16)
				}
				clear(v.scores)
				end, e = p.scoreHistory(v.scores, vs, d)
				if len(v.scores) > 0 {
					m.ScoreHistory = v.scores
				}
			}
		case gsShopItems:
			if p.buf[vs] == '{' {
				if v.shop == nil {
					v.shop = make(map[string]*jimbotpb.ShopItem, 8)
				}
				clear(v.shop)
				end, e = p.shopItems(v.shop, vs, d)
				if len(v.shop) > 0 {
					m.ShopItems = v.shop
				}
			}
		}
		if end >= 0 && e.msg == "" {
			e = p.close(&it, end)
		}
	}
	return it.j, e
}

// scoreHistory fills dst from the object at buf[s] and returns its end. A
// member whose value is an object or an array is an entry (an array gives
// an empty one); scalars are ignored.
func (p *parser) scoreHistory(dst map[string]*jimbotpb.ScoreHistory, s, depth int) (int, synErr) {
	it, e := p.open(s, depth)
	for e.msg == "" {
		ks, ke, es, ee, ok, e2 := p.next(&it)
		if !ok {
			e = e2
			break
		}
		if ee >= 0 {
			continue
		}
		h := p.st.typed.scoreHist.get()
		*h = jimbotpb.ScoreHistory{}
		if p.buf[es] == '{' {
			var end int
			end, e = p.walkFlat(es, it.depth, &scoreKeys, func(k, vs, ve int, v valueInfo) {
				switch k {
				case 0: // label
					h.Label = p.textv(v, vs, ve)
				case 1: // amt
					h.Amt = p.f64v(v, vs, ve)
				}
			})
			if e.msg == "" {
				e = p.close(&it, end)
			}
		}
		dst[p.str(ks, ke)] = h
	}
	return it.j, e
}

// shopItems fills dst from the object at buf[s] and returns its end, as
// scoreHistory.
func (p *parser) shopItems(dst map[string]*jimbotpb.ShopItem, s, depth int) (int, synErr) {
	it, e := p.open(s, depth)
	for e.msg == "" {
		ks, ke, es, ee, ok, e2 := p.next(&it)
		if !ok {
			e = e2
			break
		}
		if ee >= 0 {
			continue
		}
		item := p.st.typed.shopItems.get()
		*item = jimbotpb.ShopItem{}
		if p.buf[es] == '{' {
			var end int
			end, e = p.walkFlat(es, it.depth, &shopKeys, func(k, vs, ve int, v valueInfo) {
				switch k {
				case 0: // name
					item.Name = p.textv(v, vs, ve)
				case 1: // cost
					item.Cost = p.f64v(v, vs, ve)
				case 2: // rarity: 1-4 or "common"
					item.Rarity = p.textv(v, vs, ve)
				}
			})
			if e.msg == "" {
				e = p.close(&it, end)
			}
		}
		dst[p.str(ks, ke)] = item
	}
	return it.j, e
}

// deck fills v.deck from the object at buf[s] and returns its end.
func (p *parser) deck(v *gameStateView, s, depth int) (int, synErr) {
	dk := &v.deck
	*dk = jimbotpb.Deck{}
	it, e := p.open(s, depth)
	for e.msg == "" {
		id, vs, ve, ok, e2 := p.nextK(&it, &deckKeys)
		if !ok {
			e = e2
			break
		}
		end := -1
		switch id {
		case 0: // remaining_count
			dk.RemainingCount = p.i32v(it.v, vs, ve)
		case 1: // cards_remaining
			if ve < 0 {
				v.remaining, end, e = p.cards(v.remaining[:0], vs, it.depth, &deckCardKeys)
				dk.CardsRemaining = v.remaining
			}
		case 2: // full_deck
			if ve < 0 {
				v.fullDeck, end, e = p.cards(v.fullDeck[:0], vs, it.depth, &deckCardKeys)
				dk.FullDeck = v.fullDeck
			}
		}
		if end >= 0 && e.msg == "" {
			e = p.close(&it, end)
		}
	}
	return it.j, e
}

// blind fills bl from the object at buf[s] and returns its end.
func (p *parser) blind(bl *jimbotpb.Blind, s, depth int) (int, synErr) {
	*bl = jimbotpb.Blind{}
	return p.walkFlat(s, depth, &blindKeys, func(k, vs, ve int, v valueInfo) {
		switch k {
		case blindName:
			bl.Name = p.textv(v, vs, ve)
		case blindChips:
			bl.Chips = p.i32v(v, vs, ve)
		case blindChipText:
			bl.ChipText = p.textv(v, vs, ve)
		case blindMult:
			bl.Mult = f32(p.f64v(v, vs, ve))
		case blindDefeated:
			bl.Defeated = p.boolean(vs, ve)
		case blindBoss:
			bl.Boss = p.boolean(vs, ve)
		}
	})
}

// cards appends the cards of the list (or object, Q6/Q11) at buf[s] and
// returns its end; elements that are not objects are skipped.
func (p *parser) cards(dst []*jimbotpb.Card, s, depth int, ks *keySet) ([]*jimbotpb.Card, int, synErr) {
	el, e := p.open(s, depth)
	for e.msg == "" {
		_, _, es, ee, ok, e2 := p.next(&el)
		if !ok {
			e = e2
			break
		}
		if ee >= 0 || p.buf[es] != '{' {
			continue
		}
		c := p.st.typed.cards.get()
		// The zero value, as new(T) gives: the message state is set lazily
		// (cheaper than Reset's atomic store, for 60 cards a GAME_STATE).
		*c = jimbotpb.Card{}
		var end int
		if end, e = p.card(c, es, el.depth, ks); e.msg == "" {
			e = p.close(&el, end)
		}
		dst = append(dst, c)
	}
	return dst, el.j, e
}

// card fills c from the object at buf[s] and returns its end; ks is
// cardKeys or deckCardKeys (the same keys, learned apart).
func (p *parser) card(c *jimbotpb.Card, s, depth int, ks *keySet) (int, synErr) {
	end, it, st, e := p.cardFast(c, s, depth, ks)
	return p.walkRest(s, depth, ks, func(k, vs, ve int, v valueInfo) {
		switch k {
		case cardID: // a float such as 0.99989895846132, kept as printed
			c.Id = p.textv(v, vs, ve)
		case cardRank:
			c.Rank = rankOf(p.textv(v, vs, ve))
		case cardSuit:
			c.Suit = suitOf(p.textv(v, vs, ve))
		case cardEnhancement:
			c.Enhancement = p.textv(v, vs, ve)
		case cardEdition:
			c.Edition = p.textv(v, vs, ve)
		case cardSeal:
			c.Seal = p.textv(v, vs, ve)
		case cardPosition:
			c.Position = p.i32v(v, vs, ve)
		}
	}, end, it, st, e)
}

// jokers appends the jokers of the list (or object) at buf[s] and returns
// its end.
func (p *parser) jokers(dst []*jimbotpb.Joker, s, depth int) ([]*jimbotpb.Joker, int, synErr) {
	el, e := p.open(s, depth)
	for e.msg == "" {
		_, _, es, ee, ok, e2 := p.next(&el)
		if !ok {
			e = e2
			break
		}
		if ee >= 0 || p.buf[es] != '{' {
			continue
		}
		v := p.st.typed.jokers.get()
		v.j = jimbotpb.Joker{}
		var end int
		if end, e = p.joker(v, es, el.depth); e.msg == "" {
			e = p.close(&el, end)
		}
		dst = append(dst, &v.j)
	}
	return dst, el.j, e
}

// joker fills v.j from the object at buf[s] and returns its end.
func (p *parser) joker(v *jokerView, s, depth int) (int, synErr) {
	if end, ok := p.jokerFast(v, s, depth); ok {
		return end, synErr{}
	}
	v.j, v.p = jimbotpb.Joker{}, jimbotpb.JokerProperties{} // what jokerFast set
	j := &v.j
	set := func(k, vs, ve int, x valueInfo) {
		switch k {
		case jokerID:
			j.Id = p.textv(x, vs, ve)
		case jokerName:
			j.Name = p.textv(x, vs, ve)
		case jokerPosition:
			j.Position = p.i32v(x, vs, ve)
		}
	}
	// The scalars straight, up to the properties object.
	end, it, st, e := p.fastObject(s, depth, &jokerKeys, set)
	switch st {
	case fastDone, fastError:
		return end, e
	case fastFresh:
		it, e = p.open(s, depth)
	}
	for e.msg == "" {
		id, vs, ve, ok, e2 := p.nextK(&it, &jokerKeys)
		if !ok {
			e = e2
			break
		}
		if id != jokerProperties {
			set(id, vs, ve, it.v)
			continue
		}
		if ve >= 0 || p.buf[vs] != '{' {
			continue
		}
		pr := &v.p
		*pr = jimbotpb.JokerProperties{}
		j.Properties = pr
		if end, e = p.jokerProps(pr, vs, it.depth); e.msg == "" {
			e = p.close(&it, end)
		}
	}
	return it.j, e
}

// jokerProps fills pr from the object at buf[s] and returns its end.
func (p *parser) jokerProps(pr *jimbotpb.JokerProperties, s, depth int) (int, synErr) {
	return p.walkFlat(s, depth, &jokerPropKeys, func(k, vs, ve int, v valueInfo) {
		switch k {
		case jpMult:
			pr.Mult = p.f64v(v, vs, ve)
		case jpChips:
			pr.Chips = p.f64v(v, vs, ve)
		case jpCost:
			pr.Cost = p.f64v(v, vs, ve)
		case jpSellValue:
			pr.SellValue = p.f64v(v, vs, ve)
		case jpEdition:
			pr.Edition = p.textv(v, vs, ve)
		}
	})
}

// consumables appends the consumables of the list (or object) at buf[s]
// and returns its end.
func (p *parser) consumables(dst []*jimbotpb.Consumable, s, depth int) ([]*jimbotpb.Consumable, int, synErr) {
	el, e := p.open(s, depth)
	for e.msg == "" {
		_, _, es, ee, ok, e2 := p.next(&el)
		if !ok {
			e = e2
			break
		}
		if ee >= 0 || p.buf[es] != '{' {
			continue
		}
		v := p.st.typed.consumables.get()
		v.c = jimbotpb.Consumable{}
		var end int
		if end, e = p.consumable(v, es, el.depth); e.msg == "" {
			e = p.close(&el, end)
		}
		dst = append(dst, &v.c)
	}
	return dst, el.j, e
}

// consumable fills v.c from the object at buf[s] and returns its end.
func (p *parser) consumable(v *consumableView, s, depth int) (int, synErr) {
	c := &v.c
	it, e := p.open(s, depth)
	for e.msg == "" {
		id, vs, ve, ok, e2 := p.nextK(&it, &consKeys)
		if !ok {
			e = e2
			break
		}
		switch id {
		case consID:
			c.Id = p.textv(it.v, vs, ve)
		case consName:
			c.Name = p.textv(it.v, vs, ve)
		case consCardType:
			c.CardType = p.textv(it.v, vs, ve)
		case consPosition:
			c.Position = p.i32v(it.v, vs, ve)
		case consProperties:
			if ve >= 0 || p.buf[vs] != '{' {
				break
			}
			pr := &v.p
			*pr = jimbotpb.ConsumableProperties{}
			c.Properties = pr
			var end int
			end, e = p.walkFlat(vs, it.depth, &consPropKeys, func(k, vs, ve int, v valueInfo) {
				switch k {
				case 0: // cost
					pr.Cost = p.f64v(v, vs, ve)
				case 1: // edition
					pr.Edition = p.textv(v, vs, ve)
				}
			})
			if e.msg == "" {
				e = p.close(&it, end)
			}
		}
	}
	return it.j, e
}

// numBytes returns the bytes of a number value: the token, or the content
// of a string (Q7: numbers written as strings); nil for anything else.
func (p *parser) numBytes(s, e int) []byte {
	if s >= e {
		return nil
	}
	switch c := p.buf[s]; {
	case c == '"':
		return p.buf[s+1 : e-1]
	case c == '-' || isDigit(c):
		return p.buf[s:e]
	}
	return nil
}

func (p *parser) f64(s, e int) float64 {
	f, _ := parseFloat(p.numBytes(s, e))
	return f
}

func (p *parser) i64(s, e int) int64 {
	n, _ := parseInt64(p.numBytes(s, e))
	return n
}

func (p *parser) i32(s, e int) int32 { return satI32(p.i64(s, e)) }

// boolean reads true, "true" and non-zero numbers as true.
func (p *parser) boolean(s, e int) bool {
	switch p.buf[s] {
	case 't':
		return true
	case '"':
		return string(p.buf[s+1:e-1]) == "true"
	case 'f', 'n', '{', '[':
		return false
	}
	return p.f64(s, e) != 0
}

func f32(f float64) float32 {
	switch {
	case f > math.MaxFloat32:
		return math.MaxFloat32
	case f < -math.MaxFloat32:
		return -math.MaxFloat32
	}
	return float32(f)
}

// phaseOf maps BalatroMCP's phase strings (balatromcp-client.md 2.4) to the
// enum. UNKNOWN_STATE_1..3 are vanilla's SELECTING_HAND, HAND_PLAYED and
// DRAW_TO_HAND: playing. Anything else is UNSPECIFIED; phase_name keeps the
// string.
func phaseOf(s string) jimbotpb.GamePhase {
	var buf [24]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.GamePhase_PHASE_UNSPECIFIED
	}
	switch string(u) {
	case "MENU":
		return jimbotpb.GamePhase_PHASE_MENU
	case "BLIND_SELECT":
		return jimbotpb.GamePhase_PHASE_BLIND_SELECT
	case "SHOP":
		return jimbotpb.GamePhase_PHASE_SHOP
	case "PLAYING", "UNKNOWN_STATE_1", "UNKNOWN_STATE_2", "UNKNOWN_STATE_3", "SELECTING_HAND", "HAND_PLAYED", "DRAW_TO_HAND":
		return jimbotpb.GamePhase_PHASE_PLAYING
	case "GAME_OVER":
		return jimbotpb.GamePhase_PHASE_GAME_OVER
	case "ROUND_EVAL":
		return jimbotpb.GamePhase_PHASE_ROUND_EVAL
	case "TAROT_PACK":
		return jimbotpb.GamePhase_PHASE_TAROT_PACK
	case "PLANET_PACK":
		return jimbotpb.GamePhase_PHASE_PLANET_PACK
	case "SPECTRAL_PACK":
		return jimbotpb.GamePhase_PHASE_SPECTRAL_PACK
	case "STANDARD_PACK":
		return jimbotpb.GamePhase_PHASE_STANDARD_PACK
	case "BUFFOON_PACK":
		return jimbotpb.GamePhase_PHASE_BUFFOON_PACK
	case "BOOSTER_PACK":
		return jimbotpb.GamePhase_PHASE_BOOSTER_PACK
	}
	return jimbotpb.GamePhase_PHASE_UNSPECIFIED
}

// rankOf maps "King", "K", "10", "Ace", "A" ... to the enum.
func rankOf(s string) jimbotpb.Rank {
	switch len(s) { // the number cards, as the mod writes them
	case 1:
		if d := s[0] - '0'; d >= 2 && d <= 9 {
			return jimbotpb.Rank(d) // RANK_TWO..RANK_NINE are 2..9
		}
	case 2:
		if s == "10" {
			return jimbotpb.Rank_RANK_TEN
		}
	}
	switch s { // the mod's spellings, without the case folding below
	case "King":
		return jimbotpb.Rank_RANK_KING
	case "Queen":
		return jimbotpb.Rank_RANK_QUEEN
	case "Jack":
		return jimbotpb.Rank_RANK_JACK
	case "Ace":
		return jimbotpb.Rank_RANK_ACE
	}
	var buf [8]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.Rank_RANK_UNSPECIFIED
	}
	switch string(u) {
	case "ACE", "A", "1", "14":
		return jimbotpb.Rank_RANK_ACE
	case "2":
		return jimbotpb.Rank_RANK_TWO
	case "3":
		return jimbotpb.Rank_RANK_THREE
	case "4":
		return jimbotpb.Rank_RANK_FOUR
	case "5":
		return jimbotpb.Rank_RANK_FIVE
	case "6":
		return jimbotpb.Rank_RANK_SIX
	case "7":
		return jimbotpb.Rank_RANK_SEVEN
	case "8":
		return jimbotpb.Rank_RANK_EIGHT
	case "9":
		return jimbotpb.Rank_RANK_NINE
	case "10", "T":
		return jimbotpb.Rank_RANK_TEN
	case "JACK", "J", "11":
		return jimbotpb.Rank_RANK_JACK
	case "QUEEN", "Q", "12":
		return jimbotpb.Rank_RANK_QUEEN
	case "KING", "K", "13":
		return jimbotpb.Rank_RANK_KING
	}
	return jimbotpb.Rank_RANK_UNSPECIFIED
}

// suitOf maps "Spades", "S" ... to the enum.
func suitOf(s string) jimbotpb.Suit {
	switch s { // the mod's spellings, without the case folding below
	case "Spades":
		return jimbotpb.Suit_SUIT_SPADES
	case "Hearts":
		return jimbotpb.Suit_SUIT_HEARTS
	case "Clubs":
		return jimbotpb.Suit_SUIT_CLUBS
	case "Diamonds":
		return jimbotpb.Suit_SUIT_DIAMONDS
	}
	var buf [8]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.Suit_SUIT_UNSPECIFIED
	}
	switch string(u) {
	case "SPADES", "S":
		return jimbotpb.Suit_SUIT_SPADES
	case "HEARTS", "H":
		return jimbotpb.Suit_SUIT_HEARTS
	case "CLUBS", "C":
		return jimbotpb.Suit_SUIT_CLUBS
	case "DIAMONDS", "D":
		return jimbotpb.Suit_SUIT_DIAMONDS
	}
	return jimbotpb.Suit_SUIT_UNSPECIFIED
}

// upper appends the ASCII upper case of s to dst, if it fits in dst's
// capacity (ok is false otherwise: such a string is no known name).
func upper(dst []byte, s string) ([]byte, bool) {
	if len(s) > cap(dst) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// typeGuess is, for the first key of a payload, the event type that came
// with the last payload that began with that key: in one game process the
// payloads of one type begin with one key (Lua hash order), so an event
// whose "type" member comes after its payload can have its payload walked
// by its type's walker all the same. A wrong or missing guess only costs
// the walk again (parser.typed). A batch state keeps one, as a prediction.
type typeGuess [64]guessEntry

type guessEntry struct {
	key uint64 // firstKey's hash; 0: empty
	typ jimbotpb.EventType
}

// firstKey hashes the first key of the object at b[s], up to its first 16
// bytes; 0 if it has none or is too near the end.
func firstKey(b []byte, s int) uint64 {
	if s+18 > len(b) || b[s+1] != '"' {
		return 0
	}
	x := binary.LittleEndian.Uint64(b[s+2 : s+10])
	y := binary.LittleEndian.Uint64(b[s+10 : s+18])
	if m := hasByte(x, '"'); m != 0 {
		x &= (m&-m)>>7 - 1 // the bytes before the quote
		y = 0
	} else if m := hasByte(y, '"'); m != 0 {
		y &= (m&-m)>>7 - 1
	}
	return fmix64(x^y*0x9e3779b97f4a7c15) | 1
}

// get returns the type guessed for the payload at b[s], or UNSPECIFIED.
func (g *typeGuess) get(b []byte, s int) jimbotpb.EventType {
	k := firstKey(b, s)
	if e := &g[k>>58]; k != 0 && e.key == k {
		return e.typ
	}
	return jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED
}

// learn records typ as the type of the payload at b[s].
func (g *typeGuess) learn(b []byte, s int, typ jimbotpb.EventType) {
	if k := firstKey(b, s); k != 0 {
		g[k>>58] = guessEntry{k, typ}
	}
}
