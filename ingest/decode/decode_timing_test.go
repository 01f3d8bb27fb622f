package decode

import (
	"encoding/json"
	"testing"

	"github.com/bytedance/sonic"
)

// wireBatch is the obvious alternative: decode-and-discard into a plain
// struct, payload kept raw.
type wireBatch struct {
	Events []struct {
		Type      string                 `json:"type"`
		Source    string                 `json:"source"`
		EventID   string                 `json:"event_id"`
		Timestamp float64                `json:"timestamp"`
		Payload   sonic.NoCopyRawMessage `json:"payload"`
	} `json:"events"`
}

// wireBatchStd is wireBatch for encoding/json (which does not know
// NoCopyRawMessage: json.RawMessage copies).
type wireBatchStd struct {
	Events []struct {
		Type      string          `json:"type"`
		Source    string          `json:"source"`
		EventID   string          `json:"event_id"`
		Timestamp float64         `json:"timestamp"`
		Payload   json.RawMessage `json:"payload"`
	} `json:"events"`
}

func benchBodies(b *testing.B) []struct {
	name string
	body []byte
} {
	return []struct {
		name string
		body []byte
	}{
		{"state_change", readTestdata(b, "request_batch_state_change.json")},
		{"synthetic50", syntheticBatch(50)},
		// The same events with every object's keys in another order, as
		// another game process's Lua tables write them.
		{"synthetic50_hashorder", hashOrdered(b, syntheticBatch(50), 1)},
	}
}

func countEvents(b *testing.B, body []byte) int {
	var w wireBatchStd
	if err := json.Unmarshal(body, &w); err != nil {
		b.Fatal(err)
	}
	return len(w.Events)
}

func report(b *testing.B, events int) {
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events*b.N), "ns/event")
}

// BenchmarkDecode: this package against sonic and encoding/json decoding
// into a plain struct (which neither validates the events, nor keeps
// extras, nor builds protobuf events).
func BenchmarkDecode(b *testing.B) {
	for _, tc := range benchBodies(b) {
		n := countEvents(b, tc.body)
		for _, v := range []struct {
			name string
			opts Options
		}{{"jimbus", Options{}}, {"jimbus_notyped", Options{NoTypedView: true}}} {
			b.Run(tc.name+"/"+v.name, func(b *testing.B) {
				d := New(v.opts)
				b.SetBytes(int64(len(tc.body)))
				b.ReportAllocs()
				for b.Loop() {
					r := d.Decode(KindBatch, tc.body, 1)
					if r.Accepted != n {
						b.Fatal(string(r.AppendError(nil)))
					}
					r.Batch.Release()
					d.ReleaseResult(r)
				}
				report(b, n)
			})
		}
		b.Run(tc.name+"/sonic_struct", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			var w wireBatch
			for b.Loop() {
				w.Events = w.Events[:0]
				if err := sonic.Unmarshal(tc.body, &w); err != nil || len(w.Events) != n {
					b.Fatal(err)
				}
			}
			report(b, n)
		})
		b.Run(tc.name+"/encoding_json_struct", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			var w wireBatchStd
			for b.Loop() {
				w.Events = w.Events[:0]
				if err := json.Unmarshal(tc.body, &w); err != nil || len(w.Events) != n {
					b.Fatal(err)
				}
			}
			report(b, n)
		})
	}
}

// BenchmarkValidate compares the validation alone: sonic.Valid (SIMD) and
// this package's strict scanner.
func BenchmarkValidate(b *testing.B) {
	for _, tc := range benchBodies(b) {
		b.Run(tc.name+"/scanner", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, e := skipValue(tc.body, 0, 0, 256); e.msg != "" {
					b.Fatal(e.msg)
				}
			}
		})
		// The least a second, trusting pass after sonic.Valid would cost.
		b.Run(tc.name+"/trusted_walk", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if skipTrusted(tc.body, 0) != len(tc.body) {
					b.Fatal("short")
				}
			}
		})
		b.Run(tc.name+"/sonic_valid", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if !sonic.Valid(tc.body) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(tc.name+"/encoding_json_valid", func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(tc.body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// wireCard and wireGameState are what a struct decoder would need for the
// GAME_STATE typed view (ids as raw numbers; no tolerance for {} lists).
type wireCard struct {
	ID          sonic.NoCopyRawMessage `json:"id"`
	Rank        string                 `json:"rank"`
	Suit        string                 `json:"suit"`
	Enhancement string                 `json:"enhancement"`
	Edition     string                 `json:"edition"`
	Seal        string                 `json:"seal"`
	Position    float64                `json:"position"`
}

type wireGameState struct {
	InGame    bool    `json:"in_game"`
	GameID    string  `json:"game_id"`
	Ante      float64 `json:"ante"`
	Round     float64 `json:"round"`
	Chips     float64 `json:"chips"`
	Money     float64 `json:"money"`
	GameState string  `json:"game_state"`
	UIState   string  `json:"ui_state"`
	Hand      []wireCard
	Jokers    []struct {
		ID         sonic.NoCopyRawMessage `json:"id"`
		Name       string                 `json:"name"`
		Position   float64                `json:"position"`
		Properties struct {
			Mult, Chips, Cost float64
			SellValue         float64 `json:"sell_value"`
			Edition           string  `json:"edition"`
		} `json:"properties"`
	} `json:"jokers"`
	Consumables []struct {
		ID       sonic.NoCopyRawMessage `json:"id"`
		Name     string                 `json:"name"`
		CardType string                 `json:"card_type"`
	} `json:"consumables"`
	Deck struct {
		RemainingCount float64    `json:"remaining_count"`
		CardsRemaining []wireCard `json:"cards_remaining"`
		FullDeck       []wireCard `json:"full_deck"`
	} `json:"deck"`
	Blind struct {
		Name  string  `json:"name"`
		Chips float64 `json:"chips"`
		Mult  float64 `json:"mult"`
	} `json:"blind"`
	ScoreHistory map[string]struct {
		Label string  `json:"label"`
		Amt   float64 `json:"amt"`
	} `json:"score_history"`
}

// BenchmarkTypedGameState compares the typed view of one real GAME_STATE
// payload (8.6 KB): this package's walker into pooled protobuf structs (it
// validates the payload as it goes: the decoder's only pass over it),
// against sonic and encoding/json into a reused plain struct.
func BenchmarkTypedGameState(b *testing.B) {
	body := readTestdata(b, "event_GAME_STATE.initial.json")
	d := New(Options{})
	r := d.Decode(KindEvent, body, 1)
	payload := append([]byte(nil), r.Batch.Events[0].PayloadJson...)
	r.Batch.Release()
	d.ReleaseResult(r)
	b.Run("jimbus_walker", func(b *testing.B) {
		st := getState()
		defer freeBatch(st.batch)
		st.orig = append(st.orig[:0], payload...)
		p := parser{st: st, r: new(Result), buf: st.orig, maxDepth: DefaultMaxDepth}
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			st.resetTyped()
			st.aux = st.aux[:0]
			if _, e := p.gameState(st.typed.gameState.get(), 0, 1); e.msg != "" {
				b.Fatal(e.msg)
			}
		}
	})
	b.Run("sonic_struct", func(b *testing.B) {
		var w wireGameState
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := sonic.Unmarshal(payload, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json_struct", func(b *testing.B) {
		var w wireGameState
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := json.Unmarshal(payload, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}
