package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// expectedEvent is what a subscriber must receive for one event of a body.
type expectedEvent struct {
	eventID string
	typ     string
	payload string // exact bytes of "payload" (or "data")
	key     string // event_id and timestamp: resends share it
}

// eventsOf lists the events of a request body as the client sent them.
func eventsOf(t *testing.T, body []byte, isBatch bool) []expectedEvent {
	t.Helper()
	var raws []json.RawMessage
	if isBatch {
		var env struct{ Events []json.RawMessage }
		require.NoError(t, json.Unmarshal(body, &env))
		raws = env.Events
	} else {
		raws = []json.RawMessage{body}
	}
	var out []expectedEvent
	for _, r := range raws {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(r, &m))
		e := expectedEvent{payload: string(m["payload"])}
		if e.payload == "" {
			e.payload = string(m["data"])
		}
		json.Unmarshal(m["event_id"], &e.eventID)
		if e.eventID != "" {
			e.key = e.eventID + "@" + string(m["timestamp"])
		}
		json.Unmarshal(m["type"], &e.typ)
		out = append(out, e)
	}
	return out
}

var wantTopic = map[string]string{
	"connection_test": "system.connection.test", "HEARTBEAT": "system.heartbeat", "GAME_STATE": "game.state.update",
	"JOKERS_CHANGED": "game.jokers.changed", "SCORE_CHANGED": "game.score.changed", "HAND_PLAYED": "game.hand.played",
	"CARDS_DISCARDED": "game.cards.discarded", "ROUND_CHANGED": "game.round.changed", "PHASE_CHANGED": "game.phase.changed",
	"MONEY_CHANGED": "game.money.changed",
}

