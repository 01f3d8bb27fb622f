package jetstream

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultStream, o.Stream)
	require.Equal(t, DefaultURL, o.URL)
	require.Equal(t, DefaultMaxPending, o.MaxPending)
	require.Equal(t, time.Duration(DefaultMaxAge), o.MaxAge)

	f := func(o Options, want string) {
		t.Helper()
		_, err := New(o)
		require.ErrorContains(t, err, want)
	}
	f(Options{Stream: "a.b"}, "stream name")
	f(Options{SubjectPrefix: "a.>"}, "subject prefix")
	f(Options{MaxPending: -1}, "MaxPending")
	f(Options{Replicas: 7}, "at most 5")
	f(Options{AckTimeout: -time.Second}, "AckTimeout")

	_, err = NewEmbedded(EmbeddedOptions{})
	require.ErrorContains(t, err, "store directory")
}

func TestRedactURLs(t *testing.T) {
	require.Equal(t, "nats://redacted@h:4222,nats://h2:4222", redactURLs("nats://u:pw@h:4222, nats://h2:4222"))
}

// TestClusterForming: the answers of a cluster that is still forming are
// retried at Start and are Unavailable (not InvalidArgument) to a
// subscriber; the no-peers answer is the one a three-node cluster gave in
// CI right after its meta leader was elected.
func TestClusterForming(t *testing.T) {
	api := func(code int, ec natsjs.ErrorCode, desc string) error {
		return fmt.Errorf("create stream: %w", &natsjs.APIError{Code: code, ErrorCode: ec, Description: desc})
	}
	noPeers := api(400, 10005, "no suitable peers for placement, peer offline")
	for _, err := range []error{
		noPeers,
		api(503, 10008, "JetStream system temporarily unavailable"),
		api(500, 10009, "JetStream cluster can not handle request"),
		fmt.Errorf("x: %w", nats.ErrNoResponders),
		natsjs.ErrNoStreamResponse,
		context.DeadlineExceeded,
		natsjs.ErrJetStreamNotEnabled,
	} {
		require.True(t, clusterForming(err), "%v", err)
	}
	badRequest := api(400, 10003, "bad request")
	for _, err := range []error{badRequest, api(400, 10058, "stream name already in use"), io.EOF} {
		require.False(t, clusterForming(err), "%v", err)
	}
	require.Equal(t, codes.Unavailable, status.Code(consumerError(noPeers)))
	require.Equal(t, codes.InvalidArgument, status.Code(consumerError(badRequest)))
	require.Equal(t, codes.Unavailable, status.Code(consumerError(io.EOF)))
}

func TestConsumerName(t *testing.T) {
	f := func(id, want string) {
		t.Helper()
		require.Equal(t, want, consumerName(id))
	}
	f("trainer-1", "jimbus-trainer-1")
	f("a_b", "jimbus-a_b")
	got := consumerName("rl.trainer *>")
	require.True(t, strings.HasPrefix(got, "jimbus-rl_trainer___-"), got)
	require.NotEqual(t, consumerName("a.b"), consumerName("a b"), "replaced characters get a hash")
	require.LessOrEqual(t, len(consumerName(strings.Repeat("x", 500))), 7+48+9)
}

func TestPublishBeforeStartAndAfterStop(t *testing.T) {
	b, err := New(Options{Logger: testLogger()})
	require.NoError(t, err)
	bt := route.NewBatch(nil)
	bt.Add(&jimbotpb.Event{EventId: "x"}, route.TopicDeadletter)
	require.ErrorIs(t, b.Publish(0, bt), ErrNotStarted)
	require.Error(t, b.Healthy())
	require.NoError(t, b.Stop(context.Background()))
	require.NoError(t, b.Stop(context.Background()), "Stop is idempotent")
	require.ErrorIs(t, b.Publish(0, bt), route.ErrClosed)
	require.Error(t, b.Start(context.Background()))
}

