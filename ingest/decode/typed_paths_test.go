package decode

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// TestTypedViewPaths: the typed view takes several paths (read in the
// scanner's pass or after it; members in the predicted order walked in a
// straight line, or one by one): the real bodies give the same view
// whatever their whitespace, their keys' order, or where "type" stands.
func TestTypedViewPaths(t *testing.T) {
	bodies := [][]byte{syntheticBatch(50)}
	for _, n := range []string{"request_batch_state_change.json", "request_batch_first_heartbeat.json"} {
		bodies = append(bodies, readTestdata(t, n))
	}
	for _, n := range []string{"event_GAME_STATE.initial.json", "event_GAME_STATE.with_changes.json", "event_JOKERS_CHANGED.json", "event_HEARTBEAT.json"} {
		bodies = append(bodies, []byte(`{"events":[`+string(readTestdata(t, n))+`]}`))
	}
	bodies = append(bodies, jsonlBodies(t)...)
	d := New(Options{})
	view := func(ev *jimbotpb.Event) *jimbotpb.Event { return &jimbotpb.Event{Payload: ev.Payload} }
	for _, body := range bodies {
		want := d.Decode(KindBatch, body, 1)
		require.Empty(t, want.Fatal)
		require.Zero(t, want.Rejected)
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // numbers keep their text (card ids are kept as printed)
		require.NoError(t, dec.Decode(&v))
		var indented bytes.Buffer
		require.NoError(t, json.Indent(&indented, body, "", "  "))
		variants := map[string][]byte{
			"indented":  indented.Bytes(),
			"reversed":  writeJSON(v, func(k []string) { sort.Sort(sort.Reverse(sort.StringSlice(k))) }),
			"sorted":    writeJSON(v, sort.Strings),
			"type last": writeJSON(v, typeLast),
		}
		for name, b := range variants {
			got := d.Decode(KindBatch, b, 1)
			require.Equal(t, want.Accepted, got.Accepted, name)
			for i, ev := range got.Batch.Events {
				w := want.Batch.Events[i]
				require.Equal(t, w.EventId, ev.EventId, name)
				require.NotNil(t, ev.Payload, "%s: event %d", name, i)
				if !proto.Equal(view(w), view(ev)) {
					t.Fatalf("%s: event %d: typed view\n%v\nwant\n%v", name, i, view(ev), view(w))
				}
			}
			got.Batch.Release()
			d.ReleaseResult(got)
		}
		want.Batch.Release()
		d.ReleaseResult(want)
	}
}

// writeJSON writes v as compact JSON with each object's keys in the order
// order leaves them (in place).
func writeJSON(v any, order func([]string)) []byte {
	var out []byte
	var w func(v any)
	w = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			order(keys)
			out = append(out, '{')
			for i, k := range keys {
				if i > 0 {
					out = append(out, ',')
				}
				kb, _ := json.Marshal(k)
				out = append(out, kb...)
				out = append(out, ':')
				w(x[k])
			}
			out = append(out, '}')
		case []any:
			out = append(out, '[')
			for i, e := range x {
				if i > 0 {
					out = append(out, ',')
				}
				w(e)
			}
			out = append(out, ']')
		case json.Number:
			out = append(out, x...)
		default:
			b, _ := json.Marshal(x)
			out = append(out, b...)
		}
	}
	w(v)
	return out
}

// typeLast puts "type" last: the typed view is read after the scan.
func typeLast(keys []string) {
	for i, k := range keys {
		if k == "type" {
			copy(keys[i:], keys[i+1:])
			keys[len(keys)-1] = "type"
			return
		}
	}
}
