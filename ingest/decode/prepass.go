package decode

import jimbotpb "github.com/jimbot/jimbus/proto"

// repairAt records one token the pre-pass changed: the end of the
// replacement in the output and the end of the original token in the input,
// so that output positions after it map back to input positions.
type repairAt struct {
	outEnd, inEnd int
	bit           uint32
}

// nonFinite lists the spellings of non-finite numbers that C formatters
// write (LuaJIT: nan, inf; glibc: -nan; MSVC: -nan(ind), 1.#INF, -1.#IND,
// 1.#QNAN), without their optional leading '-'. Longest first where one is
// a prefix of another.
var nonFinite = [...]string{"nan(ind)", "nan(snan)", "nan", "infinity", "inf", "1.#INF", "1.#IND", "1.#QNAN", "1.#SNAN"}

// isDelim reports a byte that may follow a value.
func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || isSpace(c)
}

// nonFiniteAt returns the length of the non-finite token starting at b[i]
// (with its sign), or 0. The token must end at a delimiter or at the end.
func nonFiniteAt(b []byte, i int) int {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	for _, t := range nonFinite {
		if len(b)-j >= len(t) && string(b[j:j+len(t)]) == t {
			k := j + len(t)
			if k == len(b) || isDelim(b[k]) {
				return k - i
			}
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// Prepass appends to dst the tolerant repair of src: outside strings the
// bare non-finite tokens of BalatroMCP's encoder (nan, -nan, inf, -inf,
// -nan(ind), 1.#INF, -1.#INF, -1.#IND, 1.#QNAN) become null
// (REPAIR_NON_FINITE); inside strings raw control bytes (below 0x20) become
// \u00XX (REPAIR_CONTROL_BYTE). Everything else is copied, so valid JSON
// comes out byte for byte unchanged. It returns the result, the OR of the
// repair bits and the number of tokens changed.
func Prepass(dst, src []byte) (out []byte, repairs uint32, count int) {
	out, rs := prepass(dst, src, nil)
	for _, r := range rs {
		repairs |= r.bit
	}
	return out, repairs, len(rs)
}

// prepass is Prepass that also records each repair in rs.
func prepass(dst, src []byte, rs []repairAt) ([]byte, []repairAt) {
	inStr := false
	// prevVal is true when the last non-space byte outside strings allows a
	// value to start here (start of input, ':', ',', '[').
	prevVal := true
	start := 0 // first byte of src not yet copied to dst
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inStr {
			switch {
			case c == '"':
				inStr = false
			case c == '\\':
				if i+1 < len(src) && src[i+1] >= 0x20 {
					i++
				}
			case c < 0x20:
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
				start = i + 1
				rs = append(rs, repairAt{outEnd: len(dst), inEnd: start, bit: uint32(jimbotpb.Repair_REPAIR_CONTROL_BYTE)})
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			prevVal = false
		case isSpace(c):
		case c == ':' || c == ',' || c == '[':
			prevVal = true
		case prevVal && (c == 'n' || c == 'i' || c == '-' || c == '1'):
			prevVal = false
			if n := nonFiniteAt(src, i); n > 0 {
				dst = append(dst, src[start:i]...)
				dst = append(dst, "null"...)
				start = i + n
				rs = append(rs, repairAt{outEnd: len(dst), inEnd: start, bit: uint32(jimbotpb.Repair_REPAIR_NON_FINITE)})
				i += n - 1
			}
		default:
			prevVal = false
		}
	}
	dst = append(dst, src[start:]...)
	return dst, rs
}

// origPos maps a position in the pre-pass output back to the input.
func origPos(rs []repairAt, p int) int {
	// Binary search for the last repair that ends at or before p.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].outEnd <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return p
	}
	r := rs[lo-1]
	return p - r.outEnd + r.inEnd
}

// repairBits returns the OR of the repairs that lie inside [s, e) of the
// pre-pass output.
func repairBits(rs []repairAt, s, e int) uint32 {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].outEnd <= s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	var bits uint32
	for _, r := range rs[lo:] {
		if r.outEnd > e {
			break
		}
		bits |= r.bit
	}
	return bits
}
