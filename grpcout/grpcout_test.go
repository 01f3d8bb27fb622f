package grpcout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func TestParsePolicy(t *testing.T) {
	f := func(in string, want SlowPolicy) {
		t.Helper()
		got, err := ParsePolicy(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.True(t, strings.EqualFold(in, got.String()))
		var p SlowPolicy
		require.NoError(t, p.Set(in))
		require.Equal(t, want, p)
	}
	f("block", Block)
	f("drop-oldest", DropOldest)
	f("disconnect", Disconnect)
	f("DROP-OLDEST", DropOldest)
	for _, bad := range []string{"", "drop", "drop_oldest ", "none"} {
		_, err := ParsePolicy(bad)
		require.Error(t, err, bad)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	require.Positive(t, o.Shards)
	require.Equal(t, DefaultRingSize, o.RingSize)
	require.Equal(t, DefaultQueueSize, o.QueueSize)
	require.Equal(t, DefaultMaxBatchEvents, o.MaxBatchEvents)
	require.Equal(t, Block, o.SlowPolicy)
	require.Equal(t, DefaultBlockTimeout, o.BlockTimeout)
	require.Equal(t, DefaultMaxSubscribers, o.MaxSubscribers)
	require.NotNil(t, o.Logger)

	_, err = New(Options{QueueSize: -1, BlockTimeout: -time.Second, SlowPolicy: 9})
	require.ErrorContains(t, err, "QueueSize")
	require.ErrorContains(t, err, "BlockTimeout")
	require.ErrorContains(t, err, "SlowPolicy")
}

// topicSet is a plainly written predicate per subscriber, independent of the
// matcher under test.
type topicSet func(topic string) bool

func segs(topic string) int { return strings.Count(topic, ".") + 1 }

// TestRouting publishes hand-built batches to subscribers with different
// patterns: each receives exactly its events, each once, in order, with
// bus_sequence increasing; every batch is freed exactly once.
func TestRouting(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type sub struct {
		name string
		req  *jimbotpb.SubscribeRequest
		want topicSet
		max  int
	}
	subs := []sub{
		{"all", &jimbotpb.SubscribeRequest{SubscriberId: "all"}, func(string) bool { return true }, 0},
		{"all-small", &jimbotpb.SubscribeRequest{TopicPattern: ">", MaxBatchEvents: 7}, func(string) bool { return true }, 7},
		{"game3", &jimbotpb.SubscribeRequest{TopicPattern: "game.*.*"}, func(tp string) bool {
			return strings.HasPrefix(tp, "game.") && segs(tp) == 3
		}, 0},
		{"heartbeat", &jimbotpb.SubscribeRequest{TopicPattern: "system.heartbeat"}, func(tp string) bool {
			return tp == "system.heartbeat"
		}, 0},
		{"union", &jimbotpb.SubscribeRequest{TopicPattern: "system.heartbeat", TopicPatterns: []string{"learning.>", "game.money.changed"}},
			func(tp string) bool {
				return tp == "system.heartbeat" || strings.HasPrefix(tp, "learning.") || tp == "game.money.changed"
			}, 0},
		{"system2", &jimbotpb.SubscribeRequest{TopicPatterns: []string{"system.*"}}, func(tp string) bool {
			return strings.HasPrefix(tp, "system.") && segs(tp) == 2
		}, 0},
	}
	streams := make([]jimbotpb.EventBus_SubscribeClient, len(subs))
	for i, s := range subs {
		streams[i] = subscribe(t, ctx, e.client, s.req)
	}
	require.Equal(t, len(subs), e.bus.Subscribers())

	kinds := []struct {
		typ jimbotpb.EventType
		sub string
	}{
		{jimbotpb.EventType_EVENT_TYPE_GAME_STATE, ""},
		{jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, ""},
		{jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED, ""},
		{jimbotpb.EventType_EVENT_TYPE_SCORING, "score_update"},
		{jimbotpb.EventType_EVENT_TYPE_SCORING, ""},
		{jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, ""},
		{jimbotpb.EventType_EVENT_TYPE_ERROR, ""},
		{jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST, ""},
		{jimbotpb.EventType_EVENT_TYPE_STRATEGY_REQUEST, ""},
	}
	f := newBatches()
	rng := rand.New(rand.NewPCG(1, 2))
	var all []*jimbotpb.Event
	var topics []string
	for bi := range 40 {
		n := 1 + rng.IntN(30)
		evs := make([]*jimbotpb.Event, n)
		for i := range evs {
			k := kinds[rng.IntN(len(kinds))]
			evs[i] = newEvent(k.typ, k.sub, fmt.Sprintf("b%d-e%d", bi, i))
			id, _ := route.TopicOf(k.typ, k.sub)
			topics = append(topics, id.String())
		}
		all = append(all, evs...)
		publish(t, e.bus, uint32(bi), f.make(evs...))
	}
	// One batch that no subscriber but ">" matches.
	tail := newEvent(jimbotpb.EventType_EVENT_TYPE_KNOWLEDGE_UPDATE, "", "tail")
	all = append(all, tail)
	topics = append(topics, "knowledge.update")
	publish(t, e.bus, 0, f.make(tail))

	var wg sync.WaitGroup
	for i, s := range subs {
		var wantIDs []string
		for j, ev := range all {
			if s.want(topics[j]) {
				wantIDs = append(wantIDs, ev.EventId)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := recvN(streams[i], len(wantIDs))
			if !assertNoErr(t, r.err, s.name) {
				return
			}
			ids := make([]string, len(r.events))
			var last uint64
			for j, ev := range r.events {
				ids[j] = ev.EventId
				if ev.BusSequence <= last {
					t.Errorf("%s: bus_sequence %d after %d", s.name, ev.BusSequence, last)
				}
				last = ev.BusSequence
				if !s.want(ev.Topic) {
					t.Errorf("%s: got topic %q", s.name, ev.Topic)
				}
			}
			if !slicesEqual(wantIDs, ids) {
				t.Errorf("%s: got %d events, want %d (or out of order)", s.name, len(ids), len(wantIDs))
			}
			if s.max > 0 && r.maxMsg > s.max {
				t.Errorf("%s: a message of %d events, max %d", s.name, r.maxMsg, s.max)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, e.bus.Stop(ctx))
	// Nothing more arrived: each stream ends cleanly.
	for i := range streams {
		r := recvAll(streams[i])
		require.Empty(t, r.events, subs[i].name)
		require.True(t, isEOF(r.err), "%s: %v", subs[i].name, r.err)
	}
	e.close()
	f.requireFreedOnce(t)
	require.Equal(t, float64(len(all)), counterValue(t, e.reg, "jimbus_fanout_events_total"))
	require.Equal(t, float64(len(all)), counterValue(t, e.reg, "jimbus_grpc_subscriber_events_sent_total", "subscriber", "all"))
}

func assertNoErr(t *testing.T, err error, name string) bool {
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return false
	}
	return true
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOrderingConcurrent: several goroutines publish their own sequences at
// once; every subscriber sees each goroutine's events in its order.
func TestOrderingConcurrent(t *testing.T) {
	e := newEnv(t, Options{RingSize: 64, QueueSize: 16}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: ">"})
	hb := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: "system.heartbeat"})

	const pubs, perPub, size = 4, 150, 10
	f := newBatches()
	var wg sync.WaitGroup
	for g := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perPub {
				evs := make([]*jimbotpb.Event, size)
				for i := range evs {
					typ := jimbotpb.EventType_EVENT_TYPE_GAME_STATE
					if i%2 == 0 {
						typ = jimbotpb.EventType_EVENT_TYPE_HEARTBEAT
					}
					evs[i] = newEvent(typ, "", fmt.Sprintf("%d:%d", g, k*size+i))
				}
				publish(t, e.bus, uint32(g), f.make(evs...))
			}
		}()
	}
	check := func(st jimbotpb.EventBus_SubscribeClient, n int, name string) {
		r := recvN(st, n)
		require.NoError(t, r.err, name)
		next := make([]int, pubs)
		for _, ev := range r.events {
			var g, k int
			_, err := fmt.Sscanf(ev.EventId, "%d:%d", &g, &k)
			require.NoError(t, err)
			require.GreaterOrEqual(t, k, next[g], "%s: publisher %d out of order", name, g)
			next[g] = k + 1
		}
	}
	var rg sync.WaitGroup
	rg.Go(func() { check(all, pubs*perPub*size, "all") })
	rg.Go(func() { check(hb, pubs*perPub*size/2, "heartbeat") })
	rg.Wait()
	wg.Wait()
	e.close()
	f.requireFreedOnce(t)
}

