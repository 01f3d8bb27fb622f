package decode

import (
	"encoding/binary"
	"math/bits"
)

// This file is the strict JSON scanner: RFC 8259 grammar, no allocation,
// positions instead of copies. It validates everything except UTF-8 (invalid
// UTF-8 is accepted, as the contract asks). A syntax error is reported as a
// position and a constant message, so that the failing path allocates
// nothing either.

// synErr is a syntax error: where and what.
type synErr struct {
	pos int
	msg string
}

// Syntax error messages (constants: the error path must not allocate).
const (
	msgEOF        = "unexpected end of JSON input"
	msgBadChar    = "invalid character"
	msgControl    = "invalid control character in string"
	msgBadEscape  = "invalid escape in string"
	msgBadNumber  = "invalid number"
	msgBadLiteral = "invalid literal"
	msgTooDeep    = "nesting too deep"
	msgTrailing   = "invalid character after top-level value"
	msgWantKey    = "expected a string object key"
	msgWantColon  = "expected ':' after object key"
	msgWantComma  = "expected ',' or end of object/array"
)

// isSpace reports JSON whitespace.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t') }

// skipWS returns the first non-whitespace index at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isSpace(b[i]) {
		i++
	}
	return i
}

// strClass marks the bytes that end the fast loop of a string scan: '"',
// '\\' and the control bytes below 0x20.
var strClass = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

var hexVal = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] = int8(c - 'A' + 10)
	}
	return t
}()

// scanString validates the string whose opening quote is at b[i] and returns
// the index after its closing quote and whether it holds an escape.
func scanString(b []byte, i int) (end int, esc bool, e synErr) {
	j := i + 1
	for {
		// Fast loop: 8 bytes at a time while none is special; it stops on
		// the first special byte.
		for {
			if j+8 > len(b) {
				for j < len(b) && !strClass[b[j]] {
					j++
				}
				if j >= len(b) {
					return 0, false, synErr{len(b), msgEOF}
				}
				break
			}
			x := binary.LittleEndian.Uint64(b[j : j+8])
			if m := strSpecial(x); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, synErr{}
		case c == '\\':
			esc = true
			if j+1 >= len(b) {
				return 0, false, synErr{len(b), msgEOF}
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return 0, false, synErr{len(b), msgEOF}
				}
				if hexVal[b[j+2]]|hexVal[b[j+3]]|hexVal[b[j+4]]|hexVal[b[j+5]] < 0 {
					return 0, false, synErr{j, msgBadEscape}
				}
				j += 6
			default:
				return 0, false, synErr{j, msgBadEscape}
			}
		default:
			return 0, false, synErr{j, msgControl}
		}
	}
}

// scanStringA is scanString that also reports whether the string's bytes
// are all ASCII.
func scanStringA(b []byte, i int) (end int, esc, ascii bool, e synErr) {
	j := i + 1
	var hi uint64 // the OR of the bytes scanned; bit 7 of a byte: not ASCII
	for {
		for {
			if j+8 > len(b) {
				for j < len(b) && !strClass[b[j]] {
					hi |= uint64(b[j])
					j++
				}
				if j >= len(b) {
					return 0, false, false, synErr{len(b), msgEOF}
				}
				break
			}
			x := binary.LittleEndian.Uint64(b[j : j+8])
			if m := strSpecial(x); m != 0 {
				// the bytes below the first special one
				hi |= x & ((m&-m)>>7 - 1)
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			hi |= x
			j += 8
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, hi&swarHigh == 0, synErr{}
		case c == '\\':
			esc = true
			if j+1 >= len(b) {
				return 0, false, false, synErr{len(b), msgEOF}
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return 0, false, false, synErr{len(b), msgEOF}
				}
				if hexVal[b[j+2]]|hexVal[b[j+3]]|hexVal[b[j+4]]|hexVal[b[j+5]] < 0 {
					return 0, false, false, synErr{j, msgBadEscape}
				}
				j += 6
			default:
				return 0, false, false, synErr{j, msgBadEscape}
			}
		default:
			return 0, false, false, synErr{j, msgControl}
		}
	}
}

