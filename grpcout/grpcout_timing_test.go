package grpcout

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/jimbot/jimbus/ingest/decode"
	"github.com/jimbot/jimbus/internal/cputime"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// benchBatchEvents is the size of the batches the benchmarks publish: a busy
// BalatroMCP batch.
const benchBatchEvents = 50

// benchEvent is a typical event: a GAME_STATE envelope with a ~150-byte
// payload, about 250 bytes on the wire.
func benchEvent(i int) *jimbotpb.Event {
	return &jimbotpb.Event{
		EventId:         "evt-" + strconv.Itoa(i),
		Timestamp:       1_700_000_000_000,
		Type:            jimbotpb.EventType_EVENT_TYPE_GAME_STATE,
		Source:          "BalatroMCP",
		Version:         1,
		GameId:          "game-42",
		SessionId:       "session-7",
		PayloadJson:     []byte(`{"in_game":true,"ante":3,"round":7,"money":12,"hands_remaining":3,"discards_remaining":2,"phase":"SELECTING_HAND","jokers":[{"name":"Joker","mult":4}]}`),
		ClientTimestamp: 123456.789,
		Topic:           "game.state.update",
		TypeName:        "GAME_STATE",
	}
}

// batchPool recycles batches with their events, as ingest's pool does: a
// batch's free function puts it back.
type batchPool struct {
	free chan *route.Batch
}

// newBatchPool returns n batches of benchBatchEvents synthetic events.
func newBatchPool(n int) *batchPool {
	return newBatchPoolOf(n, func() []*jimbotpb.Event {
		evs := make([]*jimbotpb.Event, benchBatchEvents)
		for i := range evs {
			evs[i] = benchEvent(i)
		}
		return evs
	})
}

// newBatchPoolOf returns n batches, each with the events of its own events
// call.
func newBatchPoolOf(n int, events func() []*jimbotpb.Event) *batchPool {
	p := &batchPool{free: make(chan *route.Batch, n)}
	for range n {
		bt := route.NewBatch(p.put)
		bt.Owner = events()
		p.free <- bt
	}
	return p
}

func (p *batchPool) put(bt *route.Batch) { p.free <- bt }

// get returns a batch with one reference and its events.
func (p *batchPool) get() *route.Batch {
	bt := <-p.free
	bt.Reset()
	for _, ev := range bt.Owner.([]*jimbotpb.Event) {
		id, _ := route.TopicOf(ev.Type, ev.Subtype)
		bt.Add(ev, id)
	}
	bt.ReceivedAt = time.Now().UnixNano()
	return bt
}

// countStream is a Subscribe stream without the network: Send counts.
type countStream struct {
	ctx  context.Context
	want int
	got  int
	done chan struct{}
}

func (c *countStream) Context() context.Context { return c.ctx }

func (c *countStream) Send(eb *jimbotpb.EventBatch) error {
	c.got += len(eb.Events)
	if c.got == c.want {
		close(c.done)
	}
	return nil
}

// BenchmarkFanout measures the bus without the network: Publish of 50-event
// batches -> ring -> dispatcher -> 1 or 4 subscriber queues -> each writer's
// packing into EventBatch messages (Send only counts). events/s counts
// published events (each delivered to every subscriber).
func BenchmarkFanout(b *testing.B) {
	pool := newBatchPool(2048)
	for _, nsubs := range []int{1, 4} {
		b.Run(fmt.Sprintf("subscribers=%d", nsubs), func(b *testing.B) {
			b.SetBytes(int64(proto.Size(benchEvent(0))))
			runFanout(b, nsubs, benchBatchEvents, pool, func(cs *countStream) stream { return cs })
		})
	}
}

// runFanout publishes pool's batches of perBatch events to a new bus with
// nsubs typed subscribers on ">" until they have b.N events or more, each
// through the stream mk makes of a countStream that closes done at the
// total, and reports events/s, ns/event (wall time per published event) and
// cpu-ns/event (the process's CPU time per published event: where writers
// wait for one another, cores idle and wall time hides the work saved).
func runFanout(b *testing.B, nsubs, perBatch int, pool *batchPool, mk func(*countStream) stream) {
	bus, err := New(Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	set, _ := route.Compile(">")
	nb := (b.N + perBatch - 1) / perBatch
	events := nb * perBatch
	counts := make([]*countStream, nsubs)
	var wg sync.WaitGroup
	for i := range counts {
		counts[i] = &countStream{ctx: context.Background(), want: events, done: make(chan struct{})}
		st := mk(counts[i])
		s, err := bus.subscribe(fmt.Sprint(i), set, 0, true)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = s.serve(st) })
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	for k := range nb {
		bt := pool.get()
		for bus.Publish(uint32(k), bt) != nil {
			time.Sleep(time.Microsecond)
		}
	}
	for _, c := range counts {
		<-c.done
	}
	b.StopTimer()
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	if cpu := cputime.Process() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
	}
	if err := bus.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
}

// BenchmarkStream measures events/s end to end through a real loopback gRPC
// stream to one subscriber, client and server in this process: the bus
// (Publish -> ... -> Send of up to 256 events a message -> client Recv)
// beside plain gRPC server streams of the same events without the bus, one
// event per message (the naive design) and 256 per message (the bound).
func BenchmarkStream(b *testing.B) {
	b.Run("bus", func(b *testing.B) {
		e := newEnv(b, Options{}, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := subscribe(b, ctx, e.client, &jimbotpb.SubscribeRequest{TopicPattern: ">"})
		pool := newBatchPool(2048)
		nb := (b.N + benchBatchEvents - 1) / benchBatchEvents
		events := nb * benchBatchEvents
		b.SetBytes(int64(proto.Size(benchEvent(0))))
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			for k := range nb {
				bt := pool.get()
				for e.bus.Publish(uint32(k), bt) != nil {
					time.Sleep(time.Microsecond)
				}
			}
		}()
		msgs := 0
		for got := 0; got < events; msgs++ {
			eb, err := st.Recv()
			if err != nil {
				b.Fatal(err)
			}
			got += len(eb.Events)
		}
		b.StopTimer()
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(events)/float64(msgs), "events/msg")
		cancel()
		e.close()
	})
	for _, per := range []int{1, DefaultMaxBatchEvents} {
		b.Run(fmt.Sprintf("baseline-grpc-events-per-message=%d", per), func(b *testing.B) {
			benchBaseline(b, per)
		})
	}
}