// TestOrderingChained: goroutines take turns publishing, each after the
// previous Publish returned (as one BalatroMCP client waiting for each
// answer, served by different connections); subscribers see the global
// order exactly, although the publishes used different shards.
func TestOrderingChained(t *testing.T) {
	e := newEnv(t, Options{Shards: 8}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})

	const pubs, total = 5, 500
	f := newBatches()
	batons := make([]chan int, pubs)
	for i := range batons {
		batons[i] = make(chan int, 1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range pubs {
		wg.Go(func() {
			for {
				var k int
				select {
				case k = <-batons[g]:
				case <-done:
					return
				}
				if k == total {
					close(done)
					return
				}
				ev := newEvent(jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED, "", fmt.Sprint(k))
				ev2 := newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", fmt.Sprintf("%d+", k))
				publish(t, e.bus, uint32(g*7919), f.make(ev, ev2))
				batons[(g+1)%pubs] <- k + 1
			}
		})
	}
	batons[0] <- 0
	r := recvN(st, 2*total)
	require.NoError(t, r.err)
	for k := range total {
		require.Equal(t, fmt.Sprint(k), r.events[2*k].EventId)
		require.Equal(t, fmt.Sprintf("%d+", k), r.events[2*k+1].EventId)
	}
	wg.Wait()
	e.close()
	f.requireFreedOnce(t)
}

// stalledConn dials with the smallest flow-control windows, so that a
// subscriber that never reads blocks the server's Send quickly.
func stalledConn(e *testEnv) jimbotpb.EventBusClient {
	return jimbotpb.NewEventBusClient(e.dial(
		grpc.WithInitialWindowSize(64<<10),
		grpc.WithInitialConnWindowSize(64<<10),
	))
}

// publishBig publishes n batches of per events of about 1 KiB each.
func publishBig(t *testing.T, b *Bus, f *batches, n, per int) {
	publishPaced(t, b, f, n, per, nil)
}

// publishPaced publishes as publishBig; with paced set, it publishes batch k
// only once *paced (the events a subscriber received) reached (k-2)*per:
// the subscriber is fast, the publisher never runs more than two batches
// ahead of it, so its queue cannot overflow.
func publishPaced(t *testing.T, b *Bus, f *batches, n, per int, paced *atomic.Int64) {
	for k := range n {
		for paced != nil && paced.Load() < int64((k-2)*per) {
			time.Sleep(20 * time.Microsecond)
		}
		evs := make([]*jimbotpb.Event, per)
		for i := range evs {
			evs[i] = bigEvent(fmt.Sprintf("%d/%d", k, i), 1024)
		}
		publish(t, b, uint32(k), f.make(evs...))
	}
}

// recvCounting receives n events as recvN does, counting them in got as
// they arrive.
func recvCounting(st jimbotpb.EventBus_SubscribeClient, n int, got *atomic.Int64) received {
	var r received
	for len(r.events) < n {
		eb, err := st.Recv()
		if err != nil {
			r.err = err
			return r
		}
		r.events = append(r.events, eb.Events...)
		got.Store(int64(len(r.events)))
	}
	return r
}

// slowAndFast publishes n batches of per big events, paced by the fast
// subscriber, and returns what the fast one received.
func slowAndFast(t *testing.T, e *testEnv, f *batches, fast jimbotpb.EventBus_SubscribeClient, n, per int) received {
	var got atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { publishPaced(t, e.bus, f, n, per, &got) })
	r := recvCounting(fast, n*per, &got)
	got.Store(int64(n * per)) // let the publisher finish whatever happened
	wg.Wait()
	return r
}

