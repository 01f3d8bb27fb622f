package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// TestEmbeddedRestartResume: events posted to jimbus on an embedded
// single-node JetStream survive a restart of jimbus and of the server (same
// store directory); a durable subscriber that comes back with its id
// receives exactly once every event it had not acknowledged (those it had
// received, and those posted while it was away), and none it had. The
// server forgets across its restart that the events received and not
// acknowledged were handed back: they come again after AckWait.
func TestEmbeddedRestartResume(t *testing.T) {
	dir := t.TempDir()
	const ackWait = 2 * time.Second
	emb := startEmbedded(t, dir)
	e := startEnv(t, Options{Embedded: emb, AckWait: ackWait}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sub := &jimbotpb.SubscribeRequest{SubscriberId: "trainer", TopicPattern: ">"}
	sctx, scancel := context.WithCancel(ctx)
	st := subscribeAck(t, sctx, e.client, sub)
	first := ids("r", 0, 50)
	e.postOK(first, 10)
	got := recvN(t, st, 50)
	require.Equal(t, first, eventIDs(got))
	acked := got[29].GetBusSequence()
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{AckSequence: acked}))
	waitAckFloor(t, e.bus, "trainer", acked)
	scancel()
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 0 }, 5*time.Second, 5*time.Millisecond)

	away := ids("r", 50, 70)
	e.postOK(away, 10) // the subscriber is away

	// Stop jimbus (ingest, bus, gRPC), then the server.
	e.stop()
	require.NoError(t, emb.Stop(ctx))

	emb = startEmbedded(t, dir)
	e = startEnv(t, Options{Embedded: emb, AckWait: ackWait}, false)
	st = subscribeAck(t, ctx, e.client, sub)
	want := append(first[30:], away...)
	again := recvN(t, st, len(want))
	require.ElementsMatch(t, want, eventIDs(again), "every unacknowledged event once, no acknowledged one")
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{AckSequence: again[len(again)-1].GetBusSequence()}))
	for _, ev := range again {
		require.Greater(t, ev.GetBusSequence(), acked)
	}

	// Nothing else is pending: the next event is the next one received.
	publishDirect(t, e.bus, "after-restart")
	next := recvN(t, st, 1)
	require.Equal(t, []string{"after-restart"}, eventIDs(next))
}
