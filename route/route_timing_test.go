package route

import (
	"fmt"
	"testing"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// BenchmarkRoute measures what ingest and the fan-out do per event: parse the
// type, find its topic, test a compiled subscription. Routing by Set is one
// bit test whatever the number of patterns; the Match loop is the naive
// per-pattern alternative, for comparison.
func BenchmarkRoute(b *testing.B) {
	names := []string{"HEARTBEAT", "GAME_STATE", "MONEY_CHANGED", "connection_test", "SCORING"}
	for _, npat := range []int{1, 64} {
		pats := make([]string, npat)
		for i := range pats {
			pats[i] = fmt.Sprintf("game.p%d.*", i)
		}
		pats[npat-1] = "system.>"
		set, err := Compile(pats...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("set/patterns=%d", npat), func(b *testing.B) {
			b.ReportAllocs()
			hits := 0
			for i := 0; b.Loop(); i++ {
				typ, _ := ParseType(names[i%len(names)], "score_update")
				id, _ := TopicOf(typ, "score_update")
				if set.Has(id) {
					hits++
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(fmt.Sprintf("match-loop/patterns=%d", npat), func(b *testing.B) {
			b.ReportAllocs()
			hits := 0
			for i := 0; b.Loop(); i++ {
				typ, _ := ParseType(names[i%len(names)], "score_update")
				id, _ := TopicOf(typ, "score_update")
				topic := id.String()
				for _, p := range pats {
					if Match(p, topic) {
						hits++
						break
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	_ = jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED
}

// BenchmarkParseType: the type names of a real state-change batch, as
// BalatroMCP writes them.
func BenchmarkParseType(b *testing.B) {
	names := []string{"GAME_STATE", "JOKERS_CHANGED", "HEARTBEAT", "MONEY_CHANGED", "SCORE_CHANGED", "HAND_PLAYED", "connection_test"}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		if _, ok := ParseType(names[i%len(names)], ""); ok {
			n++
		}
	}
	if n == 0 {
		b.Fatal("no name known")
	}
}
