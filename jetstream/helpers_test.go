package jetstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jimbot/jimbus/grpcout"
	"github.com/jimbot/jimbus/ingest"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

var _ grpcout.Subscriptions = (*Bus)(nil)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleakOptions()...)
}

func goleakOptions() []goleak.Option {
	return []goleak.Option{
		// fasthttp refreshes its Date header in one process-wide goroutine.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startEmbedded starts an embedded server storing in dir; Cleanup stops it.
func startEmbedded(t testing.TB, dir string) *Embedded {
	t.Helper()
	e, err := NewEmbedded(EmbeddedOptions{StoreDir: dir})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

// env is one jimbus instance on the JetStream backend: a Bus, the EventBus
// service on a real gRPC server on loopback with a client, and optionally
// the HTTP ingest on a real listener.
type env struct {
	t       testing.TB
	bus     *Bus
	srv     *grpc.Server
	conn    *grpc.ClientConn
	client  jimbotpb.EventBusClient
	ing     *ingest.Server
	httpURL string
	http    *http.Client
	once    sync.Once
}

func startEnv(t testing.TB, opts Options, withIngest bool) *env {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	bus, err := New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, bus.Start(ctx))
	e := &env{t: t, bus: bus, http: &http.Client{Timeout: 20 * time.Second}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.srv = grpc.NewServer(grpcout.ServerOption())
	grpcout.NewServiceWith(bus, nil, nil).Register(e.srv)
	go func() { _ = e.srv.Serve(lis) }()
	e.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	e.client = jimbotpb.NewEventBusClient(e.conn)
	if withIngest {
		e.ing, err = ingest.New(ingest.Options{Logger: opts.Logger, PublishWait: 100 * time.Millisecond}, bus)
		require.NoError(t, err)
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, e.ing.Start(ctx, hl))
		e.httpURL = "http://" + hl.Addr().String()
	}
	t.Cleanup(e.stop)
	return e
}

// stop stops ingest, then the bus, then gRPC, in serve.go's order.
func (e *env) stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if e.ing != nil {
			require.NoError(e.t, e.ing.Stop(ctx))
		}
		require.NoError(e.t, e.bus.Stop(ctx))
		e.srv.Stop()
		_ = e.conn.Close()
		e.http.CloseIdleConnections()
	})
}

// batchBody is a BalatroMCP batch request of one event per id.
func batchBody(ids []string) string {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		typ := "HEARTBEAT"
		if i%2 == 1 {
			typ = "MONEY_CHANGED"
		}
		fmt.Fprintf(&sb, `{"type":%q,"source":"jetstream_test","event_id":%q,"timestamp":1700000000000,"payload":{"n":%d}}`,
			typ, id, i)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// post sends one batch request and returns its status code.
func (e *env) post(ids []string) (int, error) {
	resp, err := e.http.Post(e.httpURL+"/api/v1/events/batch", "application/json", strings.NewReader(batchBody(ids)))
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && string(body) != `{"status":"ok"}` {
		return resp.StatusCode, fmt.Errorf("answer %s", body)
	}
	return resp.StatusCode, nil
}

// postOK posts ids in requests of per events, each answered ok.
func (e *env) postOK(ids []string, per int) {
	e.t.Helper()
	for len(ids) > 0 {
		n := min(per, len(ids))
		code, err := e.post(ids[:n])
		require.NoError(e.t, err)
		require.Equal(e.t, 200, code)
		ids = ids[n:]
	}
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// ackStream is a SubscribeAck client stream.
type ackStream = grpc.BidiStreamingClient[jimbotpb.SubscribeAckRequest, jimbotpb.EventBatch]

// subscribeAck opens a SubscribeAck stream and waits until it is active.
func subscribeAck(t testing.TB, ctx context.Context, c jimbotpb.EventBusClient, req *jimbotpb.SubscribeRequest) ackStream {
	t.Helper()
	st, err := c.SubscribeAck(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send(&jimbotpb.SubscribeAckRequest{Subscribe: req}))
	_, err = st.Header()
	require.NoError(t, err)
	return st
}

// subscribe opens a Subscribe stream and waits until it is active.
func subscribe(t testing.TB, ctx context.Context, c jimbotpb.EventBusClient, req *jimbotpb.SubscribeRequest) jimbotpb.EventBus_SubscribeClient {
	t.Helper()
	st, err := c.Subscribe(ctx, req)
	require.NoError(t, err)
	_, err = st.Header()
	require.NoError(t, err)
	return st
}

// recvN receives until n events arrived; the stream's context bounds it.
func recvN(t testing.TB, st interface {
	Recv() (*jimbotpb.EventBatch, error)
}, n int) []*jimbotpb.Event {
	t.Helper()
	var out []*jimbotpb.Event
	for len(out) < n {
		m, err := st.Recv()
		require.NoError(t, err, "after %d of %d events", len(out), n)
		out = append(out, m.GetEvents()...)
	}
	return out
}

func eventIDs(evs []*jimbotpb.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetEventId()
	}
	return out
}

// publishDirect publishes events (one per id, topic game.money.changed)
// straight to the bus, without ingest.
func publishDirect(t testing.TB, b *Bus, idList ...string) {
	t.Helper()
	topic, ok := route.TopicOf(jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED, "")
	require.True(t, ok)
	bt := route.NewBatch(nil)
	for _, id := range idList {
		bt.Add(&jimbotpb.Event{
			EventId: id, Source: "direct", Type: jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED,
			Timestamp: time.Now().UnixMilli(), ReceivedAtNs: time.Now().UnixNano(),
		}, topic)
	}
	require.NoError(t, b.Publish(0, bt))
}