// TestPublishSubscribe: events posted through ingest reach a subscriber
// over gRPC, by pattern, numbered by their stream sequence, once each even
// when the client resends them.
func TestPublishSubscribe(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	reg := prometheus.NewRegistry()
	e := startEnv(t, Options{Embedded: emb, Registerer: reg}, true)
	require.NoError(t, e.bus.Healthy())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	money := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: "game.money.*"})
	all := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	require.Equal(t, 2, e.bus.Subscribers())

	list := ids("p", 0, 10)
	e.postOK(list, 5)
	e.postOK(list[:5], 5) // a resend: stored once

	got := recvN(t, all, 10)
	require.Equal(t, list, eventIDs(got))
	for i, ev := range got {
		if i > 0 {
			require.Greater(t, ev.GetBusSequence(), got[i-1].GetBusSequence())
		}
		want := "system.heartbeat"
		if i%5%2 == 1 {
			want = "game.money.changed"
		}
		require.Equal(t, want, ev.GetTopic(), ev.GetEventId())
	}
	m := recvN(t, money, 4)
	require.Equal(t, []string{"p-1", "p-3", "p-6", "p-8"}, eventIDs(m))

	// Nothing more is stored: the next event follows at once.
	publishDirect(t, e.bus, "marker")
	next := recvN(t, all, 1)
	require.Equal(t, "marker", next[0].GetEventId())
	require.Equal(t, got[9].GetBusSequence()+1, next[0].GetBusSequence())

	// A resend that ingest's own window did not catch (another instance,
	// or after a failed acknowledgement) is stored once.
	publishDirect(t, e.bus, "marker")
	publishDirect(t, e.bus, "marker2")
	next = recvN(t, all, 1)
	require.Equal(t, "marker2", next[0].GetEventId())
	require.Equal(t, got[9].GetBusSequence()+2, next[0].GetBusSequence())
	require.Equal(t, 1.0, counterValue(t, e.bus.m.duplicates))
	require.Equal(t, 13.0, counterValue(t, e.bus.m.published))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		name := mf.GetName() + " " + mf.GetHelp()
		require.True(t, strings.HasPrefix(mf.GetName(), "jimbus_jetstream_"), name)
		for _, w := range forbiddenWords {
			require.NotContains(t, strings.ToLower(name), w)
		}
	}
}

// TestStartPositions: an ephemeral subscription starts at the first event,
// a sequence, a time, or the next event.
func TestStartPositions(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb}, false)
	publishDirect(t, e.bus, "s-0", "s-1", "s-2")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	publishDirect(t, e.bus, "s-3", "s-4")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := func(req *jimbotpb.SubscribeRequest, want ...string) {
		t.Helper()
		st := subscribe(t, ctx, e.client, req)
		require.Equal(t, want, eventIDs(recvN(t, st, len(want))))
	}
	f(&jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST},
		"s-0", "s-1", "s-2", "s-3", "s-4")
	f(&jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_SEQUENCE, StartSequence: 4},
		"s-3", "s-4")
	f(&jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_TIME, StartTimeNs: mid.UnixNano()},
		"s-3", "s-4")

	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_NEW})
	publishDirect(t, e.bus, "s-5")
	require.Equal(t, []string{"s-5"}, eventIDs(recvN(t, st, 1)))

	bad := func(req *jimbotpb.SubscribeRequest, code codes.Code) {
		t.Helper()
		st, err := e.client.Subscribe(ctx, req)
		require.NoError(t, err)
		_, err = st.Recv()
		require.Equal(t, code, status.Code(err), "%v", err)
	}
	bad(&jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_SEQUENCE}, codes.InvalidArgument)
	bad(&jimbotpb.SubscribeRequest{StartPosition: jimbotpb.StartPosition_START_POSITION_TIME}, codes.InvalidArgument)
	bad(&jimbotpb.SubscribeRequest{TopicPattern: "game.>.x"}, codes.InvalidArgument)
}

// TestDurableAcks: a SubscribeAck subscriber that reconnects gets what it
// had not acknowledged, at once, and nothing it had; a durable Subscribe
// subscriber counts what was sent as acknowledged; a durable restarted at
// FIRST sees everything again.
func TestDurableAcks(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	sctx, scancel := context.WithCancel(ctx)
	st := subscribeAck(t, sctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "acker"})
	publishDirect(t, e.bus, ids("d", 0, 6)...)
	got := recvN(t, st, 6)
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{AckSequence: got[2].GetBusSequence()}))
	waitAckFloor(t, e.bus, "acker", got[2].GetBusSequence())
	scancel()
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 0 }, 5*time.Second, 5*time.Millisecond)

	st = subscribeAck(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "acker"})
	// JetStream may deliver the events handed back in another order.
	again := recvN(t, st, 3)
	require.ElementsMatch(t, []string{"d-3", "d-4", "d-5"}, eventIDs(again))
	seqs := map[string]uint64{}
	for _, ev := range got {
		seqs[ev.GetEventId()] = ev.GetBusSequence()
	}
	for _, ev := range again {
		require.Equal(t, seqs[ev.GetEventId()], ev.GetBusSequence(), "a redelivery keeps its bus_sequence")
	}

	// A durable Subscribe: what was sent counts as acknowledged.
	sctx, scancel = context.WithCancel(ctx)
	plain := subscribe(t, sctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "plain"})
	publishDirect(t, e.bus, "q-0", "q-1")
	require.Equal(t, []string{"q-0", "q-1"}, eventIDs(recvN(t, plain, 2)))
	waitAckFloor(t, e.bus, "plain", 0)
	scancel()
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 1 }, 5*time.Second, 5*time.Millisecond)
	publishDirect(t, e.bus, "q-2")
	plain = subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "plain"})
	require.Equal(t, []string{"q-2"}, eventIDs(recvN(t, plain, 1)))

	// An explicit start restarts the durable there.
	st = subscribeAck(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "acker2",
		TopicPattern: "game.>", StartPosition: jimbotpb.StartPosition_START_POSITION_FIRST})
	require.Len(t, recvN(t, st, 9), 9)
}

