package grpcout

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// Publisher accepts events published over gRPC (PublishEvent, PublishBatch):
// it normalises, deduplicates and routes them as the HTTP ingest does, and
// publishes them to the fan-out. The ingest package implements it; cmd wires
// it in. The events belong to the call: an implementation must not keep them
// after it returns. An error that carries a gRPC status is returned as is.
type Publisher interface {
	PublishEvents(ctx context.Context, batchID string, evs []*jimbotpb.Event) (*jimbotpb.PublishResponse, error)
}

// CommandQueue queues commands for the game (SendCommand); the game polls
// them over HTTP. The ingest package implements it; cmd wires it in. An
// error that carries a gRPC status is returned as is; any other is the
// command's fault (codes.InvalidArgument).
type CommandQueue interface {
	Enqueue(cmd *jimbotpb.Command) error
}

// Service implements the EventBus gRPC service: Subscribe streams from a
// Bus; PublishEvent, PublishBatch and SendCommand delegate to a Publisher and
// a CommandQueue.
type Service struct {
	jimbotpb.UnimplementedEventBusServer

	bus  *Bus
	pub  Publisher
	cmds CommandQueue
}

// NewService returns the EventBus service over bus. pub and cmds may be nil:
// the RPCs that need them then answer codes.Unimplemented.
func NewService(bus *Bus, pub Publisher, cmds CommandQueue) *Service {
	return &Service{bus: bus, pub: pub, cmds: cmds}
}

// Register registers the service on s (a *grpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	jimbotpb.RegisterEventBusServer(r, s)
}

// Subscribe streams every event whose topic matches one of the request's
// patterns (topic_pattern and topic_patterns unioned; none means ">"), several
// events to a message. The subscription is active once the response headers
// are sent: a client that waits for them (ClientStream.Header) receives every
// event published afterwards. max_batch_events lowers the bus's
// MaxBatchEvents for this stream; 0 or a larger value means MaxBatchEvents.
// subscriber_id names the stream in logs and metrics (cut to 128 bytes).
func (s *Service) Subscribe(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch]) error {
	patterns := req.GetTopicPatterns()
	if p := req.GetTopicPattern(); p != "" {
		patterns = append([]string{p}, patterns...)
	}
	set, err := route.Compile(patterns...)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "grpcout: cannot subscribe: %v", err)
	}
	if set.Empty() {
		s.bus.log.Warn("grpcout: subscription matches no topic", "subscriber", req.GetSubscriberId(),
			"patterns", strings.Join(patterns, ","))
	}
	sub, err := s.bus.subscribe(req.GetSubscriberId(), set, int(req.GetMaxBatchEvents()))
	if err != nil {
		return err
	}
	if err := st.SendHeader(nil); err != nil {
		sub.leave(err)
		return err
	}
	s.bus.log.Info("grpcout: subscriber connected", "subscriber", sub.id, "label", sub.label,
		"patterns", strings.Join(patterns, ","), "max_batch_events", sub.max)
	return sub.serve(st)
}

// PublishEvent publishes one event through the Publisher.
func (s *Service) PublishEvent(ctx context.Context, ev *jimbotpb.Event) (*jimbotpb.PublishResponse, error) {
	if s.pub == nil {
		return nil, status.Error(codes.Unimplemented, "grpcout: publishing over gRPC is not enabled on this server")
	}
	resp, err := s.pub.PublishEvents(ctx, "", []*jimbotpb.Event{ev})
	if err != nil {
		return nil, rpcError(err, codes.Internal)
	}
	return resp, nil
}

// PublishBatch publishes a batch of events through the Publisher.
func (s *Service) PublishBatch(ctx context.Context, eb *jimbotpb.EventBatch) (*jimbotpb.PublishResponse, error) {
	if s.pub == nil {
		return nil, status.Error(codes.Unimplemented, "grpcout: publishing over gRPC is not enabled on this server")
	}
	resp, err := s.pub.PublishEvents(ctx, eb.GetBatchId(), eb.GetEvents())
	if err != nil {
		return nil, rpcError(err, codes.Internal)
	}
	return resp, nil
}

// SendCommand queues a command for the game through the CommandQueue.
func (s *Service) SendCommand(ctx context.Context, cmd *jimbotpb.Command) (*jimbotpb.PublishResponse, error) {
	if s.cmds == nil {
		return nil, status.Error(codes.Unimplemented, "grpcout: commands are not enabled on this server")
	}
	if err := s.cmds.Enqueue(cmd); err != nil {
		return nil, rpcError(err, codes.InvalidArgument)
	}
	return &jimbotpb.PublishResponse{Success: true, Message: "command queued"}, nil
}

// rpcError turns err into a status error: one that has a status keeps it;
// the fan-out's backpressure errors become codes.Unavailable (retry later);
// a context error its code; anything else fallback.
func rpcError(err error, fallback codes.Code) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, route.ErrFull):
		return status.Error(codes.Unavailable, "grpcout: the fan-out is full; retry later")
	case errors.Is(err, route.ErrClosed):
		return status.Error(codes.Unavailable, "grpcout: the bus is shutting down; retry later")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(fallback, err.Error())
}
