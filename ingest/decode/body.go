package decode

// parseBody decodes p.buf strictly. A syntax error anywhere is returned as
// e (the state then holds a partial batch that the caller rolls back); a
// body that is valid JSON but unusable as a whole returns fatal.
func (p *parser) parseBody() (fatal string, e synErr) {
	b := p.buf
	i := skipWS(b, 0)
	if i >= len(b) {
		return fatalEmpty, synErr{}
	}
	if b[i] != '{' {
		end, e := skipValue(b, i, 0, p.maxDepth)
		if e.msg != "" {
			return "", e
		}
		if j := skipWS(b, end); j < len(b) {
			return "", synErr{j, msgTrailing}
		}
		return p.resultString(fatalNotObject, jsonKind(b[i])), synErr{}
	}
	var end int
	if p.kind == KindEvent {
		end, e = p.event(i, 0, 0)
	} else {
		end, fatal, e = p.batch(i)
		if fatal != "" || e.msg != "" {
			return fatal, e
		}
	}
	if e.msg != "" {
		return "", e
	}
	if j := skipWS(b, end); j < len(b) {
		return "", synErr{j, msgTrailing}
	}
	return fatal, synErr{}
}

// batch parses the batch envelope at buf[i].
func (p *parser) batch(i int) (end int, fatal string, e synErr) {
	b := p.buf
	sawEvents := false
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == '}' {
		return j + 1, fatalNoEvents, synErr{}
	}
	for {
		if j >= len(b) {
			return 0, "", synErr{j, msgEOF}
		}
		if b[j] != '"' {
			return 0, "", synErr{j, msgWantKey}
		}
		ks := j
		ke, _, e := scanString(b, j)
		if e.msg != "" {
			return 0, "", e
		}
		j = skipWS(b, ke)
		if j >= len(b) {
			return 0, "", synErr{j, msgEOF}
		}
		if b[j] != ':' {
			return 0, "", synErr{j, msgWantColon}
		}
		vs := skipWS(b, j+1)
		var ve int
		key := b[ks+1 : ke-1]
		switch {
		case string(key) == "events" && !sawEvents:
			sawEvents = true
			if vs < len(b) && b[vs] == '[' {
				ve, fatal, e = p.events(vs)
				if fatal != "" {
					return 0, fatal, synErr{}
				}
			} else {
				ve, e = skipValue(b, vs, 1, p.maxDepth)
				if e.msg == "" {
					fatal = p.resultString(fatalEventsType, jsonKind(b[vs]), ", expected a sequence for field `events`")
				}
			}
		case string(key) == "batch_id":
			ve, e = skipValue(b, vs, 1, p.maxDepth)
			if e.msg == "" && b[vs] == '"' && ve-vs-2 <= p.maxString {
				p.batchID = p.str(vs, ve)
			}
		default:
			ve, e = skipValue(b, vs, 1, p.maxDepth)
		}
		if e.msg != "" {
			return 0, "", e
		}
		j = skipWS(b, ve)
		if j >= len(b) {
			return 0, "", synErr{j, msgEOF}
		}
		switch b[j] {
		case ',':
			j = skipWS(b, j+1)
		case '}':
			if !sawEvents {
				fatal = fatalNoEvents
			}
			return j + 1, fatal, synErr{}
		default:
			return 0, "", synErr{j, msgWantComma}
		}
	}
}

// events parses the events array at buf[i].
func (p *parser) events(i int) (end int, fatal string, e synErr) {
	b := p.buf
	if 1 >= p.maxDepth {
		return 0, "", synErr{i, msgTooDeep}
	}
	j := skipWS(b, i+1)
	if j < len(b) && b[j] == ']' {
		return j + 1, "", synErr{}
	}
	for idx := 0; ; idx++ {
		if idx >= p.maxEvents {
			return 0, p.tooMany(), synErr{}
		}
		if j >= len(b) {
			return 0, "", synErr{j, msgEOF}
		}
		var ve int
		if b[j] == '{' {
			ve, e = p.event(j, idx, 2)
		} else {
			ve, e = skipValue(b, j, 2, p.maxDepth)
			if e.msg == "" {
				p.reject(idx, j, ve, whyNotObject, jsonKind(b[j]), 0, "", "")
			}
		}
		if e.msg != "" {
			return 0, "", e
		}
		j = skipWS(b, ve)
		if j >= len(b) {
			return 0, "", synErr{j, msgEOF}
		}
		switch b[j] {
		case ',':
			j = skipWS(b, j+1)
		case ']':
			return j + 1, "", synErr{}
		default:
			return 0, "", synErr{j, msgWantComma}
		}
	}
}