// scanShort is scanString without the escape flag, with the strings
// shorter than 8 bytes without a special byte (most keys and many values) in
// line.
func scanShort(b []byte, i int) (int, synErr) {
	if _, m := strWord(b, i+1); m != 0 && b[i+1+bits.TrailingZeros64(m)>>3] == '"' {
		return i + 2 + bits.TrailingZeros64(m)>>3, synErr{}
	}
	end, _, e := scanString(b, i)
	return end, e
}

// strWord returns the 8 bytes at b[i:] and their strSpecial mask; m is 0
// when fewer than 8 bytes are left.
func strWord(b []byte, i int) (x, m uint64) {
	if i+8 > len(b) {
		return 0, 0
	}
	x = binary.LittleEndian.Uint64(b[i : i+8])
	return x, strSpecial(x)
}

// strSpecial is the mask of hasByte(x, '"') | hasByte(x, '\\') |
// hasLess(x, 0x20), with the final AND shared: its lowest set bit marks the
// first byte of x that ends the fast loop of a string scan.
func strSpecial(x uint64) uint64 {
	q := x ^ (swarOnes * '"')
	s := x ^ (swarOnes * '\\')
	return ((q-swarOnes)&^q | (s-swarOnes)&^s | (x-swarOnes*0x20)&^x) & swarHigh
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// nonDigits has the top bit set in each byte of x that is not an ASCII
// digit, up to and including the first one: a carry or borrow can only
// come from a byte that is not a digit and go to the bytes after it, so the
// lowest set bit marks the first non-digit exactly (the bits after it are
// not to be used).
func nonDigits(x uint64) uint64 {
	return ((x + swarOnes*0x46) | (x - swarOnes*'0')) & swarHigh
}

// digitRun returns the end of the run of ASCII digits starting at b[j]
// (j itself when b[j] is not a digit), 8 bytes at a time: the mod's numbers
// have up to 17 digits (card ids such as 0.99989895846132, timestamps such
// as 266945.45746667).
func digitRun(b []byte, j int) int {
	for j+8 <= len(b) {
		if m := nonDigits(binary.LittleEndian.Uint64(b[j : j+8])); m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
		j += 8
	}
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	return j
}

// parse8 is the value of the 8 ASCII digits of x (the first in its low
// byte), in three multiplies instead of eight dependent ones.
func parse8(x uint64) uint64 {
	x -= swarOnes * '0'
	x = (x*10 + x>>8) & 0x00ff00ff00ff00ff
	x = (x*100 + x>>16) & 0x0000ffff0000ffff
	return (x*10000 + x>>32) & 0xffffffff
}

// digitsValue is the value of d, all ASCII digits, modulo 2^64.
func digitsValue(d []byte) uint64 {
	var n uint64
	for len(d) >= 8 {
		n = n*100000000 + parse8(binary.LittleEndian.Uint64(d))
		d = d[8:]
	}
	for _, c := range d {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// scanNumber validates the number starting at b[i].
func scanNumber(b []byte, i int) (int, synErr) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return 0, synErr{j, msgBadNumber}
	}
	switch {
	case b[j] == '0':
		j++
	case '1' <= b[j] && b[j] <= '9':
		j = digitRun(b, j+1)
	default:
		return 0, synErr{j, msgBadNumber}
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return 0, synErr{j, msgBadNumber}
		}
		j = digitRun(b, j+1)
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return 0, synErr{j, msgBadNumber}
		}
		j = digitRun(b, j+1)
	}
	return j, synErr{}
}

// scanNumberF is scanNumber that also gives the number's float64 value where
// parseFloatFast would (ok; then f has strconv's bits: both end in
// exactFloat), in the same pass. It reads the envelope's timestamp, which
// every event of the mod carries (such as 266945.45746667). A number with
// an exponent is only validated (ok false).
func scanNumberF(b []byte, i int) (end int, f float64, ok bool, e synErr) {
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	if j >= len(b) {
		return 0, 0, false, synErr{j, msgBadNumber}
	}
	s := j
	switch c := b[j]; {
	case c == '0':
		j++
	case '1' <= c && c <= '9':
		j = digitRun(b, j+1)
	default:
		return 0, 0, false, synErr{j, msgBadNumber}
	}
	ie, fs := j, j // the integer part b[s:ie], the fraction's digits b[fs:j]
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return 0, 0, false, synErr{j, msgBadNumber}
		}
		fs = j
		j = digitRun(b, j+1)
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		end, e = scanNumber(b, i)
		return end, 0, false, e
	}
	nf := j - fs
	if ie-s+nf > 19 {
		return j, 0, false, synErr{}
	}
	m := digitsValue(b[s:ie])
	if nf > 0 {
		m = m*pow10u[nf] + digitsValue(b[fs:j])
	}
	f, ok = exactFloat(neg, m, -nf)
	return j, f, ok, synErr{}
}