// waitAckFloor waits until the durable consumer of id has acknowledged
// through seq (0: everything delivered).
func waitAckFloor(t testing.TB, b *Bus, id string, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := b.js.Consumer(ctx, b.opts.Stream, consumerName(id))
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false
		}
		if seq == 0 {
			return info.NumAckPending == 0 && info.AckFloor.Stream > 0
		}
		return info.AckFloor.Stream >= seq
	}, 5*time.Second, 10*time.Millisecond)
}

// TestPublishFull: beyond MaxPending events in flight, Publish answers
// route.ErrFull at once and keeps nothing.
func TestPublishFull(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb, MaxPending: 4}, false)
	e.bus.pending.Store(4)
	bt := route.NewBatch(nil)
	bt.Add(&jimbotpb.Event{EventId: "f"}, route.TopicDeadletter)
	require.ErrorIs(t, e.bus.Publish(0, bt), route.ErrFull)
	e.bus.pending.Store(0)
	require.NoError(t, e.bus.Publish(0, bt))
	require.Equal(t, 1.0, counterValue(t, e.bus.m.full))
}

// TestNotAcknowledged: with the server gone, Publish fails with
// ErrNotAcknowledged within AckTimeout, the caller keeps its reference, and
// Healthy reports it.
func TestNotAcknowledged(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb, AckTimeout: 300 * time.Millisecond, HealthInterval: 50 * time.Millisecond}, false)
	require.NoError(t, emb.Stop(context.Background()))
	released := false
	bt := route.NewBatch(func(*route.Batch) { released = true })
	bt.Add(&jimbotpb.Event{EventId: "lost"}, route.TopicDeadletter)
	start := time.Now()
	err := e.bus.Publish(0, bt)
	require.ErrorIs(t, err, ErrNotAcknowledged)
	require.Less(t, time.Since(start), 3*time.Second)
	require.False(t, released, "on an error the caller keeps its reference")
	bt.Release()
	require.True(t, released)
	require.Eventually(t, func() bool { return e.bus.Healthy() != nil }, 3*time.Second, 10*time.Millisecond)
}

// TestOversizeEvent: an event larger than a NATS message is stored as a
// deadletter event without its body.
func TestOversizeEvent(t *testing.T) {
	dir := t.TempDir()
	emb, err := NewEmbedded(EmbeddedOptions{StoreDir: dir, MaxPayload: 64 << 10})
	require.NoError(t, err)
	require.NoError(t, emb.Start(context.Background()))
	t.Cleanup(func() { _ = emb.Stop(context.Background()) })
	e := startEnv(t, Options{Embedded: emb}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	topic, _ := route.TopicOf(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "")
	bt := route.NewBatch(nil)
	bt.Add(&jimbotpb.Event{EventId: "big", PayloadJson: make([]byte, 100<<10)}, topic)
	require.NoError(t, e.bus.Publish(0, bt))
	got := recvN(t, st, 1)[0]
	require.Equal(t, "big", got.GetEventId())
	require.Equal(t, "system.deadletter", got.GetTopic())
	require.Contains(t, got.GetDeadletterReason(), "max_payload")
	require.Empty(t, got.GetPayloadJson())
}

func TestStopEndsStreams(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "stopper"})
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	require.NoError(t, e.bus.Stop(sctx))
	_, err := st.Recv()
	require.ErrorIs(t, err, io.EOF, "the stream ends with status OK")
	require.Zero(t, e.bus.Subscribers())
	late, err := e.client.Subscribe(ctx, &jimbotpb.SubscribeRequest{})
	require.NoError(t, err)
	_, err = late.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// forbiddenWords must never appear in the /metrics body (CONTRACT section 1).
var forbiddenWords = []string{"password", "secret", "key", "token", "private", "stack trace"}

// TestPayloadView: a PAYLOAD_VIEW_JSON subscriber gets the stored events
// without their typed view, a default one with it; a bus whose events carry
// no view refuses PAYLOAD_VIEW_TYPED.
func TestPayloadView(t *testing.T) {
	emb := startEmbedded(t, t.TempDir())
	e := startEnv(t, Options{Embedded: emb}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_JSON})
	def := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	e.postOK(ids("v", 0, 4), 4)
	for i, ev := range recvN(t, js, 4) {
		require.Nil(t, ev.GetPayload(), "event %d", i)
		require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i), string(ev.GetPayloadJson()))
	}
	got := recvN(t, def, 4)
	require.NotNil(t, got[0].GetHeartbeat(), "typed view by default")
	require.NotNil(t, got[1].GetMoneyChanged())

	emb2 := startEmbedded(t, t.TempDir())
	e2 := startEnv(t, Options{Embedded: emb2, NoTypedView: true}, false)
	st, err := e2.client.Subscribe(ctx, &jimbotpb.SubscribeRequest{PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED})
	require.NoError(t, err)
	_, err = st.Recv()
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}
