package decode

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
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
	{
		kind := KindEvent
		if batch {
			kind = KindBatch
		}
		r := d.Decode(kind, body, 1)
		defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
		b := r.Batch
		if b.Len() != len(r.Keys) || b.Len() != len(b.Topics) {
			t.Fatalf("lengths: %d events, %d keys, %d topics", b.Len(), len(r.Keys), len(b.Topics))
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
