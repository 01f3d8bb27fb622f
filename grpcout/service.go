package grpcout

import (
	"context"
	"errors"

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

// Service implements the EventBus gRPC service: Subscribe and SubscribeAck
// stream from a Subscriptions backend (a Bus, or another fan-out backend);
// PublishEvent, PublishBatch and SendCommand delegate to a Publisher and a
// CommandQueue.
type Service struct {
	jimbotpb.UnimplementedEventBusServer

	subs        Subscriptions
	pub         Publisher
	cmds        CommandQueue
	maxPatterns int
}

// NewService returns the EventBus service over bus. pub and cmds may be nil:
// the RPCs that need them then answer codes.Unimplemented.
func NewService(bus *Bus, pub Publisher, cmds CommandQueue) *Service {
	return NewServiceWith(bus, pub, cmds)
}

// NewServiceWith returns the EventBus service whose subscriber streams are
// served by subs (a *Bus, or another backend such as package jetstream's).
// pub and cmds may be nil, as for NewService.
func NewServiceWith(subs Subscriptions, pub Publisher, cmds CommandQueue) *Service {
	if subs == nil {
		panic("BUG: grpcout: NewServiceWith without Subscriptions")
	}
	return &Service{subs: subs, pub: pub, cmds: cmds, maxPatterns: route.MaxPatterns}
}

// LimitPatterns sets the most topic patterns one subscription may list
// (default and upper bound route.MaxPatterns; the flag --max-patterns);
// more is refused with codes.InvalidArgument. It returns s.
func (s *Service) LimitPatterns(n int) *Service {
	if n > 0 && n < route.MaxPatterns {
		s.maxPatterns = n
	}
	return s
}

// checkPatterns refuses a subscription with more patterns than the limit,
// whatever the backend.
func (s *Service) checkPatterns(req *jimbotpb.SubscribeRequest) error {
	if n := len(route.Patterns(req)); n > s.maxPatterns {
		return status.Errorf(codes.InvalidArgument,
			"grpcout: the subscription lists %d topic patterns; this bus accepts at most %d (--max-patterns)", n, s.maxPatterns)
	}
	return nil
}

// Register registers the service on s (a *grpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	jimbotpb.RegisterEventBusServer(r, s)
}

// Subscribe streams every event whose topic matches one of the request's
// patterns from the Subscriptions backend (see Bus.Serve for the memory
// backend); events count as acknowledged once sent.
func (s *Service) Subscribe(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch]) error {
	if err := s.checkPatterns(req); err != nil {
		return err
	}
	return s.subs.Serve(req, st, nil)
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
