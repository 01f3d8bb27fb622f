package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// CommandQueue is the queue of commands the game of this instance polls
// (ingest's *Commands).
type CommandQueue interface {
	Enqueue(cmd *jimbotpb.Command) error
}

// commandsToken is the subject token of relayed commands: subject
// <prefix>._commands, in the stream but matched by no topic.
const commandsToken = "_commands"

// RelayCommands makes the bus carry commands for the game between the
// instances of one NATS cluster: Enqueue (grpcout.CommandQueue, the EventBus
// SendCommand RPC) checks a command with check (nil: no check), stores it
// in the stream, and every instance that runs the relay, this one included,
// queues it into its local queue. An instance receives the commands stored
// after its Start, none from before (an old command must not reach a game
// that connects later). Every game polls localhost, so with several games on
// one cluster each receives every command: run one cluster per game, as one
// bus per game without NATS. Call it before Start.
func (b *Bus) RelayCommands(local CommandQueue, check func(*jimbotpb.Command) error) {
	if local == nil {
		panic("BUG: jetstream: RelayCommands without a local queue")
	}
	if b.started.Load() {
		panic("BUG: jetstream: RelayCommands after Start")
	}
	b.cmdLocal, b.cmdCheck = local, check
}

// startCommands starts the consumer that queues relayed commands locally.
func (b *Bus) startCommands(ctx context.Context) error {
	cons, err := b.js.OrderedConsumer(ctx, b.opts.Stream, natsjs.OrderedConsumerConfig{
		FilterSubjects:    []string{b.prefix + commandsToken},
		DeliverPolicy:     natsjs.DeliverNewPolicy,
		InactiveThreshold: max(6*b.opts.pullExpiry, 30*time.Second),
	})
	if err != nil {
		return fmt.Errorf("jetstream: cannot consume the relayed commands: %w", err)
	}
	cc, err := cons.Consume(b.receiveCommand, natsjs.PullExpiry(b.opts.pullExpiry), natsjs.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("jetstream: cannot consume the relayed commands: %w", err)
	}
	b.cmdCC, b.cmdCons = cc, cons
	return nil
}

func (b *Bus) receiveCommand(m natsjs.Msg) {
	var cmd jimbotpb.Command
	if err := proto.Unmarshal(m.Data(), &cmd); err != nil {
		b.m.commandsDropped.Inc()
		b.log.Warn("jetstream: relayed command does not decode; dropped", "err", err)
		return
	}
	if err := b.cmdLocal.Enqueue(&cmd); err != nil {
		b.m.commandsDropped.Inc()
		b.log.Warn("jetstream: relayed command not queued; dropped", "type", cmd.GetType(), "err", err)
		return
	}
	b.m.commandsQueued.Inc()
}

// stopCommands stops the relay's consumer, waiting for it at most until ctx
// ends.
func (b *Bus) stopCommands(ctx context.Context) {
	if b.cmdCC == nil {
		return
	}
	b.cmdCC.Stop()
	select {
	case <-b.cmdCC.Closed():
	case <-ctx.Done():
	}
	b.dropEphemeral(b.cmdCons, false)
}

// Enqueue relays cmd to the command queue of every instance (see
// RelayCommands) and returns once JetStream stored it. A command that check
// refuses is returned as is (grpcout answers codes.InvalidArgument); a
// failure to store it is codes.Unavailable.
func (b *Bus) Enqueue(cmd *jimbotpb.Command) error {
	if b.cmdLocal == nil {
		return status.Error(codes.Unimplemented, "jetstream: relaying commands is not enabled on this server")
	}
	if b.closed.Load() || !b.ready() {
		return status.Error(codes.Unavailable, "jetstream: the bus is not running; retry later")
	}
	if b.cmdCheck != nil {
		if err := b.cmdCheck(cmd); err != nil {
			return err
		}
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("jetstream: cannot marshal the command: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.AckTimeout)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: b.prefix + commandsToken, Data: data}); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = natsjs.ErrAsyncPublishTimeout
		}
		return status.Errorf(codes.Unavailable, "jetstream: command not stored: %v; retry later", err)
	}
	return nil
}
