package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
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
