package loadtest

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHashOrder: objects with the same keys come out in the same order,
// another salt gives another order, values are kept byte-exact (the mod's
// bare nan and inf, escapes, nested lists), and the result is stable.
func TestHashOrder(t *testing.T) {
	body := []byte(`{"a":1,"b":"x\"}y","c":[{"k":1,"l":-inf,"m":2},{"k":2,"l":nan,"m":"s"}],"d":{"k":3,"l":4,"m":5},"e":true,"f":null,"g":1.5e+20,"n":{"z":[],"y":{},"x":[[1,{"w":2}]]}}`)
	seen := map[string]bool{}
	for salt := range uint64(8) {
		out, err := hashOrder(body, salt)
		require.NoError(t, err)
		require.Len(t, out, len(body))
		again, err := hashOrder(out, salt)
		require.NoError(t, err)
		require.Equal(t, string(out), string(again), "stable")
		// The same content: both in salt 99's order are the same bytes.
		x, err := hashOrder(out, 99)
		require.NoError(t, err)
		y, err := hashOrder(body, 99)
		require.NoError(t, err)
		require.Equal(t, string(y), string(x))
		for _, v := range []string{`-inf`, `nan`, `"x\"}y"`, `1.5e+20`, `"y":{}`, `"z":[]`, `[[1,{"w":2}]]`} {
			require.Contains(t, string(out), v)
		}
		// The three objects with keys k, l, m: one order.
		var orders []string
		for i := 0; ; {
			j := bytes.Index(out[i:], []byte(`{"`))
			if j < 0 {
				break
			}
			i += j + 1
			if o := keysAt(out[i:]); len(o) == 3 && bytes.ContainsRune([]byte(o), 'k') {
				orders = append(orders, o)
			}
		}
		require.Len(t, orders, 3)
		require.Equal(t, orders[0], orders[1])
		require.Equal(t, orders[0], orders[2])
		seen[string(out)] = true
	}
	require.Greater(t, len(seen), 4, "salts give different orders")

	for _, bad := range []string{`{"a": 1}`, `{"a":1`, `{"a"}`, `[1,2`, `{"a":"x}`, `{"a":1}x`, `{a:1}`} {
		_, err := hashOrder([]byte(bad), 1)
		require.Error(t, err, bad)
	}
}

// keysAt returns the first letters of the one-letter keys of the object of
// scalars whose first key starts at b[0] (at `"`).
func keysAt(b []byte) string {
	var ks []byte
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '"' && (i == 0 || b[i-1] == ',' || b[i-1] == '{') && i+2 < len(b) && b[i+2] == '"' {
			ks = append(ks, b[i+1])
		}
		if b[i] == '}' {
			break
		}
	}
	return string(ks)
}

// TestGenerateKeyOrder: a hash-order session is the captures-order session
// of the same options with only its keys reordered, record for record, and
// sessions of other seeds order them otherwise.
func TestGenerateKeyOrder(t *testing.T) {
	o := GenOptions{Seed: 5, Duration: 20 * time.Second, Outage: true}
	hashed, err := Generate(o)
	require.NoError(t, err)
	o.KeyOrder = KeyOrderCaptures
	plain, err := Generate(o)
	require.NoError(t, err)
	require.Len(t, hashed, len(plain))
	differ := 0
	for i := range plain {
		want, err := hashOrder(plain[i].Body, 5)
		if len(plain[i].Body) == 0 {
			want, err = plain[i].Body, nil
		}
		require.NoError(t, err)
		require.Equal(t, string(want), string(hashed[i].Body), "record %d", i)
		require.Equal(t, plain[i].At, hashed[i].At)
		if !bytes.Equal(plain[i].Body, hashed[i].Body) {
			differ++
		}
	}
	require.Positive(t, differ)
	other, err := Generate(GenOptions{Seed: 5, Duration: 20 * time.Second, Outage: true})
	require.NoError(t, err)
	requireSameRecords(t, hashed, other)
	_, err = Generate(GenOptions{KeyOrder: "alphabetical"})
	require.ErrorContains(t, err, "KeyOrder")
}