// TestRealBodiesEndToEnd posts the mod's real bodies through the HTTP
// listener and checks what a real gRPC subscriber receives: every event
// once, on its topic, with the payload byte-exact.
func TestRealBodiesEndToEnd(t *testing.T) {
	b := startBus(t)
	sub := b.subscribe(">")

	// Some example files repeat an event of another (same id and
	// timestamp): the bus delivers it once.
	var want []expectedEvent
	seen := map[string]bool{}
	post := func(path string, body []byte, isBatch bool) {
		b.ok(path, string(body))
		for _, e := range eventsOf(t, body, isBatch) {
			if e.key == "" || !seen[e.key] {
				want = append(want, e)
				seen[e.key] = e.key != ""
			}
		}
	}
	post("/api/v1/events", readExample(t, "request_connection_test_body.json"), false)
	post("/api/v1/events/batch", readExample(t, "request_batch_first_heartbeat.json"), true)
	post("/api/v1/events/batch", readExample(t, "request_batch_state_change.json"), true)
	for _, name := range []string{"event_HEARTBEAT.json", "event_JOKERS_CHANGED.json", "event_GAME_STATE.initial.json", "event_GAME_STATE.with_changes.json"} {
		post("/api/v1/events", readExample(t, name), false)
	}
	sc := bufio.NewScanner(bytes.NewReader(readExample(t, "captured_heartbeat_batches_2025-07-01.jsonl")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		post("/api/v1/events/batch", bytes.Clone(sc.Bytes()), true)
	}
	// The same real batch again, as the mod resends after an outage (new
	// batch_id, same events): acknowledged, not delivered twice.
	resend := bytes.Replace(readExample(t, "request_batch_state_change.json"), []byte(`"batch_id":"`), []byte(`"batch_id":"resent-`), 1)
	b.ok("/api/v1/events/batch", string(resend))

	got := sub.waitFor(t, len(want))
	time.Sleep(100 * time.Millisecond)
	got = sub.snapshot()
	require.Len(t, got, len(want), "each event exactly once")
	var lastSeq uint64
	for i, w := range want {
		ev := got[i]
		require.Equal(t, w.payload, string(ev.GetPayloadJson()), "event %d (%s) payload byte-exact", i, w.typ)
		require.Equal(t, wantTopic[w.typ], ev.GetTopic(), "event %d", i)
		require.Equal(t, w.typ, ev.GetTypeName())
		require.Equal(t, "BalatroMCP", ev.GetSource())
		if w.eventID != "" {
			require.Equal(t, w.eventID, ev.GetEventId())
		} else {
			require.NotEmpty(t, ev.GetEventId(), "the bus assigns an id")
		}
		require.Greater(t, ev.GetBusSequence(), lastSeq)
		lastSeq = ev.GetBusSequence()
		require.NotZero(t, ev.GetReceivedAtNs())
	}
	// Typed views tolerate the real values.
	for _, ev := range got {
		if ev.GetTypeName() == "GAME_STATE" {
			gs := ev.GetGameState()
			require.NotNil(t, gs, "typed GAME_STATE view")
			require.True(t, strings.HasPrefix(gs.GetPhaseName(), "UNKNOWN_STATE_"), gs.GetPhaseName())
			require.NotEmpty(t, gs.GetDeck().GetFullDeck())
		}
		if ev.GetTypeName() == "HEARTBEAT" {
			require.InDelta(t, 248379.3748, ev.GetClientTimestamp(), 1e6)
		}
	}
}

// TestEncoderQuirksEndToEnd: bodies with the invalid tokens the mod's
// encoder writes are repaired, accepted and delivered.
func TestEncoderQuirksEndToEnd(t *testing.T) {
	b := startBus(t)
	sub := b.subscribe("game.>", "system.error")
	bodies := []string{
		`{"events":[{"type":"SCORE_CHANGED","version":1,"source":"BalatroMCP","payload":{"new_chips":inf,"old_mult":nan,"new_mult":-inf,"old_chips":0},"event_id":"q1","timestamp":1.5}]}`,
		"{\"events\":[{\"type\":\"ERROR\",\"source\":\"BalatroMCP\",\"payload\":{\"message\":\"bad\tat\x01frame\",\"context\":{}},\"event_id\":\"q2\",\"timestamp\":2.25}]}",
		`{"events":[{"type":"JOKERS_CHANGED","source":"BalatroMCP","payload":{"jokers":{},"old_count":"1","new_count":1e+15},"event_id":"q3","timestamp":3}]}`,
	}
	for _, body := range bodies {
		b.ok("/api/v1/events/batch", body)
	}
	got := sub.waitFor(t, 3)
	require.Equal(t, "q1", got[0].GetEventId())
	require.True(t, json.Valid(got[0].GetPayloadJson()), "repaired payload is JSON: %s", got[0].GetPayloadJson())
	require.NotZero(t, got[0].GetRepairs()&uint32(jimbotpb.Repair_REPAIR_NON_FINITE))
	require.Equal(t, "system.error", got[1].GetTopic())
	require.True(t, json.Valid(got[1].GetPayloadJson()))
	require.NotZero(t, got[1].GetRepairs()&uint32(jimbotpb.Repair_REPAIR_CONTROL_BYTE))
	require.Equal(t, `{"jokers":{},"old_count":"1","new_count":1e+15}`, string(got[2].GetPayloadJson()))
	require.InDelta(t, 2.25, got[1].GetClientTimestamp(), 1e-9)
}

// TestPatternsAndDeadletter: each subscriber gets exactly the topics it
// asked for; rejected events reach system.deadletter with reason and bytes.
func TestPatternsAndDeadletter(t *testing.T) {
	b := startBus(t)
	all := b.subscribe(">")
	game := b.subscribe("game.*.*")
	hb := b.subscribe("system.heartbeat")
	dead := b.subscribe("system.deadletter")

	b.contentError("/api/v1/events/batch", `{"events":[`+
		`{"type":"HEARTBEAT","source":"s","payload":{},"event_id":"a"},`+
		`{"type":"MONEY_CHANGED","source":"s","payload":{"new_value":3},"event_id":"b"},`+
		`{"type":"NOPE","source":"s","payload":{},"event_id":"c"},`+
		`{"type":"GAME_STATE","source":"s","payload":{},"event_id":"d"}]}`)
	allGot := all.waitFor(t, 4)
	ids := func(evs []*jimbotpb.Event) string {
		var s []string
		for _, e := range evs {
			s = append(s, e.GetEventId()+"@"+e.GetTopic())
		}
		return strings.Join(s, " ")
	}
	require.Equal(t, "a@system.heartbeat b@game.money.changed c@system.deadletter d@game.state.update", ids(allGot))
	require.Equal(t, "b@game.money.changed d@game.state.update", ids(game.waitFor(t, 2)))
	require.Equal(t, "a@system.heartbeat", ids(hb.waitFor(t, 1)))
	d := dead.waitFor(t, 1)[0]
	require.Contains(t, d.GetDeadletterReason(), "Unknown event type")
	require.Contains(t, string(d.GetRaw()), `"NOPE"`)
	time.Sleep(50 * time.Millisecond)
	require.Len(t, game.snapshot(), 2)
	require.Len(t, hb.snapshot(), 1)
}

// TestOrderPerClient: clients that wait for each answer see their events
// delivered in the order they sent them, whatever shard each request used.
func TestOrderPerClient(t *testing.T) {
	b := startBus(t)
	sub := b.subscribe(">")
	const clients, perClient = 6, 60
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				body := fmt.Sprintf(`{"events":[{"type":"HEARTBEAT","source":"c%d","payload":{"i":%d}},{"type":"MONEY_CHANGED","source":"c%d","payload":{"i":%d}}]}`, c, 2*i, c, 2*i+1)
				code, m := b.postJSON("/api/v1/events/batch", body)
				if code != 200 || m["status"] != "ok" {
					t.Errorf("%d %v", code, m)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := sub.waitFor(t, clients*perClient*2)
	next := map[string]int{}
	for _, ev := range got {
		var p struct{ I int }
		require.NoError(t, json.Unmarshal(ev.GetPayloadJson(), &p))
		require.Equal(t, next[ev.GetSource()], p.I, "client %s out of order", ev.GetSource())
		next[ev.GetSource()]++
	}
}

// TestCommandsAndGRPCPublish: commands from HTTP and gRPC reach the poll
// once each; events published over gRPC reach subscribers.
func TestCommandsAndGRPCPublish(t *testing.T) {
	b := startBus(t)
	sub := b.subscribe("system.heartbeat")
	code, body := b.do("GET", "/api/v1/commands/poll", "", "")
	require.Equal(t, 200, code)
	require.Empty(t, body)

	b.ok("/api/v1/commands", `{"type":"select_card","payload":{"index":0}}`)
	conn, err := grpc.NewClient(b.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := jimbotpb.NewEventBusClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.SendCommand(ctx, &jimbotpb.Command{Line: "play_hand"})
	require.NoError(t, err)
	require.True(t, resp.GetSuccess(), resp.GetMessage())

	code, body = b.do("GET", "/api/v1/commands/poll", "text/plain", "")
	require.Equal(t, 200, code)
	require.Equal(t, []string{"select_card:0", "play_hand"}, strings.Fields(body))
	_, body = b.do("GET", "//api/v1/commands/poll", "", "")
	require.Empty(t, body, "each command is served once")

	resp, err = client.PublishEvent(ctx, &jimbotpb.Event{
		Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "grpc-client", EventId: "g1", PayloadJson: []byte(`{"uptime":1}`),
	})
	require.NoError(t, err)
	require.True(t, resp.GetSuccess(), resp.GetMessage())
	ev := sub.waitFor(t, 1)[0]
	require.Equal(t, "g1", ev.GetEventId())
	require.Equal(t, "system.heartbeat", ev.GetTopic())

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
}

// TestTail runs `jimbus tail` against a live bus.
func TestTail(t *testing.T) {
	b := startBus(t)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"tail", "--addr", b.grpc, "--count", "2", "game.>"}, &out, &errOut) }()
	b.waitSubscribers(1)
	deadline := time.Now().Add(5 * time.Second)
	for len(done) == 0 && time.Now().Before(deadline) {
		b.ok("/api/v1/events", `{"type":"MONEY_CHANGED","source":"tail","payload":{"new_value":1},"timestamp":12.5}`)
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, 0, <-done, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	var l map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &l))
	require.Equal(t, "game.money.changed", l["topic"])
	require.Equal(t, map[string]any{"new_value": float64(1)}, l["payload"])
	require.Equal(t, 12.5, l["client_timestamp"])
}

