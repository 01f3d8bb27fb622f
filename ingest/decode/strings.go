package decode

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// bstr returns b as a string without copying. b must never change while the
// string is in use (arena bytes, owned by one batch).
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// hasBackslash reports whether b holds a '\\' (short strings: cheaper
// than a bytes.IndexByte call).
func hasBackslash(b []byte) bool {
	for len(b) >= 8 {
		if hasByte(binary.LittleEndian.Uint64(b), '\\') != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// plainASCII reports whether b is ASCII without a backslash: a JSON string
// body that is its own value (the common case, one pass).
func plainASCII(b []byte) bool {
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if x&swarHigh|hasByte(x, '\\') != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// isASCII reports whether b holds only bytes below 0x80.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// appendValidUTF8 appends b to dst with every invalid UTF-8 sequence
// replaced by U+FFFD (proto3 string fields must be valid UTF-8, or the
// subscriber's marshalling fails).
func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

// appendUnescaped appends the decoded content of a JSON string body (no
// quotes; escapes already validated, or at least bounded) to dst. Lone
// surrogates become U+FFFD.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				dst = append(dst, s[i:i+2]...)
				i += 2
				continue
			}
			i += 6
			if utf16IsHigh(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2, ok := hex4(s, i+2); ok && utf16IsLow(r2) {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = utf8.RuneError
			} else if utf16IsLow(r) {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/', and anything unexpected: the byte itself
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

func utf16IsHigh(r rune) bool { return 0xD800 <= r && r < 0xDC00 }
func utf16IsLow(r rune) bool  { return 0xDC00 <= r && r < 0xE000 }

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	a, b, c, d := hexVal[s[i]], hexVal[s[i+1]], hexVal[s[i+2]], hexVal[s[i+3]]
	if a|b|c|d < 0 {
		return 0, false
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d), true
}

// Numbers. Client numbers are never decoded into a Go integer directly:
// they are parsed as float64 (or as an exact integer when they are one) and
// then saturated into the field's type.

// parseFloat parses a JSON number token (or the content of a numeric
// string). ok is false when it is not a number.
func parseFloat(b []byte) (float64, bool) {
	if f, ok := parseFloatFast(b); ok {
		return f, true
	}
	if len(b) == 0 || !numberLike(b) {
		return 0, false
	}
	f, err := strconv.ParseFloat(bstr(b), 64)
	if err != nil {
		// Out of range: ParseFloat returned ±Inf; other errors: not a number.
		if math.IsInf(f, 0) {
			return f, true
		}
		return 0, false
	}
	return f, true
}

// pow10u are the powers of ten that uint64 holds.
var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// pow10 are the powers of ten that float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloatFast parses the numbers whose value is exact in one IEEE
// operation (Clinger's fast path, which strconv takes for them too, so the
// result is the same bits): -?digits(.digits)?([eE][+-]?digits)? with at most
// 19 digits, a mantissa below 2^53 and a decimal exponent within ±22, such as
// the mod's timestamps (266945.45746667). ok is false for anything else,
// which parseFloat hands to strconv.
func parseFloatFast(b []byte) (float64, bool) {
	i := 0
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		i = 1
	}
	start := i
	i = digitRun(b, i)
	digits := i - start
	if digits == 0 || digits > 19 {
		return 0, false
	}
	m := digitsValue(b[start:i])
	exp := 0
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		i = digitRun(b, i)
		if i == fs {
			return 0, false
		}
		exp = fs - i
		if digits += i - fs; digits > 19 {
			return 0, false
		}
		m = m*pow10u[i-fs] + digitsValue(b[fs:i])
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		es, e := i, 0
		for ; i < len(b) && isDigit(b[i]) && i-es < 4; i++ {
			e = e*10 + int(b[i]-'0')
		}
		if i == es || i-es >= 4 && i < len(b) {
			return 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(b) {
		return 0, false
	}
	return exactFloat(neg, m, exp)
}

// exactFloat is ±m × 10^exp where one IEEE operation gives it exactly
// (Clinger's fast path: m below 2^53 and exp within ±22, or m zero), with
// strconv's bits; ok is false otherwise.
func exactFloat(neg bool, m uint64, exp int) (float64, bool) {
	f := float64(m)
	switch {
	case m == 0:
	case m >= 1<<53 || exp < -22 || exp > 22:
		return 0, false
	case exp < 0:
		f /= pow10[-exp]
	case exp > 0:
		f *= pow10[exp]
	}
	if neg {
		f = -f
	}
	return f, true
}

// numberLike is a cheap filter before strconv: JSON number bytes only
// (strconv would also take "inf", "0x10", "1_0").
func numberLike(b []byte) bool {
	for _, c := range b {
		if !(isDigit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// parseInt64 parses a number exactly when it is a plain integer, saturating
// at the int64 range; other numbers go through float64 and are truncated
// toward zero and saturated. NaN gives 0.
func parseInt64(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := b[0] == '-'
	k := 0
	if neg {
		k = 1
	}
	j := k
	var n uint64
	over := false
	for ; j < len(b) && isDigit(b[j]); j++ {
		d := uint64(b[j] - '0')
		if n > (math.MaxUint64-d)/10 {
			over = true
		} else {
			n = n*10 + d
		}
	}
	if j == len(b) && j > k {
		switch {
		case neg && (over || n > 1<<63):
			return math.MinInt64, true
		case neg:
			return -int64(n), true
		case over || n > math.MaxInt64:
			return math.MaxInt64, true
		default:
			return int64(n), true
		}
	}
	f, ok := parseFloat(b)
	if !ok {
		return 0, false
	}
	return satI64(f), true
}

func satI64(f float64) int64 {
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}

func satI32(n int64) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	default:
		return int32(n)
	}
}

// Event ids assigned by the bus: "jb-<boot>-<counter>", both hex; boot
// differs between processes (start time), the counter between events.
var (
	idCounter  atomic.Uint64
	bootPrefix = func() string {
		b := []byte("jb-")
		b = strconv.AppendUint(b, uint64(time.Now().UnixNano())&0xffffffffff, 16)
		return string(append(b, '-'))
	}()
)

// appendNewID appends a fresh event id to dst.
func appendNewID(dst []byte) []byte {
	dst = append(dst, bootPrefix...)
	return strconv.AppendUint(dst, idCounter.Add(1), 16)
}

// keySeed and idSeed seed the deduplication keys: they are stable within a
// process, which is as long as any deduplication window lives.
var (
	keySeed = maphash.MakeSeed()
	idSeed  = maphash.MakeSeed()
)

// Key returns the deduplication key of an event: a hash of (source,
// event_id, client timestamp), never 0.
func Key(source, eventID string, clientTimestamp float64) uint64 {
	return keyWith(sourceHash(source), eventID, clientTimestamp)
}

// sourceHash is Key's hash of the source.
func sourceHash(source string) uint64 { return maphash.String(keySeed, source) }

// keyWith is Key for a source whose sourceHash is hs (nearly every event of
// a batch has the same source: the decoder hashes it once). The three parts
// are hashed apart (seeded hashes of the source and the id, the timestamp's
// bits) and combined by a bijective mix, so that a change in any part
// changes the key.
func keyWith(hs uint64, eventID string, clientTimestamp float64) uint64 {
	k := hs ^ bits.RotateLeft64(maphash.String(idSeed, eventID), 23) ^ fmix64(math.Float64bits(clientTimestamp)^0x9e3779b97f4a7c15)
	k = fmix64(k)
	if k == 0 {
		k = 1
	}
	return k
}

// fmix64 is MurmurHash3's 64-bit finaliser (a bijection).
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