// baselineServer streams n prebuilt events, per to a message; n is the
// request's subscriber_id.
type baselineServer struct {
	jimbotpb.UnimplementedEventBusServer
	per int
}

func (s *baselineServer) Subscribe(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch]) error {
	n, _ := strconv.Atoi(req.SubscriberId)
	evs := make([]*jimbotpb.Event, s.per)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	eb := &jimbotpb.EventBatch{}
	for sent := 0; sent < n; {
		k := min(s.per, n-sent)
		eb.Events = evs[:k]
		if err := st.Send(eb); err != nil {
			return err
		}
		sent += k
	}
	return nil
}

func benchBaseline(b *testing.B, per int) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	jimbotpb.RegisterEventBusServer(srv, &baselineServer{per: per})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := jimbotpb.NewEventBusClient(conn)
	b.SetBytes(int64(proto.Size(benchEvent(0))))
	b.ReportAllocs()
	b.ResetTimer()
	st, err := client.Subscribe(context.Background(), &jimbotpb.SubscribeRequest{SubscriberId: strconv.Itoa(b.N)})
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for {
		eb, err := st.Recv()
		if err != nil {
			break
		}
		got += len(eb.Events)
	}
	b.StopTimer()
	if got != b.N {
		b.Fatalf("got %d events, want %d", got, b.N)
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMarshalBatch: encoding one EventBatch of the decoded real
// state-change batch repeated to 60 events, with and without typed views,
// by the standard proto codec and by Codec.
func BenchmarkMarshalBatch(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("..", "testdata", "balatromcp", "request_batch_state_change.json"))
	if err != nil {
		b.Fatal(err)
	}
	std := encoding.GetCodecV2("proto")
	for _, view := range []string{"typed", "json"} {
		d := decode.New(decode.Options{NoTypedView: view == "json"})
		r := d.Decode(decode.KindBatch, body, 1)
		eb := &jimbotpb.EventBatch{}
		for len(eb.Events) < 60 {
			eb.Events = append(eb.Events, r.Batch.Events...)
		}
		for _, c := range []struct {
			name string
			c    encoding.CodecV2
		}{{"proto", std}, {"jimbus", codec}} {
			b.Run("view="+view+"/codec="+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bs, err := c.c.Marshal(eb)
					if err != nil {
						b.Fatal(err)
					}
					bs.Free()
				}
				b.ReportMetric(float64(b.N)*float64(len(eb.Events))/b.Elapsed().Seconds(), "events/s")
			})
		}
		r.Batch.Release()
		d.ReleaseResult(r)
	}
}

// wireStream is a Subscribe stream without the network that encodes every
// message with Codec, as a gRPC stream does, and counts the events. With
// sts set its context carries a gRPC transport stream, so the writer sends
// shared encodings (SendMsg) where it can.
type wireStream struct {
	*countStream
}

func (w *wireStream) Send(eb *jimbotpb.EventBatch) error { return w.SendMsg(eb) }

func (w *wireStream) SendMsg(m any) error {
	bs, err := codec.Marshal(m)
	if err != nil {
		return err
	}
	bs.Free()
	switch m := m.(type) {
	case *jimbotpb.EventBatch:
		return w.countStream.Send(m)
	case *sharedBatch:
		return w.countStream.Send(m.EventBatch)
	}
	return nil
}

// fakeSTS is a grpc.ServerTransportStream for wireStream's context.
type fakeSTS struct{}

func (fakeSTS) Method() string                  { return "/jimbot.EventBus/Subscribe" }
func (fakeSTS) SetHeader(metadata.MD) error     { return nil }
func (fakeSTS) SendHeader(metadata.MD) error    { return nil }
func (fakeSTS) SetTrailer(md metadata.MD) error { return nil }

// BenchmarkSharedEncoding: batches of the real BalatroMCP events with their
// typed views to 1 and 4 typed subscribers on ">", whose streams encode
// every message with Codec as gRPC does (no network): each writer encoding
// its own messages (shared=false) against each batch encoded once for all
// (shared=true, what a gRPC stream gets). ns/event is wall time per
// published event, all subscribers' work included, on GOMAXPROCS cores.
func BenchmarkSharedEncoding(b *testing.B) {
	var real []*jimbotpb.Event
	for _, evs := range realEvents(b) {
		real = append(real, evs...)
	}
	pool := newBatchPoolOf(256, func() []*jimbotpb.Event {
		own := make([]*jimbotpb.Event, len(real))
		for i, ev := range real {
			own[i] = proto.Clone(ev).(*jimbotpb.Event) // real's events own their memory
		}
		return own
	})
	for _, nsubs := range []int{1, 4} {
		for _, shared := range []bool{false, true} {
			b.Run(fmt.Sprintf("subscribers=%d/shared=%v", nsubs, shared), func(b *testing.B) {
				runFanout(b, nsubs, len(real), pool, func(cs *countStream) stream {
					if shared {
						cs.ctx = grpc.NewContextWithServerTransportStream(cs.ctx, fakeSTS{})
					}
					return &wireStream{cs}
				})
			})
		}
	}
}
