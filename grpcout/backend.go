package grpcout

import (
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// Subscriptions is the subscriber side of a fan-out backend: it serves one
// Subscribe or SubscribeAck stream. *Bus implements it for the memory
// backend; package jetstream for NATS JetStream.
type Subscriptions interface {
	// Serve streams the events that match req to st until the client goes
	// away or the backend stops, and returns the stream's status. It is
	// called on the stream's handler goroutine, the only one that may call
	// st.Send. acks is nil for Subscribe: an event counts as acknowledged
	// once the Send that carried it returned. For SubscribeAck it carries
	// the client's cumulative acknowledgements: a value n acknowledges every
	// event delivered on st whose bus_sequence is n or less. acks is never
	// closed; a newer value may replace one not yet received.
	Serve(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch], acks <-chan uint64) error
}

var _ Subscriptions = (*Bus)(nil)

// Serve implements Subscriptions for the memory backend. It streams every
// event whose topic matches one of the request's patterns (topic_pattern and
// topic_patterns unioned; none means ">"), several events to a message. The
// subscription is active once the response headers are sent: a client that
// waits for them (ClientStream.Header) receives every event published
// afterwards. max_batch_events lowers the bus's MaxBatchEvents for this
// stream; 0 or a larger value means MaxBatchEvents. subscriber_id names the
// stream in logs and metrics (cut to 128 bytes). The memory backend keeps no
// history: a start position other than UNSPECIFIED or NEW is refused with
// codes.Unimplemented, and acknowledgements are accepted and ignored.
func (b *Bus) Serve(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch], _ <-chan uint64) error {
	switch sp := req.GetStartPosition(); sp {
	case jimbotpb.StartPosition_START_POSITION_UNSPECIFIED, jimbotpb.StartPosition_START_POSITION_NEW:
	default:
		return status.Errorf(codes.Unimplemented,
			"grpcout: the memory backend keeps no history, so it cannot start at %s; "+
				"subscribe with START_POSITION_NEW, or run jimbus with --backend=jetstream", sp)
	}
	patterns := route.Patterns(req)
	set, err := route.Compile(patterns...)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "grpcout: cannot subscribe: %v", err)
	}
	if set.Empty() {
		b.log.Warn("grpcout: subscription matches no topic", "subscriber", req.GetSubscriberId(),
			"patterns", strings.Join(patterns, ","))
	}
	typed, err := ResolveView(req.GetPayloadView(), b.opts.NoTypedView)
	if err != nil {
		return err
	}
	sub, err := b.subscribe(req.GetSubscriberId(), set, int(req.GetMaxBatchEvents()), typed)
	if err != nil {
		return err
	}
	if err := st.SendHeader(nil); err != nil {
		sub.leave(err)
		return err
	}
	b.log.Info("grpcout: subscriber connected", "subscriber", sub.id, "label", sub.label,
		"patterns", strings.Join(patterns, ","), "max_batch_events", sub.max, "typed_view", typed)
	return sub.serve(st)
}

// SubscribeAck is Subscribe with acknowledgements: the first message carries
// the SubscribeRequest; every later one acknowledges (cumulatively) the
// events delivered up to its ack_sequence. The acknowledgements are read on
// a goroutine of their own, which ends when the stream does; a client that
// half-closes its side keeps receiving.
func (s *Service) SubscribeAck(st grpc.BidiStreamingServer[jimbotpb.SubscribeAckRequest, jimbotpb.EventBatch]) error {
	first, err := st.Recv()
	switch {
	case errors.Is(err, io.EOF):
		return status.Error(codes.InvalidArgument, "grpcout: SubscribeAck stream closed before its subscription")
	case err != nil:
		return err
	}
	req := first.GetSubscribe()
	if req == nil {
		return status.Error(codes.InvalidArgument, "grpcout: the first SubscribeAck message must carry subscribe")
	}
	if err := s.checkPatterns(req); err != nil {
		return err
	}
	acks := make(chan uint64, 1)
	if n := first.GetAckSequence(); n > 0 {
		acks <- n
	}
	go readAcks(st, acks)
	return s.subs.Serve(req, st, acks)
}

// readAcks passes the acknowledgements of st to acks until Recv fails (the
// client half-closed, or the stream ended).
func readAcks(st grpc.BidiStreamingServer[jimbotpb.SubscribeAckRequest, jimbotpb.EventBatch], acks chan uint64) {
	for {
		m, err := st.Recv()
		if err != nil {
			return
		}
		if n := m.GetAckSequence(); n > 0 {
			offerAck(acks, n)
		}
	}
}

// offerAck puts n into the 1-buffered acks without blocking; a value still
// waiting there is replaced by the larger of the two (acknowledgements are
// cumulative). There is one sender per channel.
func offerAck(acks chan uint64, n uint64) {
	for {
		select {
		case acks <- n:
			return
		default:
		}
		select {
		case old := <-acks:
			n = max(n, old)
		default:
		}
	}
}
