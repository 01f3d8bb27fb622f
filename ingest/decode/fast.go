package decode

import (
	"math/bits"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// fastObject is the straight-line walk of an object whose members come as
// BalatroMCP writes them: each key is the token that ks predicts (the one the
// learned order expects, or the one after it when a key is missing), right
// after '{' or ',', with a string, a number or a literal right after its
// colon, then ',' or '}' right after the value. It hands each member to set
// (ve and v as nextK would give them) and returns the object's end with
// fastDone. Whatever else it meets it leaves to the generic walk: fastFresh
// (nothing read: open the object as usual) or fastResume (it is the iterator
// of the generic walk, positioned where the straight line stopped, the
// members before handed to set already). A string, number or literal it reads
// is validated as nextK validates it; an invalid one is fastError with
// nextK's error. So the result is nextK's, member for member, with less work
// a member (no separate after, no pending container, no whitespace checks).
// walkFlat uses it for every object of scalars (the small events' payloads,
// blinds, score entries, shop items); cardFast, jokerFast and jokerPropsFast
// are the same walk with the fields set in line, for the objects a GAME_STATE
// and a JOKERS_CHANGED bring by the dozen.
func (p *parser) fastObject(s, depth int, ks *keySet, set func(k, vs, ve int, v valueInfo)) (end int, it vIter, st fastState, e synErr) {
	if depth >= p.maxDepth {
		return 0, it, fastFresh, synErr{}
	}
	b := p.buf
	toks := ks.toks
	ord := &p.st.order[ks.id]
	it = vIter{depth: depth + 1, pend: -1}
	j := s + 1
	for slot := 0; ; {
		// j: where a key should start, right after '{' or ','
		if j+24 > len(b) {
			return p.fastStop(&it, s, j, slot)
		}
		var vs int
		k := int(ord[slot&maxSetKeys]) // the prediction (see skipped)
		if k < len(toks) && toks[k].at(b, j) {
			vs = j + toks[k].n
		} else if k, vs = ks.skipped(ord, k, b, j); k < 0 {
			return p.fastStop(&it, s, j, slot)
		}
		var ve int
		it.v = valueInfo{}
		switch c := b[vs]; {
		case c == '"':
			if x, m := strWord(b, vs+1); m != 0 && b[vs+1+trailingByte(m)] == '"' {
				ve = vs + 2 + trailingByte(m)
				it.v.plain = x&((m&-m)>>7-1)&swarHigh == 0
			} else {
				var ascii, esc bool
				if ve, esc, ascii, e = scanStringA(b, vs); e.msg != "" {
					return 0, it, fastError, e
				}
				it.v.plain = ascii && !esc
			}
		case c == '-' || isDigit(c):
			if ve, e = scanNumberV(b, vs, &it.v); e.msg != "" {
				return 0, it, fastError, e
			}
		case c == 't' || c == 'f' || c == 'n': // a literal, checked as skipValue does
			if ve, e = skipValue(b, vs, it.depth, p.maxDepth); e.msg != "" {
				return 0, it, fastError, e
			}
		default: // whitespace, a container: the generic walk's
			return p.fastStop(&it, s, j, slot)
		}
		set(k, vs, ve, it.v)
		slot = k + 1
		if ve < len(b) {
			switch b[ve] {
			case ',':
				j = ve + 1
				continue
			case '}':
				return ve + 1, it, fastDone, synErr{}
			}
		}
		// whitespace or an error after the value: the generic walk's
		it.slot = slot
		if e = p.after(&it, ve); e.msg != "" {
			return 0, it, fastError, e
		}
		return 0, it, fastResume, synErr{}
	}
}

// fastStop ends fastObject at j, where the key of slot should start: the
// generic walk goes on from there, or starts over when nothing was read.
func (p *parser) fastStop(it *vIter, s, j, slot int) (int, vIter, fastState, synErr) {
	if j == s+1 {
		return 0, *it, fastFresh, synErr{}
	}
	// after a ',': as after does
	it.j = skipWS(p.buf, j)
	it.slot = slot
	return 0, *it, fastResume, synErr{}
}

type fastState uint8

const (
	fastDone fastState = iota
	fastFresh
	fastResume
	fastError
)

// trailingByte is the index of the byte whose high bit is the lowest set
// bit of m.
func trailingByte(m uint64) int { return bits.TrailingZeros64(m) >> 3 }

// walkFlat walks the object at buf[s] (nested at depth) whose known keys
// (ks) all take scalars, handing each member to set (k: the key's index in
// ks, -1 for another key; ve -1 for an object or array, which it then
// validates), and returns its end: fastObject, then the generic walk for
// what fastObject leaves.
func (p *parser) walkFlat(s, depth int, ks *keySet, set func(k, vs, ve int, v valueInfo)) (int, synErr) {
	end, it, st, e := p.fastObject(s, depth, ks, set)
	return p.walkRest(s, depth, ks, set, end, it, st, e)
}

// walkRest is the generic walk of walkFlat after a straight-line walk that
// ended as st.
func (p *parser) walkRest(s, depth int, ks *keySet, set func(k, vs, ve int, v valueInfo), end int, it vIter, st fastState, e synErr) (int, synErr) {
	switch st {
	case fastDone, fastError:
		return end, e
	case fastFresh:
		it, e = p.open(s, depth)
	}
	for e.msg == "" {
		id, vs, ve, ok, e2 := p.nextK(&it, ks)
		if !ok {
			e = e2
			break
		}
		set(id, vs, ve, it.v)
	}
	return it.j, e
}

// cardFast is fastObject for a card, the object GAME_STATE has most of (65
// in a state with its deck), with the fields set in line rather than
// through a function value; ks is cardKeys (a hand) or deckCardKeys.
func (p *parser) cardFast(c *jimbotpb.Card, s, depth int, ks *keySet) (end int, it vIter, st fastState, e synErr) {
	if depth >= p.maxDepth {
		return 0, it, fastFresh, synErr{}
	}
	b := p.buf
	toks := ks.toks
	ord := &p.st.order[ks.id]
	it = vIter{depth: depth + 1, pend: -1}
	j := s + 1
	for slot := 0; ; {
		if j+24 > len(b) {
			return p.fastStop(&it, s, j, slot)
		}
		var vs int
		k := int(ord[slot&maxSetKeys]) // the prediction (see skipped)
		if k < len(toks) && toks[k].at(b, j) {
			vs = j + toks[k].n
		} else if k, vs = ks.skipped(ord, k, b, j); k < 0 {
			return p.fastStop(&it, s, j, slot)
		}
		var ve int
		var text string // a string's text, a number's bytes
		it.v = valueInfo{}
		switch ch := b[vs]; {
		case ch == '"':
			if x, m := strWord(b, vs+1); m != 0 && b[vs+1+trailingByte(m)] == '"' {
				ve = vs + 2 + trailingByte(m)
				it.v.plain = x&((m&-m)>>7-1)&swarHigh == 0
			} else {
				var ascii, esc bool
				if ve, esc, ascii, e = scanStringA(b, vs); e.msg != "" {
					return 0, it, fastError, e
				}
				it.v.plain = ascii && !esc
			}
			if it.v.plain {
				text = bstr(b[vs+1 : ve-1])
			} else {
				text = p.str(vs, ve)
			}
		case ch == '-' || isDigit(ch):
			if k == cardID { // kept as printed: validated, not valued
				ve, e = scanNumber(b, vs)
			} else {
				ve, e = scanNumberV(b, vs, &it.v)
			}
			if e.msg != "" {
				return 0, it, fastError, e
			}
			text = bstr(b[vs:ve])
		default:
			return p.fastStop(&it, s, j, slot)
		}
		switch k {
		case cardID: // a float such as 0.99989895846132, kept as printed
			c.Id = text
		case cardRank:
			c.Rank = rankOf(text)
		case cardSuit:
			c.Suit = suitOf(text)
		case cardEnhancement:
			c.Enhancement = text
		case cardEdition:
			c.Edition = text
		case cardSeal:
			c.Seal = text
		case cardPosition:
			c.Position = p.i32v(it.v, vs, ve)
		}
		slot = k + 1
		if ve < len(b) {
			switch b[ve] {
			case ',':
				j = ve + 1
				continue
			case '}':
				return ve + 1, it, fastDone, synErr{}
			}
		}
		it.slot = slot
		if e = p.after(&it, ve); e.msg != "" {
			return 0, it, fastError, e
		}
		return 0, it, fastResume, synErr{}
	}
}

// fastScalar reads the string or number at buf[vs] as nextK does; ok is
// false for anything else, and for an invalid one (the generic walk, run
// again from the object's start, then says what is wrong).
func (p *parser) fastScalar(vs int) (ve int, v valueInfo, ok bool) {
	b := p.buf
	switch c := b[vs]; {
	case c == '"':
		if x, m := strWord(b, vs+1); m != 0 && b[vs+1+trailingByte(m)] == '"' {
			v.plain = x&((m&-m)>>7-1)&swarHigh == 0
			return vs + 2 + trailingByte(m), v, true
		}
		ve, esc, ascii, e := scanStringA(b, vs)
		v.plain = ascii && !esc
		return ve, v, e.msg == ""
	case c == '-' || isDigit(c):
		ve, e := scanNumberV(b, vs, &v)
		return ve, v, e.msg == ""
	}
	return 0, v, false
}

// fastKey returns the index in ks of the key token at buf[j], the one
// predicted in slot or the one after it, and where its value starts; ok is
// false for another key (or too near the end for a token compare).
func (p *parser) fastKey(ks *keySet, j, slot int) (int, int, bool) {
	b := p.buf
	if j+24 > len(b) {
		return 0, 0, false
	}
	toks := ks.toks
	ord := &p.st.order[ks.id]
	k := int(ord[slot&maxSetKeys]) // the prediction (see skipped)
	if k < len(toks) && toks[k].at(b, j) {
		return k, j + toks[k].n, true
	}
	k, vs := ks.skipped(ord, k, b, j)
	return k, vs, k >= 0
}

// jokerFast is the straight-line walk of a joker and its properties as the
// mod writes them (see fastObject), all or nothing: ok is false when the
// bytes are anything else, and joker then walks the object from its start.
func (p *parser) jokerFast(v *jokerView, s, depth int) (end int, ok bool) {
	if depth+1 >= p.maxDepth { // the properties object nests one deeper
		return 0, false
	}
	b := p.buf
	jk := &v.j
	j := s + 1
	for slot := 0; ; {
		k, vs, ok := p.fastKey(&jokerKeys, j, slot)
		if !ok {
			return 0, false
		}
		slot = k + 1
		var ve int
		if k == jokerProperties {
			if b[vs] != '{' {
				return 0, false
			}
			pr := &v.p
			*pr = jimbotpb.JokerProperties{}
			if ve, ok = p.jokerPropsFast(pr, vs); !ok {
				return 0, false
			}
			jk.Properties = pr
		} else if c := b[vs]; k == jokerID && (c == '-' || isDigit(c)) {
			// A number kept as printed: validated, not valued.
			var e synErr
			if ve, e = scanNumber(b, vs); e.msg != "" {
				return 0, false
			}
			jk.Id = bstr(b[vs:ve])
		} else {
			var x valueInfo
			if ve, x, ok = p.fastScalar(vs); !ok {
				return 0, false
			}
			switch k {
			case jokerName:
				jk.Name = p.textv(x, vs, ve)
			case jokerID:
				jk.Id = p.textv(x, vs, ve)
			case jokerPosition:
				jk.Position = p.i32v(x, vs, ve)
			}
		}
		if ve >= len(b) {
			return 0, false
		}
		switch b[ve] {
		case ',':
			j = ve + 1
		case '}':
			return ve + 1, true
		default:
			return 0, false
		}
	}
}

// jokerPropsFast is jokerFast for the properties object at buf[s].
func (p *parser) jokerPropsFast(pr *jimbotpb.JokerProperties, s int) (end int, ok bool) {
	b := p.buf
	j := s + 1
	for slot := 0; ; {
		k, vs, ok := p.fastKey(&jokerPropKeys, j, slot)
		if !ok {
			return 0, false
		}
		slot = k + 1
		var ve int
		var f float64 // a number's value
		if end, n, small := smallInt(b, vs); small && k != jpEdition {
			ve, f = end, float64(n) // the mod's costs and counts: one or two digits
		} else {
			var x valueInfo
			if ve, x, ok = p.fastScalar(vs); !ok {
				return 0, false
			}
			if k == jpEdition {
				pr.Edition = p.textv(x, vs, ve)
			} else {
				f = p.f64v(x, vs, ve)
			}
		}
		switch k {
		case jpCost:
			pr.Cost = f
		case jpChips:
			pr.Chips = f
		case jpMult:
			pr.Mult = f
		case jpSellValue:
			pr.SellValue = f
		}
		if ve >= len(b) {
			return 0, false
		}
		switch b[ve] {
		case ',':
			j = ve + 1
		case '}':
			return ve + 1, true
		default:
			return 0, false
		}
	}
}

// smallInt reads a non-negative integer of one or two digits at b[vs] that
// a ',' or '}' follows (a joker's cost, chips, mult and sell value, the
// envelope's version): its end and value; ok is false for anything else,
// which the caller then scans. Where a number's value goes into a
// valueInfo, scanNumberV's one-word path does the same work.
func smallInt(b []byte, vs int) (ve int, n int64, ok bool) {
	if vs+2 >= len(b) {
		return 0, 0, false
	}
	d0, c1 := b[vs]-'0', b[vs+1]
	if d0 > 9 {
		return 0, 0, false
	}
	if c1 == ',' || c1 == '}' {
		return vs + 1, int64(d0), true
	}
	if d1 := c1 - '0'; d0 != 0 && d1 <= 9 {
		if c2 := b[vs+2]; c2 == ',' || c2 == '}' {
			return vs + 2, int64(d0)*10 + int64(d1), true
		}
	}
	return 0, 0, false
}
