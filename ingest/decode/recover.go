package decode

// Recovery: when a batch body is still not valid JSON after the pre-pass,
// the envelope is read loosely (strings end at a quote that is followed by
// a structural character, brackets are counted outside strings) to find the
// elements of "events"; each element is then parsed strictly on its own, so
// that one broken event (BalatroMCP's unescaped quotes, Q8/Q9) costs only
// itself.

// looseString returns the index after the closing quote of the string that
// opens at b[i]: the first unescaped quote followed (after whitespace) by
// one of , : } ] or the end. In valid JSON that is the real closing quote.
func looseString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			k := skipWS(b, j+1)
			if k >= len(b) || b[k] == ',' || b[k] == ':' || b[k] == '}' || b[k] == ']' {
				return j + 1
			}
		}
	}
	return len(b)
}

// looseSkip returns the end of the value at b[i]: after the bracket that
// closes it, or at the ',' '}' ']' that follows a scalar.
func looseSkip(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			j = looseString(b, j) - 1
			if depth == 0 {
				return j + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	return len(b)
}

// trimWS returns e moved back over trailing whitespace (not before s).
func trimWS(b []byte, s, e int) int {
	for e > s && isSpace(b[e-1]) {
		e--
	}
	return e
}

// recoverBatch reads the envelope loosely and decodes each events element
// on its own. found is false when no events array could be found.
func (p *parser) recoverBatch() (found bool, fatal string) {
	b := p.buf
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false, ""
	}
	j := skipWS(b, i+1)
	for j < len(b) && b[j] != '}' {
		if b[j] != '"' {
			return found, ""
		}
		ke := looseString(b, j)
		if ke >= len(b) {
			return found, ""
		}
		key := b[j+1 : ke-1]
		k := skipWS(b, ke)
		if k >= len(b) || b[k] != ':' {
			return found, ""
		}
		vs := skipWS(b, k+1)
		var ve int
		switch {
		case string(key) == "events" && !found && vs < len(b) && b[vs] == '[':
			found = true
			ve, fatal = p.recoverEvents(vs)
			if fatal != "" {
				return true, fatal
			}
		default:
			ve = looseSkip(b, vs)
			if string(key) == "batch_id" && vs < len(b) && b[vs] == '"' {
				if end, _, e := scanString(b, vs); e.msg == "" && end == trimWS(b, vs, ve) && end-vs-2 <= p.maxString {
					p.batchID = p.str(vs, end)
				}
			}
		}
		j = skipWS(b, ve)
		if j < len(b) && b[j] == ',' {
			j = skipWS(b, j+1)
		}
	}
	return found, ""
}

// recoverEvents splits the events array at buf[i] loosely and decodes each
// element strictly within its bounds.
func (p *parser) recoverEvents(i int) (end int, fatal string) {
	full := p.buf
	defer func() { p.buf = full }()
	j := skipWS(full, i+1)
	for idx := 0; j < len(full) && full[j] != ']'; idx++ {
		if idx >= p.maxEvents {
			return 0, p.tooMany()
		}
		ve := looseSkip(full, j)
		if ve == j { // a stray ',' or '}' : skip it
			ve = j + 1
		}
		ee := trimWS(full, j, ve)
		p.buf = full[:ee]
		p.eventOrReject(j, ee, idx, 2)
		p.buf = full
		j = skipWS(full, ve)
		if j < len(full) && full[j] == ',' {
			j = skipWS(full, j+1)
		}
	}
	if j < len(full) {
		j++
	}
	return j, ""
}
