package loadtest

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// The helpers below write JSON the way BalatroMCP's hand-written encoder
// does: numbers with Lua's %.14g (so 1e+15, 0.99989895846132, and the bare
// tokens nan, inf and -inf), strings with only \\ \" \n \r \t escaped, no
// whitespace. Key order is the caller's.

// appendLuaNum appends f as LuaJIT 2.1's tostring would.
func appendLuaNum(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	return strconv.AppendFloat(dst, f, 'g', 14, 64)
}

// appendLuaStr appends s as the mod's escape_json_string would.
func appendLuaStr(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func appendLuaBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// appendKey appends ,"k": (or "k": first when first is set).
func appendKey(dst []byte, k string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

// newUUID returns a UUID-v4-shaped lowercase id from rng, as the mod's
// math.random-based generator makes them.
func newUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [uuidLen]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j] = hexDigits[c>>4]
		s[j+1] = hexDigits[c&0xf]
		j += 2
	}
	return string(s[:])
}