// TestShutdownDelivers: everything answered ok before SIGTERM reaches the
// connected subscriber, whose stream then ends cleanly.
func TestShutdownDelivers(t *testing.T) {
	// Registered first, so it runs after every other cleanup: the bus and
	// the test's own clients leave no goroutine behind.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			// fasthttp's process-wide Date header clock, started once.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
	})
	b := startBus(t)
	sub := b.subscribe(">")
	const n = 2000
	for i := 0; i < n; i += 50 {
		var sb strings.Builder
		sb.WriteString(`{"events":[`)
		for j := i; j < i+50; j++ {
			if j > i {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"type":"HEARTBEAT","source":"sd","payload":{"i":%d},"event_id":"e%d"}`, j, j)
		}
		sb.WriteString(`]}`)
		b.ok("/api/v1/events/batch", sb.String())
	}
	b.stop()
	select {
	case err := <-sub.done:
		require.True(t, errors.Is(err, io.EOF), "stream ends cleanly, got %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end")
	}
	require.Len(t, sub.snapshot(), n)
}

// TestPayloadViewEndToEnd: a subscriber that asks for PAYLOAD_VIEW_JSON gets
// payload_json byte-exact and no typed view; while it is the only one, the
// bus does not build views; a default subscriber that joins gets them from
// its first event on, the JSON subscriber still none.
func TestPayloadViewEndToEnd(t *testing.T) {
	b := startBus(t)
	js := b.subscribeReq(&jimbotpb.SubscribeRequest{SubscriberId: "json", PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_JSON})
	require.False(t, b.srv.bus.WantsTypedView())
	state := readExample(t, "request_batch_state_change.json")
	b.ok("/api/v1/events/batch", string(state))
	want := eventsOf(t, state, true)
	got := js.waitFor(t, len(want))
	for i, ev := range got {
		require.Nil(t, ev.GetPayload(), "event %d", i)
		require.Equal(t, want[i].payload, string(ev.GetPayloadJson()))
	}

	typed := b.subscribe(">")
	require.True(t, b.srv.bus.WantsTypedView())
	gs := readExample(t, "event_GAME_STATE.with_changes.json")
	b.ok("/api/v1/events", string(gs))
	got = js.waitFor(t, len(want)+1)
	require.Nil(t, got[len(want)].GetPayload())
	require.Equal(t, string(eventsOf(t, gs, false)[0].payload), string(got[len(want)].GetPayloadJson()))
	tg := typed.waitFor(t, 1)
	require.NotEmpty(t, tg[0].GetGameState().GetDeck().GetFullDeck(), "typed view for the default subscriber")
	require.Equal(t, string(got[len(want)].GetPayloadJson()), string(tg[0].GetPayloadJson()))
}