// scanNumberV is scanNumber that also reads an integer token of at most 18
// digits (no fraction, no exponent) into v (isInt, num, numF), in the same
// pass.
func scanNumberV(b []byte, i int, v *valueInfo) (int, synErr) {
	// Most of the mod's numbers are short non-negative integers (positions,
	// costs, counts): one word read gives their end and their value.
	if i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i : i+8])
		if m := nonDigits(x); m != 0 {
			l := bits.TrailingZeros64(m) >> 3 // digits before the first non-digit
			if c := b[i+l]; l > 0 && (b[i] != '0' || l == 1) && c != '.' && c|0x20 != 'e' {
				n := uint64(b[i] - '0')
				if l > 1 { // the l digits after 8-l leading zeros
					sh := uint(8-l) * 8
					n = parse8(x<<sh | swarOnes*'0'>>(64-sh))
				}
				v.isInt, v.num, v.numF = true, int64(n), float64(n)
				return i + l, synErr{}
			}
		}
	}
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	if j >= len(b) {
		return 0, synErr{j, msgBadNumber}
	}
	s := j
	var n int64
	switch c := b[j]; {
	case c == '0':
		j++
	case '1' <= c && c <= '9':
		j = digitRun(b, j+1)
		n = int64(digitsValue(b[s:j])) // wraps past 18 digits: not used then
	default:
		return 0, synErr{j, msgBadNumber}
	}
	integer := true
	if j < len(b) && b[j] == '.' {
		integer = false
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return 0, synErr{j, msgBadNumber}
		}
		j = digitRun(b, j+1)
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		integer = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return 0, synErr{j, msgBadNumber}
		}
		j = digitRun(b, j+1)
	}
	if integer && j-s <= 18 {
		f := float64(n) // exact or correctly rounded, as ParseFloat
		if neg {
			n, f = -n, -f
		}
		v.isInt, v.num, v.numF = true, n, f
	}
	return j, synErr{}
}

// scanLiteral checks that b[i:] starts with lit.
func scanLiteral(b []byte, i int, lit string) (int, synErr) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, synErr{i, msgBadLiteral}
	}
	return i + len(lit), synErr{}
}

// skipValue validates the value starting at b[i] (no leading whitespace) and
// returns the index after it. depth is the nesting depth of the value's
// container; a value that would nest deeper than maxDepth is an error.
func skipValue(b []byte, i, depth, maxDepth int) (int, synErr) {
	if i >= len(b) {
		return 0, synErr{i, msgEOF}
	}
	switch c := b[i]; {
	case c == '"':
		end, _, e := scanString(b, i)
		return end, e
	case c == '{':
		if depth >= maxDepth {
			return 0, synErr{i, msgTooDeep}
		}
		j := skipWS(b, i+1)
		if j < len(b) && b[j] == '}' {
			return j + 1, synErr{}
		}
		for {
			if j >= len(b) {
				return 0, synErr{j, msgEOF}
			}
			if b[j] != '"' {
				return 0, synErr{j, msgWantKey}
			}
			end, e := scanShort(b, j)
			if e.msg != "" {
				return 0, e
			}
			j = skipWS(b, end)
			if j >= len(b) {
				return 0, synErr{j, msgEOF}
			}
			if b[j] != ':' {
				return 0, synErr{j, msgWantColon}
			}
			j = skipWS(b, j+1)
			// Scalars inline, containers by recursion.
			if j < len(b) && b[j] == '"' {
				j, e = scanShort(b, j)
			} else {
				j, e = skipValue(b, j, depth+1, maxDepth)
			}
			if e.msg != "" {
				return 0, e
			}
			j = skipWS(b, j)
			if j >= len(b) {
				return 0, synErr{j, msgEOF}
			}
			switch b[j] {
			case ',':
				j = skipWS(b, j+1)
			case '}':
				return j + 1, synErr{}
			default:
				return 0, synErr{j, msgWantComma}
			}
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, synErr{i, msgTooDeep}
		}
		j := skipWS(b, i+1)
		if j < len(b) && b[j] == ']' {
			return j + 1, synErr{}
		}
		for {
			var e synErr
			if j < len(b) && b[j] == '"' {
				j, e = scanShort(b, j)
			} else {
				j, e = skipValue(b, j, depth+1, maxDepth)
			}
			if e.msg != "" {
				return 0, e
			}
			j = skipWS(b, j)
			if j >= len(b) {
				return 0, synErr{j, msgEOF}
			}
			switch b[j] {
			case ',':
				j = skipWS(b, j+1)
			case ']':
				return j + 1, synErr{}
			default:
				return 0, synErr{j, msgWantComma}
			}
		}
	case c == '-' || isDigit(c):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	default:
		return 0, synErr{i, msgBadChar}
	}
}

