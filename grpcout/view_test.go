package grpcout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/jimbot/jimbus/ingest/decode"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// typedEvent is a heartbeat with its typed view.
func typedEvent(id string) *jimbotpb.Event {
	ev := newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", id)
	ev.Payload = &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Version: "1.0", Uptime: 7}}
	return ev
}

// TestPayloadViews: a JSON subscriber receives the events without their
// typed view, a default and a TYPED subscriber with it, from the same
// shared events, which the JSON copies leave untouched.
func TestPayloadViews(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.False(t, e.bus.WantsTypedView(), "no subscriber")
	js := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_JSON})
	require.False(t, e.bus.WantsTypedView(), "only a JSON subscriber")
	def := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	require.True(t, e.bus.WantsTypedView())
	typ := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED, MaxBatchEvents: 2})

	f := newBatches()
	evs := []*jimbotpb.Event{typedEvent("a"), newEvent(jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "", "b"), typedEvent("c")}
	evs[0].Metadata = map[string]string{"k": "v"}
	want := make([]*jimbotpb.Event, len(evs))
	for i, ev := range evs {
		want[i] = proto.Clone(ev).(*jimbotpb.Event)
	}
	publish(t, e.bus, 0, f.make(evs...))

	got := recvN(js, 3)
	require.NoError(t, got.err)
	for i, ev := range got.events {
		require.Nil(t, ev.Payload, "JSON view, event %d", i)
		w := proto.Clone(want[i]).(*jimbotpb.Event)
		w.Payload = nil
		ev.BusSequence, ev.Topic = 0, ""
		require.True(t, proto.Equal(w, ev), "event %d: %v, want %v", i, ev, w)
	}
	for _, st := range []jimbotpb.EventBus_SubscribeClient{def, typ} {
		got := recvN(st, 3)
		require.NoError(t, got.err)
		for i, ev := range got.events {
			require.True(t, proto.Equal(&jimbotpb.Event{Payload: want[i].Payload}, &jimbotpb.Event{Payload: ev.Payload}), "event %d", i)
		}
	}
	f.requireFreedOnce(t)
	for i, ev := range evs {
		ev.BusSequence, ev.Topic = 0, ""
		require.True(t, proto.Equal(want[i], ev), "shared event %d changed", i)
	}
}

// TestPayloadViewRefused: TYPED from a bus without typed views, and an
// unknown view, end the stream with a status that says why.
func TestPayloadViewRefused(t *testing.T) {
	e := newEnv(t, Options{NoTypedView: true}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for view, code := range map[jimbotpb.PayloadView]codes.Code{
		jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED: codes.FailedPrecondition,
		jimbotpb.PayloadView(9):                 codes.InvalidArgument,
	} {
		st, err := e.client.Subscribe(ctx, &jimbotpb.SubscribeRequest{PayloadView: view})
		require.NoError(t, err)
		_, err = st.Recv()
		require.Equal(t, code, status.Code(err), "%v: %v", view, err)
	}
	// UNSPECIFIED is JSON on such a bus.
	_ = subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	require.False(t, e.bus.WantsTypedView())
}

// TestDeferredViewFilledForTypedSubscriber: a batch decoded while nobody
// wanted the typed view (route.Batch.DeferTyped) is filled, once, when it
// reaches a subscriber that wants the view, and only then.
func TestDeferredViewFilledForTypedSubscriber(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{PayloadView: jimbotpb.PayloadView_PAYLOAD_VIEW_JSON})

	f := newBatches()
	var fills atomic.Int32
	deferred := func(id string) *route.Batch {
		bt := f.make(newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", id))
		bt.DeferTyped(func(b *route.Batch) {
			fills.Add(1) // by a writer
			for _, ev := range b.Events {
				ev.Payload = &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Uptime: 1}}
			}
		})
		return bt
	}
	publish(t, e.bus, 0, deferred("json-only"))
	got := recvN(js, 1)
	require.NoError(t, got.err)
	require.Nil(t, got.events[0].Payload)

	typ := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: "system.>"})
	publish(t, e.bus, 0, deferred("both"))
	got = recvN(typ, 1)
	require.NoError(t, got.err)
	require.Equal(t, int64(1), got.events[0].GetHeartbeat().GetUptime(), "filled for the typed subscriber")
	got = recvN(js, 1)
	require.NoError(t, got.err)
	require.Nil(t, got.events[0].Payload, "still JSON for the JSON subscriber")
	f.requireFreedOnce(t)
	require.Equal(t, int32(1), fills.Load())
}

