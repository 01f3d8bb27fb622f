//go:build !race

package decode

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAllocsDecode checks that decoding the real BalatroMCP bodies, typed
// view included, allocates nothing once the pools are warm.
func TestAllocsDecode(t *testing.T) {
	bodies := realBodies(t)
	// Other games' key orders: the orders learned, the types guessed.
	for salt := range uint64(2) {
		bodies["hashorder"+string(rune('1'+salt))] = kindBody{KindBatch, hashOrdered(t, syntheticBatch(50), salt+1)}
	}
	for name, tc := range bodies {
		// The third: the view deferred (nobody wants it), then built by
		// FillTyped as the fan-out does for a late subscriber.
		deferred := Options{TypedWanted: func() bool { return false }}
		for _, opts := range []Options{{}, {NoTypedView: true}, deferred} {
			d := New(opts)
			n := testing.AllocsPerRun(200, func() {
				r := d.Decode(tc.kind, tc.body, 1)
				if r.Fatal != "" || r.Rejected != 0 || r.Accepted == 0 {
					t.Fatalf("%s: %s", name, r.AppendError(nil))
				}
				r.Batch.FillTyped()
				r.Batch.Release()
				d.ReleaseResult(r)
			})
			require.Zero(t, n, "%s typed=%v deferred=%v", name, !opts.NoTypedView, opts.TypedWanted != nil)
		}
	}
}

// TestAllocsDecodeBadInput: the repair, reject and fatal paths allocate
// nothing either once warm.
func TestAllocsDecodeBadInput(t *testing.T) {
	d := New(Options{})
	f := func(kind Kind, body string, fatal bool, rejected int) {
		t.Helper()
		n := testing.AllocsPerRun(200, func() {
			r := d.Decode(kind, []byte(body), 1)
			if (r.Fatal != "") != fatal || r.Rejected != rejected {
				t.Fatalf("%q: fatal %q, %d rejected", body, r.Fatal, r.Rejected)
			}
			r.Batch.Release()
			d.ReleaseResult(r)
		})
		require.Zero(t, n, body)
	}
	hb := "{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{\"uptime\":nan,\"v\":\"\x01\"}}"
	f(KindBatch, `{"events":[`+hb+`,`+hb+`]}`, false, 0)
	f(KindBatch, `{"events":[`+hb+`,{"type":"INVALID_TYPE","source":"s","payload":{}},{"type":"X","payload":["a"b"]}]}`, false, 2)
	f(KindEvent, `{"type":"INVALID_TYPE","source":"s","payload":{}}`, false, 1)
	f(KindEvent, `{invalid_json`, true, 0)
	f(KindBatch, `{"not_events":[]}`, true, 0)
	// NDJSON: good lines, a repaired line, a broken line, a long string.
	good := `{"type":"HEARTBEAT","source":"s","payload":{"uptime":1},"event_id":"a"}`
	f(KindNDJSON, good+"\n"+good+"\r\n\n"+good, false, 0)
	f(KindNDJSON, good+"\n"+hb+"\n{\"type\":\"X\",\"payload\":[\"a\"b\"]}\n[1]", false, 2)
	f(KindNDJSON, `{"type":"HEARTBEAT","source":"`+strings.Repeat("s", DefaultMaxStringLen+1)+`","payload":{}}`, false, 1)
}
