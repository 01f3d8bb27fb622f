package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

func TestServeJetStreamEmbedded(t *testing.T) {
	dir := t.TempDir()
	b := startBus(t, "--backend=jetstream", "--nats-embedded", "--nats-store", dir)
	code, body := b.do("POST", "/api/v1/events/batch", "application/json",
		`{"events":[{"type":"HEARTBEAT","source":"s","event_id":"e1","payload":{}}]}`)
	require.Equal(t, 200, code, body)
	conn, err := grpc.NewClient(b.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "jimbot.EventBus"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())
	st, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, &jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST})
	require.NoError(t, err)
	m, err := st.Recv()
	require.NoError(t, err)
	require.Equal(t, "e1", m.GetEvents()[0].GetEventId())
	_, err = jimbotpb.NewEventBusClient(conn).SendCommand(ctx, &jimbotpb.Command{Line: "x"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { c, _ := b.do("GET", "/api/v1/commands/poll", "", ""); return c == 200 }, time.Second, 10*time.Millisecond)
	b.stop()
	// restart on the same store: the event is still there
	b = startBus(t, "--backend=jetstream", "--nats-embedded", "--nats-store", dir)
	conn2, err := grpc.NewClient(b.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn2.Close()
	st, err = jimbotpb.NewEventBusClient(conn2).Subscribe(ctx, &jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST})
	require.NoError(t, err)
	m, err = st.Recv()
	require.NoError(t, err)
	require.Equal(t, "e1", m.GetEvents()[0].GetEventId())
}
