package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseFloatFast: the fast path gives strconv's bits, and declines what
// it cannot do exactly.
func TestParseFloatFast(t *testing.T) {
	f := func(s string) {
		t.Helper()
		got, ok := parseFloatFast([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: fast %v (%x), strconv %v (%x) %v", s, got, math.Float64bits(got), want, math.Float64bits(want), err)
		}
	}
	for _, s := range []string{"0", "-0", "1", "-1", "266945.45746667", "0.99989895846132", "1e22", "1e23", "9007199254740993",
		"9007199254740992", "1.5e-22", "123456789012345678", "1234567890123456789", "12345678901234567890", "0.1", "0.3",
		"-0.0", "0e999", "1e", "1.", ".5", "1.e5", "--1", "+1", "1e+5", "1E-5", "00012.5", "1e0001", "1e00001", "1e10000",
		"4.35", "1751439182000.5", "0.000000000000000000001"} {
		f(s)
	}
	// The fast path takes the mod's numbers (and so the timestamps of
	// nearly every event).
	for _, s := range []string{"266945.45746667", "0.99989895846132", "1751439182000", "1234567.12345678", "-3.25", "7"} {
		_, ok := parseFloatFast([]byte(s))
		require.True(t, ok, s)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var s string
		switch rng.IntN(3) {
		case 0:
			s = strconv.FormatFloat(rng.Float64()*math.Pow(10, float64(rng.IntN(30)-15)), 'f', rng.IntN(18), 64)
		case 1:
			s = strconv.FormatFloat(rng.NormFloat64()*1e6, 'g', -1, 64)
		default:
			s = strconv.FormatInt(rng.Int64N(1<<62)>>rng.IntN(62), 10) + "." + strconv.FormatInt(rng.Int64N(1e9), 10) + "e" + strconv.Itoa(rng.IntN(50)-25)
		}
		f(s)
	}
}

// TestKey: the key depends on each part, and keyWith with the source's hash
// is Key.
func TestKey(t *testing.T) {
	long := string(make([]byte, 300))
	seen := map[uint64]string{}
	for _, src := range []string{"BalatroMCP", "", long, "a", "b"} {
		for _, id := range []string{"d2ad2084-5024-4431-9258-8b53b0a9e4f1", "", long, "a", "b"} {
			for _, ts := range []float64{0, 1.5, -1.5, 266945.45746667, math.Copysign(0, -1)} {
				k := Key(src, id, ts)
				if k == 0 || k != keyWith(sourceHash(src), id, ts) {
					t.Fatalf("%d %d %v: %x", len(src), len(id), ts, k)
				}
				what := fmt.Sprintf("%q %q %v", src[:min(len(src), 8)], id[:min(len(id), 8)], math.Float64bits(ts))
				if prev, dup := seen[k]; dup {
					t.Fatalf("%s and %s share key %x", prev, what, k)
				}
				seen[k] = what
			}
		}
	}
}

// TestDigitRun: every byte value, at every offset of a run of digits and
// with every kind of byte after it, ends the run exactly where a byte loop
// does; digitsValue and scanNumberV's integers agree with strconv.
func TestDigitRun(t *testing.T) {
	ref := func(b []byte, j int) int {
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		return j
	}
	for n := range 20 {
		for c := range 256 {
			for _, after := range []byte{'0', 0, 0xff, '/', ':'} {
				b := make([]byte, 0, 32)
				for k := range n {
					b = append(b, '0'+byte(k%10))
				}
				b = append(b, byte(c), after, after)
				for _, j := range []int{0, 1} {
					require.Equal(t, ref(b, j), digitRun(b, j), "%q from %d", b, j)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		v := rng.Uint64() >> rng.IntN(64)
		s := strconv.FormatUint(v, 10)
		require.Equal(t, v, digitsValue([]byte(s)), s)
		if len(s) <= 18 {
			var vi valueInfo
			end, e := scanNumberV([]byte(s+","), 0, &vi)
			require.Empty(t, e.msg)
			require.Equal(t, len(s), end)
			require.True(t, vi.isInt)
			require.Equal(t, int64(v), vi.num, s)
		}
	}
}

// TestScanNumberV: scanNumberV ends and fails exactly where scanNumber does,
// whatever follows the number and however near the end of the buffer it is
// (its one-word path for short integers needs 8 bytes), and reads the value
// of every integer token of at most 18 digits as strconv does.
func TestScanNumberV(t *testing.T) {
	toks := []string{"0", "00", "01", "05", "1", "7", "9", "10", "99", "123", "1234567", "12345678",
		"123456789", "0.5", "7.", "7.25", "12e3", "12E3", "1e", "3e+2", "4E-1", "-", "-0", "-5",
		"-12", "-0.5", "-07", "999999999999999999", "1000000000000000000"}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		toks = append(toks, strconv.FormatUint(rng.Uint64()>>rng.IntN(64), 10))
	}
	numberInputs(toks, 9, func(b []byte) {
		// Plain comparisons: half a million cases, which require's
		// reflection made take 4 s under -race.
		wantEnd, wantErr := scanNumber(b, 0)
		var v valueInfo
		end, err := scanNumberV(b, 0, &v)
		if err != wantErr {
			t.Fatalf("%q: error %v, want %v", b, err, wantErr)
		}
		if wantErr.msg != "" {
			return
		}
		if end != wantEnd {
			t.Fatalf("%q: end %d, want %d", b, end, wantEnd)
		}
		n, perr := strconv.ParseInt(string(b[:end]), 10, 64)
		isInt := perr == nil && len(strings.TrimPrefix(string(b[:end]), "-")) <= 18
		if v.isInt != isInt || isInt && (v.num != n || v.numF != float64(n)) {
			t.Fatalf("%q: value %+v, want integer %v %d", b, v, isInt, n)
		}
	})
}

// numberInputs calls f with each token of toks followed by every byte and
// then 0 to maxPad-1 bytes 'x': a number's end, and the buffer's, at every
// distance. b is reused: f must not keep it.
func numberInputs(toks []string, maxPad int, f func(b []byte)) {
	var b []byte
	for _, tok := range toks {
		for c := range 256 {
			for pad := range maxPad {
				b = append(append(b[:0], tok...), byte(c))
				for range pad {
					b = append(b, 'x')
				}
				f(b)
			}
		}
	}
}

// TestSmallInt: smallInt takes exactly the one- and two-digit integers
// that scanNumber accepts and a ',' or '}' ends (no leading zero, sign,
// fraction or exponent), with their value, and nothing near the buffer's
// end; everything else is left to the scanners.
func TestSmallInt(t *testing.T) {
	toks := []string{"", "0", "00", "01", "05", "1", "7", "9", "10", "42", "99", "100", "123", "0.5", "7.",
		"7.25", "1e2", "9E1", "-", "-0", "-5", "-12", "+1", " 1", "a", "\"u0031\""}
	taken := 0
	numberInputs(toks, 3, func(b []byte) {
		end, n, ok := smallInt(b, 0)
		wantEnd, err := scanNumber(b, 0)
		want := err.msg == "" && len(b) >= 3 && wantEnd <= 2 && b[0] != '-' &&
			(b[wantEnd] == ',' || b[wantEnd] == '}')
		if ok != want {
			t.Fatalf("%q: ok %v, want %v", b, ok, want)
		}
		if !ok {
			return
		}
		taken++
		wantN, perr := strconv.ParseInt(string(b[:wantEnd]), 10, 64)
		if perr != nil || end != wantEnd || n != wantN {
			t.Fatalf("%q: %d %d, want %d %d", b, end, n, wantEnd, wantN)
		}
	})
	// 0 1 7 9 before ',' or '}' with 1-2 bytes after; 10 42 99 with 0-2.
	if taken != 4*2*2+3*2*3 {
		t.Fatalf("%d inputs taken, want %d", taken, 4*2*2+3*2*3)
	}
}

// TestScanNumberF: scanNumberF ends and fails exactly where scanNumber does,
// and a value it gives has strconv's bits; it gives one for the mod's
// timestamps.
func TestScanNumberF(t *testing.T) {
	toks := []string{"0", "01", "-", "-0", "-0.0", "7.", "7.25", "0.5", "12e3", "1E-2", "3e+", "1.5e7",
		"266945.45746667", "1751439182000", "1751439182000.5", "9007199254740993", "9007199254740992",
		"12345678901234567890", "0.1234567890123456789", "0.00000000000000000000001", "-123.456"}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 3000 {
		f := rng.Float64() * math.Pow(10, float64(rng.IntN(30)-10))
		toks = append(toks, strconv.FormatFloat(f, 'f', rng.IntN(12), 64), strconv.FormatFloat(-f, 'g', -1, 64))
	}
	for _, tok := range toks {
		for _, after := range []byte{',', '}', ' ', '.', 'e', '5', 0} {
			b := append([]byte(tok), after, 'x', 'x')
			wantEnd, wantErr := scanNumber(b, 0)
			end, f, ok, err := scanNumberF(b, 0)
			require.Equal(t, wantErr, err, "%q", b)
			if wantErr.msg != "" {
				continue
			}
			require.Equal(t, wantEnd, end, "%q", b)
			if ok {
				want, perr := strconv.ParseFloat(string(b[:end]), 64)
				require.NoError(t, perr)
				require.Equal(t, math.Float64bits(want), math.Float64bits(f), "%q", b)
			}
		}
	}
	for _, ts := range []string{"266945.45746667", "1751439182000", "0.5"} {
		_, _, ok, _ := scanNumberF([]byte(ts+","), 0)
		require.True(t, ok, ts)
	}
}
