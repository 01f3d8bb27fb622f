package decode

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// checkDeferredView decodes body again with the typed view deferred
// (Options.TypedWanted says no) and checks that the batch has no view until
// FillTyped, and then the same views as want, decoded with d.
func checkDeferredView(t testing.TB, d *Decoder, body []byte, kind Kind, want *route.Batch) {
	t.Helper()
	opts := d.opts
	opts.TypedWanted = func() bool { return false }
	d2 := New(opts)
	r := d2.Decode(kind, body, 1)
	defer func() { r.Batch.Release(); d2.ReleaseResult(r) }()
	b := r.Batch
	if b.Len() != want.Len() {
		t.Fatalf("deferred: %d events, want %d", b.Len(), want.Len())
	}
	if b.TypedDeferred() == opts.NoTypedView {
		t.Fatalf("deferred: TypedDeferred %v with NoTypedView %v", b.TypedDeferred(), opts.NoTypedView)
	}
	for i, ev := range b.Events {
		if ev.Payload != nil && i < len(r.Keys) && ev.DeadletterReason == "" {
			t.Fatalf("deferred: event %d has a typed view before FillTyped", i)
		}
		// The scan without typed walkers accepts and refuses alike, for the
		// same reasons: whichever walker validated a payload (its type's,
		// a guessed type's) checked what the plain scanner checks.
		if w := want.Events[i]; ev.Topic != w.Topic || ev.DeadletterReason != w.DeadletterReason {
			t.Fatalf("event %d: %s %q without typed walkers, %s %q with", i, ev.Topic, ev.DeadletterReason, w.Topic, w.DeadletterReason)
		}
	}
	b.FillTyped()
	b.FillTyped() // a no-op the second time
	if b.TypedDeferred() {
		t.Fatal("deferred: still deferred after FillTyped")
	}
	for i, ev := range b.Events {
		w := want.Events[i]
		if !proto.Equal(&jimbotpb.Event{Payload: ev.Payload}, &jimbotpb.Event{Payload: w.Payload}) {
			t.Fatalf("event %d (%s): filled view %v, decoded %v", i, ev.Type, ev.Payload, w.Payload)
		}
	}
}

// TestDeferredTypedView: a batch decoded while no consumer wanted the typed
// view gets, from FillTyped, exactly the views Decode would have built, for
// every real body and for the envelope flags that GameStateEvent repeats.
func TestDeferredTypedView(t *testing.T) {
	bodies := realBodies(t)
	for name, b := range map[string]kindBody{
		"flags": {KindBatch, []byte(batchOf(
			`{"type":"HEARTBEAT","source":"s","payload":{"uptime":3}}`,
			`{"type":"GAME_STATE","source":"s","initial":true,"payload":{"money":4}}`,
			`{"type":"INVALID_TYPE","source":"s","payload":{}}`,
			`{"type":"GAME_STATE","source":"s","debug":true,"initial":false,"payload":{"money":5}}`,
			`{"type":"GAME_STATE","source":"s","payload":{"money":6}}`,
			`{"type":"MONEY_CHANGED","source":"s","payload":{"new_value":1e999,"old_value":nan}}`,
		))},
		"ndjson": {KindNDJSON, []byte(`{"type":"HEARTBEAT","source":"s","payload":{"uptime":1}}` + "\n" +
			`{"type":"GAME_STATE","source":"s","debug":true,"payload":{"money":2}}`)},
	} {
		bodies[name] = b
	}
	for name, tc := range bodies {
		t.Run(name, func(t *testing.T) {
			for _, opts := range []Options{{}, {NoTypedView: true}} {
				d := New(opts)
				r := d.Decode(tc.kind, tc.body, 1)
				require.Empty(t, r.Fatal)
				require.False(t, r.Batch.TypedDeferred(), "TypedWanted unset: never deferred")
				checkDeferredView(t, d, tc.body, tc.kind, r.Batch)
				r.Batch.Release()
				d.ReleaseResult(r)
			}
		})
	}
	// The flags reached the filled views.
	d := New(Options{TypedWanted: func() bool { return false }})
	r := d.Decode(KindBatch, bodies["flags"].body, 1)
	defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
	r.Batch.FillTyped()
	var got [][2]bool
	for _, ev := range r.Batch.Events {
		if g := ev.GetGameState(); g != nil {
			got = append(got, [2]bool{g.Initial, g.Debug})
		}
	}
	require.Equal(t, [][2]bool{{true, false}, {false, true}, {false, false}}, got)
}

