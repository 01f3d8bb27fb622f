package decode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// syntheticBatch builds a batch like the mod's after an outage flush: n
// events, mostly small change events, one GAME_STATE.
func syntheticBatch(n int) []byte {
	gs, err := os.ReadFile(filepath.Join(examplesDir, "event_GAME_STATE.initial.json"))
	if err != nil {
		panic(err)
	}
	gs = []byte(strings.TrimSpace(string(gs)))
	jk, err := os.ReadFile(filepath.Join(examplesDir, "event_JOKERS_CHANGED.json"))
	if err != nil {
		panic(err)
	}
	jk = []byte(strings.TrimSpace(string(jk)))
	small := []string{
		`{"type":"MONEY_CHANGED","version":1,"source":"BalatroMCP","payload":{"difference":9,"old_value":14,"new_value":23},"event_id":"d2ad2084-5024-4431-9258-8b53b0a9%04d","timestamp":266945.45746667}`,
		`{"type":"SCORE_CHANGED","version":1,"source":"BalatroMCP","payload":{"new_chips":356,"old_mult":0,"new_mult":0,"old_chips":0},"event_id":"305f1852-41d2-439f-ad7a-e04a21d3%04d","timestamp":260427.39506666}`,
		`{"type":"HAND_PLAYED","version":1,"source":"BalatroMCP","payload":{"hand_number":1,"hands_remaining":3},"event_id":"0c4eb218-b3bc-4c9d-90e3-1759a600%04d","timestamp":259925.96796666}`,
		`{"type":"PHASE_CHANGED","version":1,"source":"BalatroMCP","payload":{"old_phase":"UNKNOWN_STATE_1","new_phase":"UNKNOWN_STATE_2"},"event_id":"cf7d9421-c055-4f50-b5ee-99468dbd%04d","timestamp":259925.98926666}`,
		`{"type":"HEARTBEAT","version":1,"source":"BalatroMCP","payload":{"version":"0.1.0","game_state":"1","uptime":248396.08406667,"headless":false},"event_id":"330c2213-f909-4049-8803-3aa2d7cb%04d","timestamp":248396.10536667}`,
		`{"type":"CARDS_DISCARDED","version":1,"source":"BalatroMCP","payload":{"discards_remaining":3},"event_id":"8f0cd596-6986-4ef8-bc24-75f51e50%04d","timestamp":269953.72186667}`,
		`{"type":"ROUND_CHANGED","version":1,"source":"BalatroMCP","payload":{"ante":2,"round":6},"event_id":"1299a991-fbb7-4571-8d7e-32ec613f%04d","timestamp":269953.74316667}`,
	}
	var b strings.Builder
	b.WriteString(`{"source":"BalatroMCP","timestamp":1751439182000,"batch_id":"de39f1f4-7dfc-49c0-b364-72c1dbe6fd38","events":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == n/2 {
			b.Write(gs)
			continue
		}
		if i%8 == 7 {
			b.Write(jk)
			continue
		}
		fmt.Fprintf(&b, small[i%len(small)], i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