func (p *parser) tooMany() string {
	start := len(p.r.reasons)
	p.r.reasons = append(p.r.reasons, fatalTooMany...)
	p.r.reasons = appendInt(p.r.reasons, p.maxEvents)
	return bstr(p.r.reasons[start:])
}

// resultString builds a string in the result's own buffer (it outlives the
// batch: the answer is written after the batch may have been released).
func (p *parser) resultString(parts ...string) string {
	start := len(p.r.reasons)
	for _, s := range parts {
		p.r.reasons = append(p.r.reasons, s...)
	}
	return bstr(p.r.reasons[start:])
}

// syntaxReason is the text of a syntax error, with its offset in the body as
// received.
func (p *parser) syntaxReason(e synErr) string {
	pos := e.pos
	if p.repaired {
		pos = origPos(p.st.repairs, pos)
	}
	start := len(p.r.reasons)
	p.r.reasons = append(p.r.reasons, whyBadJSON...)
	p.r.reasons = append(p.r.reasons, e.msg...)
	p.r.reasons = append(p.r.reasons, " at offset "...)
	p.r.reasons = appendInt(p.r.reasons, pos)
	return bstr(p.r.reasons[start:])
}

// useRepairs records the pre-pass's repairs rs of the body, now in
// st.work, and switches the parser to that body; it reports whether there
// was anything to repair (otherwise the parser stays on the original).
func (p *parser) useRepairs(rs []repairAt) bool {
	p.st.repairs = rs
	if len(rs) == 0 {
		return false
	}
	p.repaired = true
	p.buf = p.st.work
	for _, r := range rs {
		p.r.Repairs |= r.bit
	}
	p.r.RepairCount = len(rs)
	return true
}

// rollback forgets every event decoded so far (after a syntax error).
func (p *parser) rollback() {
	st := p.st
	st.batch.Reset()
	if p.deferTyped {
		st.batch.DeferTyped(fillTyped)
	}
	st.flags = st.flags[:0]
	st.aux = st.aux[:0]
	st.resetSlabs()
	p.members = p.members[:0]
	p.batchID = ""
	r := p.r
	r.Keys = r.Keys[:0]
	clear(r.Errors)
	r.Errors = r.Errors[:0]
	r.Accepted, r.Rejected = 0, 0
	r.reasons = r.reasons[:0]
}

// fatal replaces whatever was decoded by one deadletter event holding the
// whole body.
func (p *parser) fatal(msg string) {
	// msg may live in r.reasons, which rollback truncates: keep a copy.
	var tmp [256]byte
	saved := append(tmp[:0], msg...)
	p.rollback()
	msg = p.resultString(bstr(saved))
	p.repaired = false
	p.buf = p.st.orig
	p.r.Fatal = msg
	p.deadletter(0, len(p.st.orig), p.auxString(msg))
}

// decode runs the whole pipeline: strict parse, pre-pass and strict parse,
// per-event recovery, fatal.
func (p *parser) decode() {
	st := p.st
	if p.kind == KindNDJSON {
		p.ndjson()
		return
	}
	fatal, e := p.parseBody()
	if e.msg != "" {
		p.rollback()
		var rs []repairAt
		st.work, rs = prepass(st.work[:0], st.orig, st.repairs[:0])
		if p.useRepairs(rs) {
			fatal, e = p.parseBody()
		}
		if e.msg != "" {
			p.rollback()
			msg := p.syntaxReason(e)
			fatal = msg
			if p.kind == KindBatch {
				var found bool
				found, fatal = p.recoverBatch()
				if !found {
					fatal = msg
				}
			}
		}
	}
	if fatal != "" {
		p.fatal(fatal)
		return
	}
	if p.batchID != "" {
		for _, ev := range st.batch.Events {
			ev.BatchId = p.batchID
		}
	}
}