// oneMessage is the most batches of per events one message can hold (a
// partial one at each end).
func oneMessage(per int) int { return DefaultMaxBatchEvents/per + 2 }

func TestSlowSubscriberDropOldest(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 4, SlowPolicy: DropOldest}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slowCtx, slowCancel := context.WithCancel(ctx)
	slow := subscribe(t, slowCtx, stalledConn(e), &jimbotpb.SubscribeRequest{SubscriberId: "slow"})
	fast := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "fast"})

	const n, per = 300, 20
	f := newBatches()
	start := time.Now()
	r := slowAndFast(t, e, f, fast, n, per)
	require.NoError(t, r.err)
	require.Len(t, r.events, n*per)
	t.Logf("fast subscriber got %d events in %v while the slow one read nothing", n*per, time.Since(start))
	for i, ev := range r.events {
		require.Equal(t, fmt.Sprintf("%d/%d", i/per, i%per), ev.EventId)
	}
	require.Eventually(t, func() bool {
		return counterValue(t, e.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "slow") > 0
	}, 5*time.Second, time.Millisecond)
	require.Zero(t, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "fast"))

	// The slow one reads what was not dropped: in order, and it ends in
	// order when it leaves.
	got := recvN(slow, 1)
	require.NoError(t, got.err)
	slowCancel()
	_ = recvAll(slow)
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 1 }, 5*time.Second, time.Millisecond)
	e.close()
	f.requireFreedOnce(t)
}

