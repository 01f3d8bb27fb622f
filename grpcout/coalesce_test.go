package grpcout

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// TestCoalesceSmallDeliveries: a woken writer yields (to send more in one
// message) only after deliveries of fewer than coalesceBelow events; after a
// delivery of many it sends as they come.
func TestCoalesceSmallDeliveries(t *testing.T) {
	b, err := New(Options{Logger: discard})
	require.NoError(t, err)
	set, err := route.Compile(">")
	require.NoError(t, err)
	s, err := b.subscribe("s", set, 0, true)
	require.NoError(t, err)
	require.True(t, s.small, "before the first delivery: as before this rule")
	buf := make([]*route.Batch, 0, dispatchChunk)
	deliver := func(n int) {
		t.Helper()
		bt := route.NewBatch(nil)
		id, _ := route.TopicOf(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "")
		for i := range n {
			bt.Add(newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", fmt.Sprint(i)), id)
		}
		require.NoError(t, b.Publish(0, bt))
		buf = b.ring.Drain(buf[:0], dispatchChunk)
		for _, x := range buf {
			b.dispatch(x)
		}
		require.Equal(t, n, s.pack())
		s.sentDone(true)
	}
	for _, c := range []struct {
		events int
		small  bool
	}{{1, true}, {50, false}, {coalesceBelow - 1, true}, {coalesceBelow, false}, {3, true}} {
		deliver(c.events)
		require.Equal(t, c.small, s.small, "after a delivery of %d events", c.events)
	}
}
