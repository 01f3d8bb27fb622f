package loadtest

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// TestEachEvent: the raw reader finds every event of a batch and the
// envelope fields the load tester uses, whatever else the events carry, and
// refuses a cut message.
func TestEachEvent(t *testing.T) {
	evs := []*jimbotpb.Event{
		{EventId: "a", Source: "BalatroMCP", ReceivedAtNs: 123, Topic: "system.heartbeat", TypeName: "HEARTBEAT",
			Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, PayloadJson: []byte(`{"x":1}`), Metadata: map[string]string{"k": "v"},
			Payload: &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Uptime: 9}}, ClientTimestamp: 1.5},
		{EventId: "b", Topic: "system.deadletter", Raw: []byte("bytes"), DeadletterReason: "why"},
		{},
		{EventId: "c", Source: "jimbus-loadtest", TypeName: "connection_test", ReceivedAtNs: 1 << 62,
			Payload: &jimbotpb.Event_GameState{GameState: &jimbotpb.GameStateEvent{Ante: 2}}},
	}
	msg, err := proto.Marshal(&jimbotpb.EventBatch{BatchId: "x", Source: "s", Timestamp: 5, Events: evs})
	require.NoError(t, err)
	var got []*jimbotpb.Event
	var ev jimbotpb.Event
	n, err := eachEvent(msg, &ev, func(e *jimbotpb.Event) {
		got = append(got, &jimbotpb.Event{EventId: e.EventId, Source: e.Source, ReceivedAtNs: e.ReceivedAtNs,
			Topic: e.Topic, TypeName: e.TypeName})
	})
	require.NoError(t, err)
	require.Equal(t, len(evs), n)
	for i, w := range evs {
		want := &jimbotpb.Event{EventId: w.EventId, Source: w.Source, ReceivedAtNs: w.ReceivedAtNs, Topic: w.Topic, TypeName: w.TypeName}
		require.True(t, proto.Equal(want, got[i]), "event %d: %v", i, got[i])
	}
	_, err = eachEvent(msg[:len(msg)-3], &ev, nil)
	require.ErrorIs(t, err, errBadBatch)
	n, err = eachEvent(nil, &ev, nil)
	require.NoError(t, err)
	require.Zero(t, n)
}
