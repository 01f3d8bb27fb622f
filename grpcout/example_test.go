package grpcout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jimbot/jimbus/grpcout"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// Example wires a Bus to a gRPC server, subscribes, publishes one event and
// shuts down in the documented order.
func Example() {
	ctx := context.Background()
	bus, err := grpcout.New(grpcout.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := bus.Start(ctx); err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	grpcout.NewService(bus, nil, nil).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(lis) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	st, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx,
		&jimbotpb.SubscribeRequest{TopicPattern: "system.*", SubscriberId: "example"})
	if err != nil {
		panic(err)
	}
	if _, err := st.Header(); err != nil { // the subscription is active
		panic(err)
	}

	// What ingest does for each request.
	topic, _ := route.TopicOf(jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, "")
	bt := route.NewBatch(nil)
	bt.Add(&jimbotpb.Event{EventId: "hb-1", Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT}, topic)
	if err := bus.Publish(0, bt); err != nil {
		panic(err)
	}

	eb, err := st.Recv()
	if err != nil {
		panic(err)
	}
	ev := eb.Events[0]
	fmt.Println(ev.EventId, ev.Topic, ev.BusSequence)

	// Shutdown: the bus drains and ends the streams, then the server stops.
	if err := bus.Stop(ctx); err != nil {
		panic(err)
	}
	_, err = st.Recv()
	fmt.Println(errors.Is(err, io.EOF))
	srv.GracefulStop()
	// Output:
	// hb-1 system.heartbeat 1
	// true
}
