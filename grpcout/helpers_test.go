package grpcout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var discard = slog.New(slog.DiscardHandler)

// batches makes route.Batches whose frees it counts: live is the number of
// batches made and not yet freed.
type batches struct {
	mu    sync.Mutex
	frees map[*route.Batch]int
	live  atomic.Int64
}

func newBatches() *batches {
	return &batches{frees: make(map[*route.Batch]int)}
}

func (f *batches) free(bt *route.Batch) {
	f.mu.Lock()
	f.frees[bt]++
	f.mu.Unlock()
	f.live.Add(-1)
}

// make returns a batch of evs, each with the topic of its type.
func (f *batches) make(evs ...*jimbotpb.Event) *route.Batch {
	bt := route.NewBatch(f.free)
	for _, ev := range evs {
		id, ok := route.TopicOf(ev.Type, ev.Subtype)
		if !ok {
			panic(fmt.Sprintf("no topic for %v", ev.Type))
		}
		bt.Add(ev, id)
	}
	bt.ReceivedAt = time.Now().UnixNano()
	f.mu.Lock()
	f.frees[bt] = 0
	f.mu.Unlock()
	f.live.Add(1)
	return bt
}

// requireFreedOnce waits until every batch made was freed and checks each
// was freed exactly once.
func (f *batches) requireFreedOnce(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return f.live.Load() == 0 }, 5*time.Second, time.Millisecond,
		"batches still live: %d", f.live.Load())
	f.mu.Lock()
	defer f.mu.Unlock()
	for bt, n := range f.frees {
		require.Equal(t, 1, n, "batch with %d events freed %d times", bt.Len(), n)
	}
}

func newEvent(typ jimbotpb.EventType, subtype, id string) *jimbotpb.Event {
	return &jimbotpb.Event{
		EventId:      id,
		Type:         typ,
		Subtype:      subtype,
		Source:       "BalatroMCP",
		ReceivedAtNs: time.Now().UnixNano(),
		PayloadJson:  []byte(`{"in_game":true}`),
	}
}

// bigEvent is an event with a payload of n bytes, to fill flow-control
// windows quickly.
func bigEvent(id string, n int) *jimbotpb.Event {
	ev := newEvent(jimbotpb.EventType_EVENT_TYPE_GAME_STATE, "", id)
	ev.PayloadJson = []byte(`"` + strings.Repeat("x", n-2) + `"`)
	return ev
}

// publish publishes bt, retrying while the ring is full.
func publish(t testing.TB, b *Bus, hint uint32, bt *route.Batch) {
	for {
		err := b.Publish(hint, bt)
		if err == nil {
			return
		}
		if !errors.Is(err, route.ErrFull) {
			t.Errorf("publish: %v", err)
			bt.Release()
			return
		}
		time.Sleep(50 * time.Microsecond)
	}
}

type testEnv struct {
	t      testing.TB
	bus    *Bus
	reg    *prometheus.Registry
	srv    *grpc.Server
	addr   string
	conn   *grpc.ClientConn
	client jimbotpb.EventBusClient
	conns  []*grpc.ClientConn
	once   sync.Once
}

// newEnv starts a Bus, its Service on a real gRPC server on 127.0.0.1:0 and
// a client connection. Cleanup stops them.
func newEnv(t testing.TB, opts Options, pub Publisher, cmds CommandQueue) *testEnv {
	t.Helper()
	e := &testEnv{t: t, reg: prometheus.NewRegistry()}
	opts.Registerer = e.reg
	if opts.Logger == nil {
		opts.Logger = discard
	}
	bus, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, bus.Start(context.Background()))
	e.bus = bus
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.addr = lis.Addr().String()
	e.srv = grpc.NewServer(ServerOption())
	NewService(bus, pub, cmds).Register(e.srv)
	go func() { _ = e.srv.Serve(lis) }()
	e.conn = e.dial()
	e.client = jimbotpb.NewEventBusClient(e.conn)
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) dial(opts ...grpc.DialOption) *grpc.ClientConn {
	e.t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(e.addr, opts...)
	require.NoError(e.t, err)
	e.conns = append(e.conns, conn)
	return conn
}

// close stops the bus, then the server, then the clients.
func (e *testEnv) close() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.bus.Stop(ctx)
		e.srv.Stop()
		for _, c := range e.conns {
			_ = c.Close()
		}
		require.NoError(e.t, err)
	})
}

// subscribe opens a Subscribe stream on client and waits until the bus has
// registered it (the response headers arrived).
func subscribe(t testing.TB, ctx context.Context, client jimbotpb.EventBusClient, req *jimbotpb.SubscribeRequest) jimbotpb.EventBus_SubscribeClient {
	t.Helper()
	st, err := client.Subscribe(ctx, req)
	require.NoError(t, err)
	_, err = st.Header()
	require.NoError(t, err)
	return st
}

// received is what one subscriber got.
type received struct {
	events   []*jimbotpb.Event
	messages int
	maxMsg   int
	err      error
}

// recvN receives until n events arrived or the stream ended. Streams in
// these tests have a deadline, which bounds it.
func recvN(st jimbotpb.EventBus_SubscribeClient, n int) received {
	var r received
	for len(r.events) < n {
		eb, err := st.Recv()
		if err != nil {
			r.err = err
			return r
		}
		r.messages++
		r.maxMsg = max(r.maxMsg, len(eb.Events))
		r.events = append(r.events, eb.Events...)
	}
	return r
}

// recvAll receives until the stream ends; err is io.EOF for a clean end.
func recvAll(st jimbotpb.EventBus_SubscribeClient) received {
	return recvN(st, int(^uint(0)>>1))
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// counterValue returns the value of the counter name{labels} in reg, 0 when
// absent.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