func TestSlowSubscriberDisconnect(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 4, SlowPolicy: Disconnect}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow := subscribe(t, ctx, stalledConn(e), &jimbotpb.SubscribeRequest{SubscriberId: "slow"})
	fast := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "fast"})

	const n, per = 300, 20
	f := newBatches()
	r := slowAndFast(t, e, f, fast, n, per)
	require.NoError(t, r.err)
	require.Len(t, r.events, n*per)
	require.Equal(t, 1.0, counterValue(t, e.reg, "jimbus_grpc_subscriber_disconnects_total", "reason", "queue_full"))
	require.Equal(t, 1, e.bus.Subscribers(), "the slow subscriber left the routing table")
	// Its queue was released at once, although its client reads nothing:
	// only the one message its writer is sending may hold batches.
	require.Eventually(t, func() bool { return f.live.Load() <= int64(oneMessage(per)) }, 5*time.Second, time.Millisecond,
		"live batches: %d", f.live.Load())

	// When the slow client reads, it gets what gRPC had buffered, then
	// ResourceExhausted.
	sr := recvAll(slow)
	require.Equal(t, codes.ResourceExhausted, status.Code(sr.err), "%v", sr.err)
	require.Contains(t, status.Convert(sr.err).Message(), "too slow")
	require.Positive(t, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "slow"))
	e.close()
	f.requireFreedOnce(t)
}

func TestSlowSubscriberBlock(t *testing.T) {
	const blockFor = 300 * time.Millisecond
	e := newEnv(t, Options{QueueSize: 2, SlowPolicy: Block, BlockTimeout: blockFor}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow := subscribe(t, ctx, stalledConn(e), &jimbotpb.SubscribeRequest{SubscriberId: "slow"})
	fast := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "fast"})

	const n, per = 300, 20
	f := newBatches()
	start := time.Now()
	r := slowAndFast(t, e, f, fast, n, per)
	elapsed := time.Since(start)
	require.NoError(t, r.err)
	require.Len(t, r.events, n*per, "Block delays the others but loses nothing for them")
	require.GreaterOrEqual(t, elapsed, blockFor, "the dispatcher waited for the slow subscriber")
	require.Equal(t, 1.0, counterValue(t, e.reg, "jimbus_grpc_subscriber_disconnects_total", "reason", "block_timeout"))
	require.Positive(t, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "slow"))

	sr := recvAll(slow)
	require.Equal(t, codes.ResourceExhausted, status.Code(sr.err), "%v", sr.err)
	require.Contains(t, status.Convert(sr.err).Message(), "stayed full")
	e.close()
	f.requireFreedOnce(t)
}

