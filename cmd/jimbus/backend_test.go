package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func parseBackend(t *testing.T, args ...string) *backendFlags {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f backendFlags
	f.register(fs)
	require.NoError(t, fs.Parse(args))
	return &f
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestBackendFlagsRefuse(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		_, err := parseBackend(t, args...).build(grpcout.Options{}, prometheus.NewRegistry(), quietLogger)
		require.ErrorContains(t, err, want)
	}
	f("want memory or jetstream", "--backend=kafka")
	f("need --backend=jetstream", "--nats-embedded")
	f("need --backend=jetstream", "--nats-url=nats://127.0.0.1:4222")
	f("needs --nats-store", "--backend=jetstream", "--nats-embedded")
	f("exclude each other", "--backend=jetstream", "--nats-embedded", "--nats-store=x", "--nats-url=nats://h:4222")
	f("need --nats-embedded", "--backend=jetstream", "--nats-store=x")
	f("bad --nats-sync", "--backend=jetstream", "--nats-embedded", "--nats-store="+t.TempDir(), "--nats-sync=sometimes")
	f("needs a cluster", "--backend=jetstream", "--nats-embedded", "--nats-store="+t.TempDir(), "--nats-replicas=3")
	f("must not be negative", "--backend=jetstream", "--nats-ack-wait=-1s")
	f("stream name", "--backend=jetstream", "--nats-stream=a.b")

	d, err := parseSync("always")
	require.NoError(t, err)
	require.Zero(t, d)
	d, err = parseSync("2m")
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, d)
}

// serveBackend serves the EventBus of b on a loopback gRPC server and
// returns a client and a function that stops the server (idempotent).
func serveBackend(t *testing.T, b backend) (jimbotpb.EventBusClient, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	grpcout.NewServiceWith(b.subs, nil, nil).Register(srv)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Stop()
			_ = conn.Close()
		})
	}
	t.Cleanup(stop)
	return jimbotpb.NewEventBusClient(conn), stop
}

func heartbeatBatch(ids ...string) *route.Batch {
	topic, _ := route.TopicOf(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "")
	bt := route.NewBatch(nil)
	for _, id := range ids {
		bt.Add(&jimbotpb.Event{EventId: id, Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "backend_test"}, topic)
	}
	return bt
}

// TestBackendMemory: the default backend is the memory bus; it serves
// SubscribeAck (acknowledgements ignored) and refuses a start position it
// cannot honour.
func TestBackendMemory(t *testing.T) {
	before := goleak.IgnoreCurrent()
	b, err := parseBackend(t).build(grpcout.Options{}, prometheus.NewRegistry(), quietLogger)
	require.NoError(t, err)
	require.Equal(t, backendMemory, b.name)
	require.NotNil(t, b.memory)
	local := ingest.NewCommands(8)
	require.Same(t, local, b.commands(local), "commands stay in this process")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.start(ctx))
	require.NoError(t, b.healthy())
	client, stopServer := serveBackend(t, b)

	st, err := client.SubscribeAck(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{Subscribe: &jimbotpb.SubscribeRequest{SubscriberId: "m"}}))
	_, err = st.Header()
	require.NoError(t, err)
	require.NoError(t, b.publisher.Publish(0, heartbeatBatch("m-1", "m-2")))
	m, err := st.Recv()
	require.NoError(t, err)
	require.Len(t, m.GetEvents(), 2)
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{AckSequence: m.GetEvents()[1].GetBusSequence()}))

	first, err := client.Subscribe(ctx, &jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST})
	require.NoError(t, err)
	_, err = first.Recv()
	require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)

	bad, err := client.SubscribeAck(ctx)
	require.NoError(t, err)
	require.NoError(t, bad.Send(&jimbotpb.SubscribeAckRequest{AckSequence: 1}))
	_, err = bad.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	require.NoError(t, b.stop(ctx))
	stopServer()
	cancel()
	goleak.VerifyNone(t, before)
}

// TestBackendJetStreamEmbedded: --backend=jetstream --nats-embedded starts
// a server in the process, stores events in --nats-store, reports its
// health to grpc.health.v1, and stops everything it started.
func TestBackendJetStreamEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS server")
	}
	before := goleak.IgnoreCurrent()
	dir := t.TempDir()
	b, err := parseBackend(t, "--backend=jetstream", "--nats-embedded", "--nats-store="+dir).
		build(grpcout.Options{MaxBatchEvents: 16}, prometheus.NewRegistry(), quietLogger)
	require.NoError(t, err)
	require.Equal(t, backendJetStream, b.name)
	require.Error(t, b.healthy(), "not started")
	local := ingest.NewCommands(8)
	cmds := b.commands(local)
	require.NotSame(t, local, cmds, "commands travel through NATS")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.start(ctx))
	require.NoError(t, b.healthy())

	hs := health.NewServer()
	stopWatch := watchHealth(hs, b.healthy, 10*time.Millisecond, quietLogger, "", "jimbot.EventBus")
	require.Eventually(t, func() bool {
		r, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: "jimbot.EventBus"})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 5*time.Second, 10*time.Millisecond)

	client, stopServer := serveBackend(t, b)
	require.NoError(t, b.publisher.Publish(0, heartbeatBatch("j-1", "j-2", "j-3")))
	require.NoError(t, cmds.Enqueue(&jimbotpb.Command{Line: "go_to_menu"}))
	require.Eventually(t, func() bool { return local.Len() == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "go_to_menu\n", string(local.Drain(nil)))
	st, err := client.Subscribe(ctx, &jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST})
	require.NoError(t, err)
	var got []string
	for len(got) < 3 {
		m, err := st.Recv()
		require.NoError(t, err)
		for _, ev := range m.GetEvents() {
			got = append(got, ev.GetEventId())
		}
	}
	require.Equal(t, []string{"j-1", "j-2", "j-3"}, got)

	require.NoError(t, b.stop(ctx))
	require.Eventually(t, func() bool {
		r, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: "jimbot.EventBus"})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	}, 5*time.Second, 10*time.Millisecond)
	stopWatch()
	stopWatch() // idempotent
	stopServer()
	cancel()
	goleak.VerifyNone(t, before)
}
