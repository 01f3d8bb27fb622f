package decode

// NDJSON (KindNDJSON): one event object per line. The body is first decoded
// strictly, line by line, in one pass. Only if some line is not valid JSON
// is everything decoded so far forgotten and the body run through the
// pre-pass line by line (string state never crosses a line, so an
// unterminated string cannot swallow the lines after it); then each line is
// validated before it is built, and a line that is still broken is rejected
// on its own, its bytes as received in the deadletter.

// nextLine returns the bounds of the line starting at b[ls], without its
// LF, and the start of the next one.
func nextLine(b []byte, ls int) (le, next int) {
	for le = ls; le < len(b); le++ {
		if b[le] == '\n' {
			return le, le + 1
		}
	}
	return le, le
}

// prepassLines is prepass applied to each line of src on its own; the LFs
// are copied, and the recorded input positions are positions in src.
func prepassLines(dst, src []byte, rs []repairAt) ([]byte, []repairAt) {
	for ls := 0; ls < len(src); {
		le, next := nextLine(src, ls)
		n := len(rs)
		dst, rs = prepass(dst, src[ls:le], rs)
		for k := n; k < len(rs); k++ {
			rs[k].inEnd += ls
		}
		if next > le {
			dst = append(dst, '\n')
		}
		ls = next
	}
	return dst, rs
}

// ndjson decodes an NDJSON body.
func (p *parser) ndjson() {
	st := p.st
	fatal, bad := p.ndjsonLines(false)
	if fatal == "" && bad {
		p.rollback()
		var rs []repairAt
		st.work, rs = prepassLines(st.work[:0], st.orig, st.repairs[:0])
		p.useRepairs(rs)
		fatal, _ = p.ndjsonLines(true)
	}
	if fatal != "" {
		p.fatal(fatal)
	}
}

// ndjsonLines decodes every non-blank line of p.buf as one event. Strict
// (tolerant false), it stops at the first line that is not valid JSON and
// reports bad; tolerant, such a line is rejected on its own. fatal is set
// when there are more than maxEvents lines.
func (p *parser) ndjsonLines(tolerant bool) (fatal string, bad bool) {
	full := p.buf
	defer func() { p.buf = full }()
	idx := 0
	for ls := 0; ls < len(full); {
		le, next := nextLine(full, ls)
		s := skipWS(full[:le], ls)
		e := trimWS(full, s, le)
		ls = next
		if s == e {
			continue
		}
		if idx >= p.maxEvents {
			return p.tooMany(), false
		}
		p.buf = full[:e]
		if !tolerant {
			if !p.strictLine(s, e, idx) {
				return "", true
			}
		} else {
			p.eventOrReject(s, e, idx, 0)
		}
		p.buf = full
		idx++
	}
	return "", false
}

// strictLine decodes the line p.buf[s:e] (e == len(p.buf)); false when it is
// not one valid JSON value (the batch is then rolled back).
func (p *parser) strictLine(s, e, idx int) bool {
	b := p.buf
	if b[s] == '{' {
		end, err := p.event(s, idx, 0)
		return err.msg == "" && end == e
	}
	end, err := skipValue(b, s, 0, p.maxDepth)
	if err.msg != "" || end != e {
		return false
	}
	p.reject(idx, s, e, whyNotObject, jsonKind(b[s]), 0, "", "")
	return true
}

// eventOrReject decodes p.buf[s:e] (e == len(p.buf)), nested at depth, as
// event idx, or rejects it (to system.deadletter, with the reason) when it is
// not one valid JSON object: an NDJSON line, or an element of a batch whose
// array the strict scan could not read.
func (p *parser) eventOrReject(s, e, idx, depth int) {
	b := p.buf
	end, err := skipValue(b, s, depth, p.maxDepth)
	if err.msg == "" && end != e {
		err = synErr{end, msgTrailing}
	}
	switch {
	case err.msg == "" && b[s] == '{':
		if _, e2 := p.event(s, idx, depth); e2.msg != "" {
			panic("BUG: decode: event rejected what skipValue accepted")
		}
	case err.msg == "":
		p.reject(idx, s, e, whyNotObject, jsonKind(b[s]), 0, "", "")
	default:
		var tmp [128]byte
		pos := err.pos
		if p.repaired {
			pos = origPos(p.st.repairs, pos)
		}
		d := append(tmp[:0], err.msg...)
		d = append(d, " at offset "...)
		d = appendInt(d, pos)
		p.reject(idx, s, e, whyBadJSON, bstr(d), 0, "", "") // copied by reject
	}
}
