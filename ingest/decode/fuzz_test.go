package decode

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// fuzzSeeds are the real bodies plus one per quirk.
func fuzzSeeds(f testing.TB) [][]byte {
	var seeds [][]byte
	names, _ := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	jl, err := os.ReadFile(filepath.Join(examplesDir, "captured_heartbeat_batches_2025-07-01.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(jl, []byte("\n")) {
		if len(l) > 0 {
			seeds = append(seeds, l)
		}
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"events":[]}`, `{"events":{}}`, `{invalid_json`,
		`{"events":[{"type":"HEARTBEAT","source":"s","payload":{"a":nan,"b":-inf,"c":1.#QNAN}}]}`,
		"{\"events\":[{\"type\":\"ERROR\",\"source\":\"s\x01\",\"payload\":{\"m\":\"\x00\x1b\"}}]}",
		`{"events":[{"type":"DIAGNOSTIC","source":"s","payload":["a"b","c\d"]},{"type":"HEARTBEAT","source":"s","payload":{}}]}`,
		`{"type":"connection_test","data":{"message":"m"},"source":"s","timestamp":1751439161000}`,
		`{"type":"HEARTBEAT","source":"s","payload":{},"version":1e+15,"event_id":12,"metadata":{"a":1}}`,
		`{"type":"GAME_STATE","source":"s","payload":{"hand":{"1":{"rank":"K"}},"jokers":{},"deck":{"full_deck":[{"id":1.5}]}}}`,
		"{\"type\":\"HEARTBEAT\",\"source\":\"\xff\",\"payload\":\"\\ud800\"}",
		// "type" after the payload: walked by a guessed type's walker,
		// right or wrong (HAND_PLAYED and GAME_STATE begin alike).
		`{"events":[{"source":"s","payload":{"hand_number":1,"hands_remaining":3},"type":"HAND_PLAYED"},` +
			`{"source":"s","payload":{"hand_number":1,"hand":[{"rank":"King","suit":"Spades"}],"jokers":[{"name":"J","properties":{"cost":2}}]},"type":"GAME_STATE"},` +
			`{"source":"s","payload":{"hand_number":2,"hands_remaining":2},"type":"HAND_PLAYED"}]}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzPrepass: never panics; valid JSON passes unchanged; the output of a
// body whose only faults are the repaired ones is valid.
func FuzzPrepass(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, bits, n := Prepass(nil, in)
		if json.Valid(in) {
			if !bytes.Equal(in, out) || bits != 0 || n != 0 {
				t.Fatalf("valid JSON changed:\n%q\n%q", in, out)
			}
		}
		if (n == 0) != (bits == 0) || (n == 0 && !bytes.Equal(in, out)) {
			t.Fatalf("repairs %d bits %b, changed %v", n, bits, !bytes.Equal(in, out))
		}
		// Idempotent: a second pass changes nothing more.
		out2, _, n2 := Prepass(nil, out)
		if n2 != 0 || !bytes.Equal(out, out2) {
			t.Fatalf("second pass changed %q to %q", out, out2)
		}
	})
}

// FuzzDecode: never panics; every body yields events, or a per-event error,
// or a Fatal; each event is marshalable and its topic consistent; the
// counts add up.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	d := New(Options{MaxEvents: 100, MaxDepth: 32})
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		checkDecode(t, d, body, batch)
	})
}

// checkDecode checks the invariants of FuzzDecode on one body.
func checkDecode(t testing.TB, d *Decoder, body []byte, batch bool) {
	kind := KindEvent
	if batch {
		kind = KindBatch
	}
	checkDecodeKind(t, d, body, kind)
}

// checkDecodeKind checks the invariants of FuzzDecode on one body of kind.
func checkDecodeKind(t testing.TB, d *Decoder, body []byte, kind Kind) {
	{
		r := d.Decode(kind, body, 1)
		defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
		b := r.Batch
		if b.Len() != len(r.Keys) || b.Len() != len(b.Topics) {
			t.Fatalf("lengths: %d events, %d keys, %d topics", b.Len(), len(r.Keys), len(b.Topics))
		}
		for i, ev := range b.Events {
			// A key is the resend key of the event's own fields.
			if k := r.Keys[i]; k != 0 && k != Key(ev.Source, ev.EventId, ev.ClientTimestamp) {
				t.Fatalf("event %d: key %x, of its fields %x", i, k, Key(ev.Source, ev.EventId, ev.ClientTimestamp))
			}
		}
		msg := r.AppendError(nil)
		switch {
		case r.Fatal != "":
			if b.Len() != 1 || r.Accepted != 0 || !bytes.Equal(b.Events[0].Raw, body) {
				t.Fatalf("fatal %q with %d events", r.Fatal, b.Len())
			}
		default:
			if r.Accepted+r.Rejected != b.Len() || len(r.Errors) != r.Rejected {
				t.Fatalf("counts: %d+%d for %d events, %d errors", r.Accepted, r.Rejected, b.Len(), len(r.Errors))
			}
			if (r.Rejected > 0) != (len(msg) > 0) {
				t.Fatalf("error text %q with %d rejected", msg, r.Rejected)
			}
			if kind == KindEvent && b.Len() != 1 {
				t.Fatalf("single event body gave %d events", b.Len())
			}
		}
		if json.Valid(body) && r.Repairs != 0 {
			t.Fatalf("valid body repaired")
		}
		for i, ev := range b.Events {
			if ev.Topic != b.Topics[i].String() || ev.EventId == "" {
				t.Fatalf("event %d: topic %q/%v id %q", i, ev.Topic, b.Topics[i], ev.EventId)
			}
			if (ev.DeadletterReason != "") != (ev.Topic == "system.deadletter") {
				t.Fatalf("event %d: reason %q on %s", i, ev.DeadletterReason, ev.Topic)
			}
			if ev.Topic != "system.deadletter" && !json.Valid(ev.PayloadJson) {
				t.Fatalf("event %d: payload %q", i, ev.PayloadJson)
			}
			if len(ev.ExtraJson) > 0 && !json.Valid(ev.ExtraJson) {
				t.Fatalf("event %d: extra %q", i, ev.ExtraJson)
			}
			if _, err := proto.Marshal(ev); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		checkDeferredView(t, d, body, kind, b)
	}
}

// TestMutatedBodies runs FuzzDecode's checks over random mutations of the
// seeds (byte changes, cuts, deletions), so that plain `go test` covers
// broken bodies too.
func TestMutatedBodies(t *testing.T) {
	d := New(Options{MaxEvents: 100, MaxDepth: 32})
	seeds := fuzzSeeds(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		s := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for k := rng.IntN(4); k >= 0 && len(s) > 0; k-- {
			i := rng.IntN(len(s))
			switch rng.IntN(4) {
			case 0:
				s[i] = byte(rng.IntN(256))
			case 1:
				s = s[:i]
			case 2:
				s = append(s[:i], s[i+1:]...)
			case 3:
				const special = "\"\\{}[],:n\x01"
				s[i] = special[rng.IntN(len(special))]
			}
		}
		checkDecode(t, d, s, false)
		checkDecode(t, d, s, true)
	}
}

// ndjsonLines is the non-blank lines of body, trimmed, as the decoder
// splits them.
func ndjsonLines(body []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(body, []byte("\n")) {
		if l = bytes.Trim(l, " \t\r\n"); len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// FuzzDecodeNDJSON: FuzzDecode's invariants for NDJSON bodies, and: one
// event per non-blank line, in order; a rejected line carries exactly its
// bytes; a line that is valid JSON decodes as the same line would on its own
// (the lines do not affect each other); too many lines is Fatal.
func FuzzDecodeNDJSON(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	for i := 0; i+2 < len(seeds); i += 3 {
		f.Add(bytes.Join(seeds[i:i+3], []byte("\n")))
	}
	f.Add([]byte("{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{\"m\":\"open}}\n{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{}}\r\n"))
	d := New(Options{MaxEvents: 20, MaxDepth: 32, MaxStringLen: 64})
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeKind(t, d, body, KindNDJSON)
		lines := ndjsonLines(body)
		r := d.Decode(KindNDJSON, body, 1)
		defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
		if len(lines) > 20 {
			if r.Fatal == "" {
				t.Fatalf("%d lines, not fatal", len(lines))
			}
			return
		}
		if r.Fatal != "" || r.Batch.Len() != len(lines) {
			t.Fatalf("%d lines gave %d events, fatal %q", len(lines), r.Batch.Len(), r.Fatal)
		}
		for i, ev := range r.Batch.Events {
			// Whitespace that the pre-pass found inside a string stays.
			if ev.DeadletterReason != "" && (!bytes.HasPrefix(ev.Raw, lines[i]) || len(bytes.Trim(ev.Raw[len(lines[i]):], " \t\r")) > 0) {
				t.Fatalf("line %d: raw %q, line %q", i, ev.Raw, lines[i])
			}
			if !json.Valid(lines[i]) {
				continue
			}
			one := d.Decode(KindEvent, lines[i], 1)
			oe := one.Batch.Events[0]
			// The reasons differ only in their endpoint's wording.
			if oe.Topic != ev.Topic || !bytes.Equal(oe.PayloadJson, ev.PayloadJson) || oe.Source != ev.Source ||
				(oe.DeadletterReason == "") != (ev.DeadletterReason == "") {
				t.Fatalf("line %d %q: %s %q alone, %s %q in NDJSON", i, lines[i], oe.Topic, oe.DeadletterReason, ev.Topic, ev.DeadletterReason)
			}
			one.Batch.Release()
			d.ReleaseResult(one)
		}
	})
}

// protoSeeds are the marshalled EventBatch values that seed FuzzFromProto.
func protoSeeds() [][]byte {
	hb := jimbotpb.EventType_EVENT_TYPE_HEARTBEAT
	batches := []*jimbotpb.EventBatch{
		{},
		{BatchId: "b1", Events: []*jimbotpb.Event{{Type: hb, Source: "g", EventId: "a", ClientTimestamp: 1.5, PayloadJson: []byte(`{"uptime":1}`)}}},
		{Events: []*jimbotpb.Event{{TypeName: "connection_test", Source: "g"}, {TypeName: "SCORING", Subtype: "score_update", Source: "g"},
			{TypeName: "NOPE", Source: "g"}, {Type: hb}, {Source: "g"}, {Type: jimbotpb.EventType(12345), Source: "g"}}},
		{Events: []*jimbotpb.Event{{Type: hb, Source: strings.Repeat("s", 65), Metadata: map[string]string{"k": "v"}},
			{Type: hb, Source: "g", Metadata: map[string]string{strings.Repeat("k", 65): "v"}},
			{Type: hb, Source: "g", DeadletterReason: "spoofed", Raw: []byte{1}, BusSequence: 7, Repairs: 3, Topic: "system.deadletter"}}},
		{Events: []*jimbotpb.Event{{Type: hb, Source: "g", Timestamp: math.MaxInt64, ClientTimestamp: math.NaN(), Version: -1}}},
		{Events: make([]*jimbotpb.Event, 9)},
	}
	var out [][]byte
	for _, b := range batches {
		for i := range b.Events {
			if b.Events[i] == nil {
				b.Events[i] = &jimbotpb.Event{Type: hb, Source: "g"}
			}
		}
		raw, err := proto.Marshal(b)
		if err != nil {
			panic(err)
		}
		out = append(out, raw)
	}
	return out
}

// FuzzFromProto: the gRPC publish path, from whatever proto.Unmarshal makes
// of random bytes. It never panics; more than MaxEvents is Fatal with one
// deadletter; otherwise one event per event sent, each accepted (a known
// topic, a source within the limits, its key from its own id) or
// deadlettered with a reason and its bytes; never a client-set bus field.
func FuzzFromProto(f *testing.F) {
	for _, s := range protoSeeds() {
		f.Add(s)
	}
	d := New(Options{MaxEvents: 8, MaxStringLen: 64})
	f.Fuzz(func(t *testing.T, data []byte) {
		var eb jimbotpb.EventBatch
		if proto.Unmarshal(data, &eb) != nil {
			return
		}
		n := len(eb.Events)
		ids := make([]string, n)
		for i, ev := range eb.Events {
			ids[i] = ev.GetEventId()
		}
		r := d.FromProto(eb.BatchId, eb.Events, 1)
		defer d.ReleaseResult(r)
		b := r.Batch
		if b.Len() != len(r.Keys) || b.Len() != len(b.Topics) {
			t.Fatalf("lengths: %d events, %d keys, %d topics", b.Len(), len(r.Keys), len(b.Topics))
		}
		if n > 8 {
			if r.Fatal == "" || b.Len() != 1 || b.Topics[0] != route.TopicDeadletter || r.Accepted+r.Rejected != 0 {
				t.Fatalf("%d events: fatal %q, %d out", n, r.Fatal, b.Len())
			}
			return
		}
		if r.Fatal != "" || b.Len() != n || r.Accepted+r.Rejected != n || len(r.Errors) != r.Rejected {
			t.Fatalf("%d events: fatal %q, %d out, %d+%d", n, r.Fatal, b.Len(), r.Accepted, r.Rejected)
		}
		for i, ev := range b.Events {
			if ev.Topic != b.Topics[i].String() || ev.EventId == "" || ev.BusSequence != 0 {
				t.Fatalf("event %d: topic %q/%v id %q seq %d", i, ev.Topic, b.Topics[i], ev.EventId, ev.BusSequence)
			}
			dead := b.Topics[i] == route.TopicDeadletter
			if dead != (ev.DeadletterReason != "") || dead && len(ev.Raw) == 0 || !dead && len(ev.Raw) > 0 {
				t.Fatalf("event %d: reason %q raw %d on %s", i, ev.DeadletterReason, len(ev.Raw), ev.Topic)
			}
			if dead {
				if r.Keys[i] != 0 {
					t.Fatalf("deadletter %d keyed", i)
				}
				continue
			}
			if ev.Source == "" || len(ev.Source) > 64 || len(ev.EventId) > 64 || ev.Repairs != 0 {
				t.Fatalf("event %d accepted: source %q id %q", i, ev.Source, ev.EventId)
			}
			if want, _ := route.TopicOf(ev.Type, ev.Subtype); want != b.Topics[i] {
				t.Fatalf("event %d: topic %v, type %v/%q gives %v", i, b.Topics[i], ev.Type, ev.Subtype, want)
			}
			if (ids[i] != "") != (r.Keys[i] != 0) && ids[i] != "" {
				t.Fatalf("event %d: id %q key %x", i, ids[i], r.Keys[i])
			}
			if _, err := proto.Marshal(ev); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
	})
}