// TestDeferredViewsBuiltByWriters: the real bodies decoded without their
// typed views, as small requests are (decode.Options.DeferBelow), reach
// typed and JSON subscribers, several of each so that they also share
// encodings: the first writer to read a batch builds its views
// (route.Batch.FillOnRead) while the others wait, and every subscriber
// receives what it receives from the bodies decoded with their views. Run
// with -race, it checks that no writer reads the events while one builds.
func TestDeferredViewsBuiltByWriters(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	typed := jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED
	jsonV := jimbotpb.PayloadView_PAYLOAD_VIEW_JSON
	reqs := []*jimbotpb.SubscribeRequest{
		{PayloadView: typed}, {PayloadView: typed, MaxBatchEvents: 3}, {},
		{PayloadView: jsonV}, {PayloadView: jsonV, MaxBatchEvents: 2},
	}
	streams := subscribeAll(t, ctx, e.client, reqs)

	inline := decode.New(decode.Options{})
	small := decode.New(decode.Options{TypedWanted: e.bus.WantsTypedView, DeferBelow: 1 << 30})
	bodies := realBodies(t)
	var want []*jimbotpb.Event
	for range 3 {
		for _, body := range bodies {
			r := inline.Decode(body.kind, body.body, 1)
			require.Empty(t, r.Fatal)
			for _, ev := range r.Batch.Events {
				want = append(want, ownEvent(t, ev))
			}
			r.Batch.Release()
			inline.ReleaseResult(r)

			r = small.Decode(body.kind, body.body, 1)
			require.True(t, r.Batch.TypedDeferred())
			publish(t, e.bus, 0, r.Batch)
			small.ReleaseResult(r)
		}
	}
	var views int
	for _, w := range want {
		if w.Payload != nil {
			views++
		}
	}
	require.Positive(t, views)
	for i, st := range streams {
		got := recvN(st, len(want))
		require.NoError(t, got.err, "subscriber %d", i)
		for k, w := range want {
			ev := got.events[k]
			if strings.HasPrefix(w.EventId, "jb-") && strings.HasPrefix(ev.EventId, "jb-") {
				w = proto.Clone(w).(*jimbotpb.Event)
				w.EventId = ev.EventId // assigned, one per event decoded
			}
			requireReceived(t, reqs[i], ev, w, "subscriber %d, event %d", i, k)
		}
	}
}

// TestCopyEnvelopeCopiesEveryField sets every field of an Event but the
// typed oneof and checks copyEnvelope copies it: a field added to the proto
// and forgotten in copyEnvelope fails here.
func TestCopyEnvelopeCopiesEveryField(t *testing.T) {
	src := everyField()       // every field but the oneof, and unknown fields
	src.ClientTimestamp = 1.5 // proto.Clone does not keep everyField's -0
	want := proto.Clone(src).(*jimbotpb.Event)
	src.Payload = &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Uptime: 3}}

	var dst jimbotpb.Event
	copyEnvelope(&dst, src)
	require.True(t, proto.Equal(want, &dst), "got %v\nwant %v", &dst, want)

	v := newJSONView(1)
	require.Same(t, want, v.of(want), "no typed view: the event itself")
	c := v.of(src)
	require.NotSame(t, src, c)
	require.True(t, proto.Equal(want, c))
	require.NotNil(t, src.Payload, "the shared event keeps its view")
	v.of(src) // beyond the initial capacity
	v.reset()
	require.Zero(t, v.n)
}