// TestBlockLosesNothing: under Block, a subscriber that reads slowly but
// keeps reading gets every event.
func TestBlockLosesNothing(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 2, RingSize: 8, Shards: 1, SlowPolicy: Block}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{MaxBatchEvents: 3})
	const n, per = 100, 5
	f := newBatches()
	go func() {
		for k := range n {
			evs := make([]*jimbotpb.Event, per)
			for i := range evs {
				evs[i] = newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", fmt.Sprint(k*per+i))
			}
			publish(t, e.bus, 0, f.make(evs...))
		}
	}()
	var got int
	for got < n*per {
		eb, err := st.Recv()
		require.NoError(t, err)
		for _, ev := range eb.Events {
			require.Equal(t, fmt.Sprint(got), ev.EventId)
			got++
		}
		time.Sleep(200 * time.Microsecond)
	}
	require.Zero(t, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "anonymous"))
	e.close()
	f.requireFreedOnce(t)
}

// TestSubscriberDisconnect: a subscriber that goes away mid-stream is
// removed, its queued batches released, its goroutines gone; it can
// reconnect.
func TestSubscriberDisconnect(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 64}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	keep := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: "keep", TopicPattern: "system.heartbeat"})
	subCtx, subCancel := context.WithCancel(ctx)
	conn := stalledConn(e)
	st := subscribe(t, subCtx, conn, &jimbotpb.SubscribeRequest{SubscriberId: "leaver"})
	require.Equal(t, 2, e.bus.Subscribers())

	f := newBatches()
	publishBig(t, e.bus, f, 40, 20) // more than the windows hold: some stay queued
	r := recvN(st, 10)
	require.NoError(t, r.err)
	subCancel()
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 1 }, 5*time.Second, time.Millisecond)
	// Nothing matched "keep", and the leaver's queue was released.
	f.requireFreedOnce(t)

	// It reconnects with the same id and receives what follows.
	st = subscribe(t, ctx, conn, &jimbotpb.SubscribeRequest{SubscriberId: "leaver"})
	require.Equal(t, 2, e.bus.Subscribers())
	publish(t, e.bus, 0, f.make(newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "again")))
	r = recvN(st, 1)
	require.NoError(t, r.err)
	require.Equal(t, "again", r.events[0].EventId)
	r = recvN(keep, 1)
	require.NoError(t, r.err)
	require.Equal(t, "again", r.events[0].EventId)

	e.close()
	f.requireFreedOnce(t)
	goleak.VerifyNone(t)
}

// TestStopDrains: everything published before Stop reaches the connected
// subscribers, then their streams end with io.EOF.
func TestStopDrains(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 8}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	b := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: "game.*.*"})

	const n, per = 200, 50
	f := newBatches()
	for k := range n {
		evs := make([]*jimbotpb.Event, per)
		for i := range evs {
			evs[i] = newEvent(jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "", fmt.Sprint(k*per+i))
		}
		publish(t, e.bus, uint32(k), f.make(evs...))
	}
	results := make([]received, 2)
	var wg sync.WaitGroup
	for i, st := range []jimbotpb.EventBus_SubscribeClient{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = recvAll(st)
		}()
	}
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	require.NoError(t, e.bus.Stop(stopCtx))
	wg.Wait()
	for _, r := range results {
		require.True(t, isEOF(r.err), "%v", r.err)
		require.Len(t, r.events, n*per)
		for i, ev := range r.events {
			require.Equal(t, fmt.Sprint(i), ev.EventId)
		}
	}
	f.requireFreedOnce(t)

	// After Stop: publish and subscribe are refused; Stop again is fine.
	bt := f.make(newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "late"))
	require.ErrorIs(t, e.bus.Publish(0, bt), route.ErrClosed)
	bt.Release()
	st, err := e.client.Subscribe(ctx, &jimbotpb.SubscribeRequest{})
	require.NoError(t, err)
	_, err = st.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.NoError(t, e.bus.Stop(ctx))
	require.Error(t, e.bus.Start(ctx))

	e.close()
	goleak.VerifyNone(t)
}

