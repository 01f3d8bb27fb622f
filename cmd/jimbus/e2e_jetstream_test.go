package main

import (
	"context"
	"net"
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

// TestTwoInstancesOneBus: two jimbus processes' worth of wiring share one
// embedded JetStream: an event posted to A reaches a subscriber of B, and
// a command posted over HTTP to A is served by B's poll (every game polls
// its own localhost).
func TestTwoInstancesOneBus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	natsAddr := ln.Addr().String()
	ln.Close()
	a := startBus(t, "--backend=jetstream", "--nats-embedded", "--nats-store", t.TempDir(), "--nats-listen", natsAddr)
	b := startBus(t, "--backend=jetstream", "--nats-url", "nats://"+natsAddr)

	conn, err := grpc.NewClient(b.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, &jimbotpb.SubscribeRequest{TopicPattern: "game.>"})
	require.NoError(t, err)
	_, err = st.Header() // the subscription is live
	require.NoError(t, err)

	a.ok("/api/v1/events/batch", `{"events":[{"type":"MONEY_CHANGED","source":"s","event_id":"x1","payload":{"new_value":3}}]}`)
	m, err := st.Recv()
	require.NoError(t, err)
	require.Equal(t, "x1", m.GetEvents()[0].GetEventId())

	a.ok("/api/v1/commands", `{"type":"select_card","payload":{"index":2}}`)
	require.Eventually(t, func() bool {
		_, body := b.do("GET", "/api/v1/commands/poll", "", "")
		return body == "select_card:2\n"
	}, 5*time.Second, 20*time.Millisecond)
}