// TestSharedEncodings: subscribers that take whole batches in the same view
// (three typed, two JSON, one of each with small messages so that batches
// split across Sends) receive the events encoded once for all of them, and
// each receives exactly what it would receive alone; a subscriber on some
// topics only uses those encodings, but does not count towards them.
func TestSharedEncodings(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	typed := jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED
	jsonV := jimbotpb.PayloadView_PAYLOAD_VIEW_JSON
	reqs := []*jimbotpb.SubscribeRequest{
		{PayloadView: typed}, {PayloadView: typed, MaxBatchEvents: 7}, {},
		{PayloadView: jsonV}, {PayloadView: jsonV, MaxBatchEvents: 5},
		{PayloadView: typed, TopicPattern: "game.hand.*"},
	}
	streams := subscribeAll(t, ctx, e.client, reqs)

	// The real bodies, decoded with their typed views, 3 times over.
	var want []*jimbotpb.Event
	f := newBatches()
	for round := range 3 {
		for _, evs := range realEvents(t) {
			for _, ev := range evs {
				ev.EventId = fmt.Sprintf("%s-%d", ev.EventId, round)
				want = append(want, proto.Clone(ev).(*jimbotpb.Event))
			}
			publish(t, e.bus, 0, f.make(evs...))
		}
	}
	narrow := 0
	for _, ev := range want {
		if strings.HasPrefix(ev.Topic, "game.hand.") {
			narrow++
		}
	}
	require.Positive(t, narrow)
	for i, st := range streams {
		n := len(want)
		if reqs[i].TopicPattern != "" {
			n = narrow
		}
		got := recvN(st, n)
		require.NoError(t, got.err, "subscriber %d", i)
		k := 0
		for _, w := range want {
			if reqs[i].TopicPattern != "" && !strings.HasPrefix(w.Topic, "game.hand.") {
				continue
			}
			requireReceived(t, reqs[i], got.events[k], w, "subscriber %d, event %d", i, k)
			k++
		}
	}
	f.requireFreedOnce(t)
	// 5 subscribers take every batch: 3 typed and 2 JSON share encodings;
	// the narrow typed one uses the typed encodings the others made.
	shared := counterValue(t, e.reg, "jimbus_grpc_events_sent_shared_total")
	require.Equal(t, float64(5*len(want)+narrow), shared, "events sent from shared encodings")
}

// subscribeAll subscribes once for each request.
func subscribeAll(t testing.TB, ctx context.Context, client jimbotpb.EventBusClient, reqs []*jimbotpb.SubscribeRequest) []jimbotpb.EventBus_SubscribeClient {
	t.Helper()
	streams := make([]jimbotpb.EventBus_SubscribeClient, len(reqs))
	for i, r := range reqs {
		streams[i] = subscribe(t, ctx, client, r)
	}
	return streams
}

// requireReceived checks that a subscriber of req received want as got:
// without its typed view for a JSON subscriber, bus_sequence aside.
func requireReceived(t testing.TB, req *jimbotpb.SubscribeRequest, got, want *jimbotpb.Event, msg string, args ...any) {
	t.Helper()
	w := proto.Clone(want).(*jimbotpb.Event)
	if req.PayloadView == jimbotpb.PayloadView_PAYLOAD_VIEW_JSON {
		w.Payload = nil
	}
	w.BusSequence = got.BusSequence
	if !proto.Equal(w, got) {
		t.Fatalf(msg+":\n%v\nwant\n%v", append(args, got, w)...)
	}
}

// realBody is a real BalatroMCP request body and the endpoint it goes to.
type realBody struct {
	kind decode.Kind
	body []byte
}

// realBodies reads the real BalatroMCP request bodies.
func realBodies(t testing.TB) []realBody {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "balatromcp", "request_*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	var out []realBody
	for _, name := range names {
		body, err := os.ReadFile(name)
		require.NoError(t, err)
		kind := decode.KindBatch
		if filepath.Base(name) == "request_connection_test_body.json" {
			kind = decode.KindEvent
		}
		out = append(out, realBody{kind, body})
	}
	return out
}

// ownEvent copies ev through the wire into memory of its own: a Clone would
// share the strings, which alias the decoder's pooled arena.
func ownEvent(t testing.TB, ev *jimbotpb.Event) *jimbotpb.Event {
	b, err := proto.Marshal(ev)
	require.NoError(t, err)
	own := new(jimbotpb.Event)
	require.NoError(t, proto.Unmarshal(b, own))
	return own
}

// realEvents decodes the real BalatroMCP bodies with their typed views and
// returns each body's events, in memory of their own.
func realEvents(t testing.TB) [][]*jimbotpb.Event {
	t.Helper()
	d := decode.New(decode.Options{})
	var out [][]*jimbotpb.Event
	for _, body := range realBodies(t) {
		r := d.Decode(body.kind, body.body, 1)
		require.Empty(t, r.Fatal)
		var evs []*jimbotpb.Event
		for _, ev := range r.Batch.Events {
			evs = append(evs, ownEvent(t, ev))
		}
		r.Batch.Release()
		d.ReleaseResult(r)
		out = append(out, evs)
	}
	return out
}