// TestStopWakesIdleWriters: Stop ends the streams of subscribers whose
// writers are parked with nothing to send, at once and without error (the
// dispatcher wakes them as it exits), also one that receives nothing.
func TestStopWakesIdleWriters(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	b := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: "system.none"})
	f := newBatches()
	publish(t, e.bus, 0, f.make(newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "1")))
	eb, err := a.Recv()
	require.NoError(t, err)
	require.Len(t, eb.Events, 1)
	time.Sleep(50 * time.Millisecond) // both writers park

	stopCtx, stopCancel := context.WithTimeout(ctx, 5*time.Second)
	defer stopCancel()
	start := time.Now()
	require.NoError(t, e.bus.Stop(stopCtx))
	require.Less(t, time.Since(start), time.Second)
	for _, st := range []jimbotpb.EventBus_SubscribeClient{a, b} {
		r := recvAll(st)
		require.True(t, isEOF(r.err), "%v", r.err)
		require.Empty(t, r.events)
	}
	f.requireFreedOnce(t)
	e.close()
	goleak.VerifyNone(t)
}

// TestStopDeadline: a subscriber that never reads cannot hold Stop past its
// deadline; what is left is released.
func TestStopDeadline(t *testing.T) {
	e := newEnv(t, Options{QueueSize: 1024, BlockTimeout: time.Minute}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = subscribe(t, ctx, stalledConn(e), &jimbotpb.SubscribeRequest{})
	f := newBatches()
	publishBig(t, e.bus, f, 100, 20)
	stopCtx, stopCancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stopCancel()
	err := e.bus.Stop(stopCtx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// Only the message the writer is stuck sending holds batches.
	require.LessOrEqual(t, f.live.Load(), int64(oneMessage(20)), "live batches")
	e.srv.Stop() // as cmd does after Stop: the stuck Send returns
	f.requireFreedOnce(t)
	e.once.Do(func() {
		for _, c := range e.conns {
			_ = c.Close()
		}
	})
}

func TestPublishFullAndStopWithoutStart(t *testing.T) {
	b, err := New(Options{Shards: 1, RingSize: 2, Logger: discard})
	require.NoError(t, err)
	f := newBatches()
	ev := func() *jimbotpb.Event { return newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "x") }
	require.NoError(t, b.Publish(0, f.make(ev())))
	require.NoError(t, b.Publish(0, f.make(ev())))
	full := f.make(ev())
	require.ErrorIs(t, b.Publish(0, full), route.ErrFull)
	full.Release()
	require.NoError(t, b.Stop(context.Background()))
	f.requireFreedOnce(t)
	require.Equal(t, uint64(2), b.seq.Load(), "Stop without Start still dispatched what was published")
}

func TestBadPattern(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, req := range []*jimbotpb.SubscribeRequest{
		{TopicPattern: "game..state"},
		{TopicPattern: "game.>.state"},
		{TopicPatterns: []string{"system.heartbeat", ""}},
		{TopicPattern: "ga*me.state"},
		{TopicPatterns: make([]string, route.MaxPatterns+1)},
	} {
		st, err := e.client.Subscribe(ctx, req)
		require.NoError(t, err)
		_, err = st.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v: %v", req, err)
	}
	require.Zero(t, e.bus.Subscribers())
}

func TestMaxSubscribers(t *testing.T) {
	e := newEnv(t, Options{MaxSubscribers: 2}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c1, cancel1 := context.WithCancel(ctx)
	_ = subscribe(t, c1, e.client, &jimbotpb.SubscribeRequest{})
	_ = subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	st, err := e.client.Subscribe(ctx, &jimbotpb.SubscribeRequest{})
	require.NoError(t, err)
	_, err = st.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	cancel1()
	require.Eventually(t, func() bool { return e.bus.Subscribers() == 1 }, 5*time.Second, time.Millisecond)
	_ = subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
}

type fakePublisher struct {
	mu      sync.Mutex
	batchID string
	evs     []*jimbotpb.Event
	err     error
}

func (p *fakePublisher) PublishEvents(_ context.Context, batchID string, evs []*jimbotpb.Event) (*jimbotpb.PublishResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	p.batchID, p.evs = batchID, evs
	return &jimbotpb.PublishResponse{Success: true, Accepted: int32(len(evs))}, nil
}

type fakeCommands struct {
	mu   sync.Mutex
	cmds []string
}

func (q *fakeCommands) Enqueue(cmd *jimbotpb.Command) error {
	if cmd.GetLine() == "" && cmd.GetType() == "" {
		return errors.New("empty command")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cmds = append(q.cmds, cmd.GetLine())
	return nil
}

func TestServicePublishAndCommands(t *testing.T) {
	pub := &fakePublisher{}
	cmds := &fakeCommands{}
	e := newEnv(t, Options{}, pub, cmds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := e.client.PublishEvent(ctx, &jimbotpb.Event{EventId: "one"})
	require.NoError(t, err)
	require.True(t, resp.Success)
	require.Equal(t, "", pub.batchID)
	require.Equal(t, "one", pub.evs[0].EventId)

	resp, err = e.client.PublishBatch(ctx, &jimbotpb.EventBatch{BatchId: "b1", Events: []*jimbotpb.Event{{EventId: "x"}, {EventId: "y"}}})
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.Accepted)
	require.Equal(t, "b1", pub.batchID)
	require.Len(t, pub.evs, 2)

	for perr, code := range map[error]codes.Code{
		route.ErrFull:                              codes.Unavailable,
		fmt.Errorf("x: %w", route.ErrClosed):       codes.Unavailable,
		status.Error(codes.InvalidArgument, "bad"): codes.InvalidArgument,
		errors.New("boom"):                         codes.Internal,
	} {
		pub.mu.Lock()
		pub.err = perr
		pub.mu.Unlock()
		_, err = e.client.PublishEvent(ctx, &jimbotpb.Event{})
		require.Equal(t, code, status.Code(err), "%v", perr)
	}

	resp, err = e.client.SendCommand(ctx, &jimbotpb.Command{Line: "select_card:0"})
	require.NoError(t, err)
	require.True(t, resp.Success)
	require.Equal(t, []string{"select_card:0"}, cmds.cmds)
	_, err = e.client.SendCommand(ctx, &jimbotpb.Command{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Without a Publisher or a CommandQueue the RPCs are unimplemented.
	e2 := newEnv(t, Options{}, nil, nil)
	_, err = e2.client.PublishBatch(ctx, &jimbotpb.EventBatch{})
	require.Equal(t, codes.Unimplemented, status.Code(err))
	_, err = e2.client.SendCommand(ctx, &jimbotpb.Command{Line: "x"})
	require.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Options{MaxSubscriberLabels: 3}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := []string{"a", "b", "my-Token-reader", "c", "d", strings.Repeat("é", 100)}
	streams := make([]jimbotpb.EventBus_SubscribeClient, len(ids))
	for i, id := range ids {
		streams[i] = subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{SubscriberId: id})
	}
	f := newBatches()
	ev := newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", "m")
	publish(t, e.bus, 0, f.make(ev))
	for _, st := range streams {
		r := recvN(st, 1)
		require.NoError(t, r.err)
	}
	require.Equal(t, float64(len(ids)), counterValue(t, e.reg, "jimbus_grpc_subscribers"))
	require.Equal(t, 1.0, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_sent_total", "subscriber", "a"))
	require.Equal(t, 1.0, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_sent_total", "subscriber", "redacted"))
	require.Equal(t, 3.0, counterValue(t, e.reg, "jimbus_grpc_subscriber_events_sent_total", "subscriber", "other"))
	require.Equal(t, float64(len(ids)), counterValue(t, e.reg, "jimbus_ingest_to_send_seconds"))
	require.Equal(t, float64(len(ids)), counterValue(t, e.reg, "jimbus_fanout_deliveries_total"))

	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	require.NotEmpty(t, mfs)
	for _, mf := range mfs {
		require.True(t, strings.HasPrefix(mf.GetName(), "jimbus_"), mf.GetName())
		text := strings.ToLower(mf.String())
		for _, w := range forbiddenWords {
			require.NotContains(t, text, w, mf.GetName())
		}
	}
	e.close()
	f.requireFreedOnce(t)
}

// TestChurn: subscribers come and go, some reading, some stalled, while
// batches are published, under each policy. Nothing leaks, nothing is freed
// twice, every stream ends.
func TestChurn(t *testing.T) {
	for _, policy := range []SlowPolicy{Block, DropOldest, Disconnect} {
		t.Run(policy.String(), func(t *testing.T) {
			e := newEnv(t, Options{QueueSize: 4, RingSize: 64, SlowPolicy: policy, BlockTimeout: 20 * time.Millisecond}, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stalled := stalledConn(e)
			f := newBatches()
			runCtx, stopRun := context.WithCancel(ctx)
			stop := runCtx.Done()
			var wg sync.WaitGroup
			wg.Go(func() {
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					evs := []*jimbotpb.Event{
						bigEvent(fmt.Sprint(k), 512),
						newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", fmt.Sprint(k)),
					}
					publish(t, e.bus, uint32(k), f.make(evs...))
				}
			})
			for w := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 9))
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						c, cl := context.WithCancel(runCtx)
						client := e.client
						if rng.IntN(2) == 0 {
							client = stalled
						}
						pattern := []string{">", "system.heartbeat", "game.*.*"}[rng.IntN(3)]
						st, err := client.Subscribe(c, &jimbotpb.SubscribeRequest{TopicPattern: pattern, SubscriberId: fmt.Sprint("w", w)})
						if err == nil && client == e.client {
							for range rng.IntN(20) {
								if _, err := st.Recv(); err != nil {
									break
								}
							}
						} else {
							time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
						}
						cl()
					}
				})
			}
			time.Sleep(500 * time.Millisecond)
			stopRun()
			wg.Wait()
			e.close()
			f.requireFreedOnce(t)
			require.Zero(t, e.bus.Subscribers())
		})
	}
}