// TestTypedWantedAskedPerRequest: the decoder follows TypedWanted from one
// request to the next.
func TestTypedWantedAskedPerRequest(t *testing.T) {
	want := false
	d := New(Options{TypedWanted: func() bool { return want }, DeferBelow: -1})
	body := readTestdata(t, "event_HEARTBEAT.json")
	for _, w := range []bool{false, true, false} {
		want = w
		r := d.Decode(KindEvent, body, 1)
		require.Equal(t, !w, r.Batch.TypedDeferred())
		require.Equal(t, w, r.Batch.Events[0].Payload != nil)
		r.Batch.Release()
		d.ReleaseResult(r)
	}
}

// TestSmallBodiesDeferred: with TypedWanted set, a body shorter than
// DeferBelow is decoded without the typed view even while a consumer wants
// it (TypedWanted is not asked), and FillTyped then builds the views Decode
// would have; a body as long as DeferBelow, or any with DeferBelow
// negative, follows TypedWanted.
func TestSmallBodiesDeferred(t *testing.T) {
	hb := readTestdata(t, "event_HEARTBEAT.json")
	require.Less(t, len(hb), DefaultDeferBelow)
	asked := 0
	wanted := func() bool { asked++; return true }
	for _, tc := range []struct {
		below    int
		deferred bool
	}{{0, true}, {len(hb) + 1, true}, {len(hb), false}, {-1, false}} {
		asked = 0
		d := New(Options{TypedWanted: wanted, DeferBelow: tc.below})
		r := d.Decode(KindEvent, hb, 1)
		require.Equal(t, tc.deferred, r.Batch.TypedDeferred(), "DeferBelow %d", tc.below)
		require.Equal(t, !tc.deferred, r.Batch.Events[0].Payload != nil, "DeferBelow %d", tc.below)
		require.Equal(t, !tc.deferred, asked == 1, "DeferBelow %d: TypedWanted asked %d times", tc.below, asked)
		r.Batch.Release()
		d.ReleaseResult(r)
	}
	inline := New(Options{})
	r := inline.Decode(KindEvent, hb, 1)
	defer func() { r.Batch.Release(); inline.ReleaseResult(r) }()
	require.NotNil(t, r.Batch.Events[0].GetHeartbeat())
	checkDeferredView(t, inline, hb, KindEvent, r.Batch)
}

// TestDecodeSwap: DecodeSwap gives Decode's result for every real body (and
// a repaired one), hands swap an empty spare buffer, and keeps the body it
// gets back without copying it (a body the pre-pass repaired is read from
// the repaired copy).
func TestDecodeSwap(t *testing.T) {
	bodies := realBodies(t)
	bodies["repaired"] = kindBody{KindBatch, []byte(batchOf(`{"type":"MONEY_CHANGED","source":"s","event_id":"e1","payload":{"new_value":nan}}`))}
	d := New(Options{})
	for name, tc := range bodies {
		want := d.Decode(tc.kind, tc.body, 1)
		owned := bytes.Clone(tc.body)
		got := d.DecodeSwap(tc.kind, 1, func(spare []byte) []byte {
			require.Empty(t, spare, name)
			return owned
		})
		require.Equal(t, want.Fatal, got.Fatal, name)
		require.Equal(t, len(want.Batch.Events), len(got.Batch.Events), name)
		for i := range want.Batch.Events {
			w, g := proto.Clone(want.Batch.Events[i]).(*jimbotpb.Event), proto.Clone(got.Batch.Events[i]).(*jimbotpb.Event)
			if strings.HasPrefix(w.EventId, "jb-") && strings.HasPrefix(g.EventId, "jb-") {
				w.EventId, g.EventId = "", "" // assigned, one per event decoded
			}
			require.True(t, proto.Equal(w, g), "%s: event %d:\n%v\n%v", name, i, w, g)
		}
		if len(got.Batch.Events) > 0 && len(got.Batch.Events[0].PayloadJson) > 0 && got.Batch.Events[0].Repairs == 0 {
			pj := got.Batch.Events[0].PayloadJson
			require.True(t, aliases(owned, pj), "%s: payload_json is not a copy", name)
		}
		for _, r := range []*Result{want, got} {
			r.Batch.Release()
			d.ReleaseResult(r)
		}
	}
}

// aliases reports whether b lies inside buf.
func aliases(buf, b []byte) bool {
	if len(b) == 0 || len(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p < start+uintptr(len(buf))
}