// Trusting helpers: they walk bytes that skipValue already accepted, so they
// check nothing and never fail.

// skipTrusted returns the end of the valid value starting at b[i].
func skipTrusted(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = endOfString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				return j
			}
			j++
		}
		return j
	}
}

// endOfString returns the index after the closing quote of the valid string
// that opens at b[i].
func endOfString(b []byte, i int) int {
	end, _ := endOfStringEsc(b, i)
	return end
}

// endOfStringEsc is endOfString that also reports whether the string holds
// an escape. It looks at 8 bytes at a time.
func endOfStringEsc(b []byte, i int) (int, bool) {
	j := i + 1
	esc := false
	for {
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j : j+8])
			if m := hasByte(x, '"') | hasByte(x, '\\'); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		if j >= len(b) {
			return len(b), esc
		}
		if b[j] == '"' {
			return j + 1, esc
		}
		esc = true
		j += 2
	}
}

const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// hasByte returns a mask whose lowest set bit is the high bit of the first
// byte of x (little endian) equal to c; 0 if none. (Bits above the first
// match may be false positives.)
func hasByte(x uint64, c byte) uint64 {
	v := x ^ (swarOnes * uint64(c))
	return (v - swarOnes) & ^v & swarHigh
}

// hasLess is hasByte for the bytes below n (n <= 128).
func hasLess(x uint64, n byte) uint64 {
	return (x - swarOnes*uint64(n)) & ^x & swarHigh
}

// objIter walks the members of a valid object. A container value is not
// skipped when next returns it (ve is -1): the caller may parse it and hand
// its end to skipTo; otherwise the following next skips it.
type objIter struct {
	b    []byte
	i    int
	pend int  // start of a container value not yet skipped, or -1
	kesc bool // the last key holds an escape
}

// newObjIter starts at the '{' at b[i]; ok is false if b[i] is not '{'
// (next then returns nothing).
func newObjIter(b []byte, i int) (objIter, bool) {
	if i >= len(b) || b[i] != '{' {
		return objIter{pend: -1}, false
	}
	return objIter{b: b, i: i + 1, pend: -1}, true
}

// next returns the next member: the bounds of the key token (quotes
// included) and of its value (ve is -1 for an object or array).
func (it *objIter) next() (ks, ke, vs, ve int, ok bool) {
	b := it.b
	if it.pend >= 0 {
		it.i = skipTrusted(b, it.pend)
		it.pend = -1
	}
	j := skipWS(b, it.i)
	if j < len(b) && b[j] == ',' {
		j = skipWS(b, j+1)
	}
	if j >= len(b) || b[j] != '"' {
		it.i = j
		return 0, 0, 0, 0, false
	}
	ks = j
	ke, it.kesc = endOfStringEsc(b, j)
	j = skipWS(b, ke)
	vs = skipWS(b, j+1) // after ':'
	if c := b[vs]; c == '{' || c == '[' {
		it.pend = vs
		it.i = vs
		return ks, ke, vs, -1, true
	}
	ve = scalarEnd(b, vs)
	it.i = ve
	return ks, ke, vs, ve, true
}

// skipTo tells the iterator that the container value it returned last ends
// at end.
func (it *objIter) skipTo(end int) {
	it.pend = -1
	it.i = end
}

// scalarEnd returns the end of the valid string, number or literal at b[i].
func scalarEnd(b []byte, i int) int {
	if b[i] == '"' {
		return endOfString(b, i)
	}
	j := i + 1
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	return j
}