// TestPatternLimit: the service refuses a subscription with more patterns
// than its limit, on Subscribe and SubscribeAck alike.
func TestPatternLimit(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	srv := grpc.NewServer()
	NewService(e.bus, nil, nil).LimitPatterns(2).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	e.addr = lis.Addr().String()
	client := jimbotpb.NewEventBusClient(e.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := client.Subscribe(ctx, &jimbotpb.SubscribeRequest{TopicPattern: "a.b", TopicPatterns: []string{"c.d", "e.f"}})
	require.NoError(t, err)
	_, err = st.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "at most 2 (--max-patterns)")
	ack, err := client.SubscribeAck(ctx)
	require.NoError(t, err)
	require.NoError(t, ack.Send(&jimbotpb.SubscribeAckRequest{Subscribe: &jimbotpb.SubscribeRequest{TopicPatterns: []string{"a", "b", "c"}}}))
	_, err = ack.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

// TestPublishDispatchesInlineWhenIdle: with the dispatcher idle, Publish
// dispatches its batch before it returns; while the dispatch token is held
// (the dispatcher busy) it queues the batch in the ring instead, and the
// subscriber receives everything in publish order either way.
func TestPublishDispatchesInlineWhenIdle(t *testing.T) {
	e := newEnv(t, Options{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := subscribe(t, ctx, e.client, &jimbotpb.SubscribeRequest{})
	f := newBatches()
	hb := func(id string) *jimbotpb.Event { return newEvent(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "", id) }

	inline, sent := false, 0
	for i := 0; i < 50 && !inline; i++ {
		sent += 2
		require.Eventually(t, func() bool { return e.bus.ring.Len() == 0 }, time.Second, time.Millisecond)
		before := e.bus.seq.Load()
		publish(t, e.bus, 0, f.make(hb(fmt.Sprint("i", i, "a")), hb(fmt.Sprint("i", i, "b"))))
		inline = e.bus.seq.Load() == before+2 // numbered before Publish returned
	}
	require.True(t, inline, "an idle bus dispatches in Publish")

	e.bus.dmu.Lock() // the dispatcher is busy
	before := e.bus.seq.Load()
	publish(t, e.bus, 0, f.make(hb("queued-1")))
	publish(t, e.bus, 1, f.make(hb("queued-2")))
	require.Equal(t, 2, e.bus.ring.Len(), "queued behind the dispatcher")
	require.Equal(t, before, e.bus.seq.Load())
	e.bus.dmu.Unlock()
	publish(t, e.bus, 0, f.make(hb("after")))

	var ids []string
	got := recvN(st, sent+3)
	require.NoError(t, got.err)
	for _, ev := range got.events {
		ids = append(ids, ev.EventId)
	}
	require.Equal(t, []string{"queued-1", "queued-2", "after"}, ids[len(ids)-3:])
	for i := 1; i < len(ids); i++ {
		require.NotEqual(t, ids[i-1], ids[i])
	}
	f.requireFreedOnce(t)
}
