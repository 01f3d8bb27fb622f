package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/jimbot/jimbus/grpcout"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// maxIDLen bounds the subscriber id kept for consumer names, logs and
// errors, in bytes (as grpcout does).
const maxIDLen = 128

// leaveWait bounds how long a leaving subscriber waits for its consumer
// subscription to hand back the events it had fetched.
const leaveWait = 2 * time.Second

// session is one subscriber stream being served.
type session struct {
	b       *Bus
	id      string // subscriber_id, cut to maxIDLen
	label   string
	durable bool
	max     int
	typed   bool // wants the typed view; otherwise it is cleared

	msgs chan natsjs.Msg // consumer callback -> writer
	errc chan error      // consumer failures that end the stream; 1-buffered
	gone chan struct{}   // closed when the writer leaves: the callback stops queueing

	lateMu sync.Mutex
	late   []natsjs.Msg // received after the writer left

	// Writer only.
	out     jimbotpb.EventBatch
	evs     []*jimbotpb.Event // reused messages, len max
	batch   []natsjs.Msg      // the messages of out
	unacked map[uint64]natsjs.Msg

	sent, redelivered prometheus.Counter
	lag, ackPending   prometheus.Gauge
}

// Serve implements grpcout.Subscriptions for JetStream. The subscription is
// a JetStream consumer filtered to the subjects of the topics its patterns
// match; it is active once the response headers are sent.
//
// Without a subscriber_id the consumer is ephemeral and ordered: it starts
// at the requested position (UNSPECIFIED is NEW) and ends with the stream.
//
// With a subscriber_id the consumer is durable, named after the id: a
// stream that comes back with the same id continues after the last event
// acknowledged, and receives every later event at least once. On Subscribe
// (acks nil) an event counts as acknowledged once the Send that carried it
// returned; on SubscribeAck, once the client acknowledged its bus_sequence.
// Events delivered and not acknowledged when the stream ends are handed back
// for delivery at once to the next stream with that id; events the client
// does not acknowledge within Options.AckWait are delivered again on the
// same stream. A start position other than UNSPECIFIED restarts the durable
// consumer there. Several streams with the same id share one consumer: each
// event goes to one of them. Changing the patterns of an id keeps its
// position.
//
// bus_sequence is the event's sequence in the stream: the same on every
// instance, increasing in stream order; a redelivered event keeps it.
func (b *Bus) Serve(req *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch], acks <-chan uint64) error {
	patterns := route.Patterns(req)
	set, err := route.Compile(patterns...)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "jetstream: cannot subscribe: %v", err)
	}
	if err := checkStart(req); err != nil {
		return err
	}
	typed, err := grpcout.ResolveView(req.GetPayloadView(), b.opts.NoTypedView)
	if err != nil {
		return err
	}
	if !b.ready() {
		return status.Error(codes.Unavailable, "jetstream: the bus is not started; retry later")
	}
	id := req.GetSubscriberId()
	if len(id) > maxIDLen {
		id = strings.ToValidUTF8(id[:maxIDLen], "")
	}
	maxBatch := int(req.GetMaxBatchEvents())
	if maxBatch <= 0 || maxBatch > b.opts.MaxBatchEvents {
		maxBatch = b.opts.MaxBatchEvents
	}

	b.mu.Lock()
	if b.refusing {
		b.mu.Unlock()
		return status.Error(codes.Unavailable, "jetstream: the bus is shutting down; retry later")
	}
	if b.subs >= b.opts.MaxSubscribers {
		n := b.subs
		b.mu.Unlock()
		return status.Errorf(codes.ResourceExhausted,
			"jetstream: %d subscriber streams already open, the limit; close unused streams or raise the subscriber limit", n)
	}
	b.subs++
	b.serving.Add(1)
	label := b.labels.Label(id)
	b.mu.Unlock()
	b.m.subscribers.Inc()
	defer func() {
		b.m.subscribers.Dec()
		b.mu.Lock()
		b.subs--
		b.mu.Unlock()
		b.serving.Done()
	}()

	s := &session{
		b: b, id: id, label: label, durable: id != "", max: maxBatch, typed: typed,
		msgs:        make(chan natsjs.Msg, 2*maxBatch),
		errc:        make(chan error, 1),
		gone:        make(chan struct{}),
		out:         jimbotpb.EventBatch{Events: make([]*jimbotpb.Event, 0, maxBatch)},
		evs:         make([]*jimbotpb.Event, maxBatch),
		batch:       make([]natsjs.Msg, 0, maxBatch),
		unacked:     make(map[uint64]natsjs.Msg),
		sent:        b.m.sent.WithLabelValues(label),
		redelivered: b.m.redelivered.WithLabelValues(label),
		lag:         b.m.lag.WithLabelValues(label),
		ackPending:  b.m.ackPending.WithLabelValues(label),
	}
	for i := range s.evs {
		s.evs[i] = new(jimbotpb.Event)
	}
	ctx := st.Context()
	cctx, cancel := context.WithTimeout(ctx, b.opts.AckTimeout)
	cons, err := b.consumer(cctx, id, set, req)
	cancel()
	if err != nil {
		return err
	}
	cc, err := cons.Consume(s.receive,
		natsjs.PullMaxMessages(2*maxBatch),
		natsjs.PullExpiry(b.opts.pullExpiry),
		natsjs.ConsumeErrHandler(s.consumeError))
	if err != nil {
		b.dropEphemeral(cons, s.durable)
		return status.Errorf(codes.Unavailable, "jetstream: cannot consume: %v", err)
	}
	if err := st.SendHeader(nil); err != nil {
		s.leave(cc, cons)
		return err
	}
	b.log.Info("jetstream: subscriber connected", "subscriber", id, "label", label, "durable", s.durable,
		"consumer", consumerNameOf(cons), "patterns", strings.Join(patterns, ","),
		"start", req.GetStartPosition().String(), "acks", acks != nil)
	err = s.serve(st, acks)
	s.leave(cc, cons)
	b.log.Info("jetstream: subscriber left", "subscriber", id, "reason", leaveReason(err))
	return err
}

func leaveReason(err error) string {
	if err == nil {
		return "bus stopped"
	}
	return err.Error()
}

// checkStart validates the start position of req.
func checkStart(req *jimbotpb.SubscribeRequest) error {
	switch sp := req.GetStartPosition(); sp {
	case jimbotpb.StartPosition_START_POSITION_UNSPECIFIED, jimbotpb.StartPosition_START_POSITION_NEW,
		jimbotpb.StartPosition_START_POSITION_FIRST:
	case jimbotpb.StartPosition_START_POSITION_SEQUENCE:
		if req.GetStartSequence() == 0 {
			return status.Error(codes.InvalidArgument, "jetstream: START_POSITION_SEQUENCE needs start_sequence 1 or more")
		}
	case jimbotpb.StartPosition_START_POSITION_TIME:
		if req.GetStartTimeNs() <= 0 {
			return status.Error(codes.InvalidArgument, "jetstream: START_POSITION_TIME needs start_time_ns (Unix nanoseconds)")
		}
	default:
		return status.Errorf(codes.InvalidArgument, "jetstream: unknown start position %d", sp)
	}
	return nil
}

// applyStart sets the deliver policy of a new consumer from req.
func applyStart(req *jimbotpb.SubscribeRequest, policy *natsjs.DeliverPolicy, seq *uint64, at **time.Time) {
	switch req.GetStartPosition() {
	case jimbotpb.StartPosition_START_POSITION_FIRST:
		*policy = natsjs.DeliverAllPolicy
	case jimbotpb.StartPosition_START_POSITION_SEQUENCE:
		*policy, *seq = natsjs.DeliverByStartSequencePolicy, req.GetStartSequence()
	case jimbotpb.StartPosition_START_POSITION_TIME:
		t := time.Unix(0, req.GetStartTimeNs())
		*policy, *at = natsjs.DeliverByStartTimePolicy, &t
	default:
		*policy = natsjs.DeliverNewPolicy
	}
}

// filters returns the consumer's filter subjects for set: one subject per
// topic, so that filters never overlap and nothing but events matches.
func (b *Bus) filters(set route.Set) []string {
	var out []string
	for id := range b.subjects {
		if set.Has(route.TopicID(id)) {
			out = append(out, b.subjects[id])
		}
	}
	if len(out) == 0 {
		out = append(out, b.prefix+"_none") // matches no topic, as the set
	}
	return out
}

// consumerName is the durable consumer of a subscriber id: the id with
// every character JetStream does not allow in a name replaced by '_', and a
// hash of the id appended when anything was replaced or cut.
func consumerName(id string) string {
	var sb strings.Builder
	sb.WriteString("jimbus-")
	changed := false
	for i, r := range id {
		if i >= 48 {
			changed = true
			break
		}
		if r < 0x80 && (r == '-' || r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
			changed = true
		}
	}
	if changed {
		h := fnv.New32a()
		h.Write([]byte(id))
		fmt.Fprintf(&sb, "-%08x", h.Sum32())
	}
	return sb.String()
}

// consumer returns the JetStream consumer that serves a subscription.
func (b *Bus) consumer(ctx context.Context, id string, set route.Set, req *jimbotpb.SubscribeRequest) (natsjs.Consumer, error) {
	filters := b.filters(set)
	if id == "" {
		cfg := natsjs.OrderedConsumerConfig{
			FilterSubjects:    filters,
			InactiveThreshold: max(6*b.opts.pullExpiry, 30*time.Second),
		}
		applyStart(req, &cfg.DeliverPolicy, &cfg.OptStartSeq, &cfg.OptStartTime)
		c, err := b.js.OrderedConsumer(ctx, b.opts.Stream, cfg)
		if err != nil {
			return nil, consumerError(err)
		}
		return c, nil
	}
	name := consumerName(id)
	cfg := natsjs.ConsumerConfig{
		Durable:        name,
		Description:    "jimbus subscriber " + strings.ToValidUTF8(id, "?"),
		FilterSubjects: filters,
		AckPolicy:      natsjs.AckExplicitPolicy,
		AckWait:        b.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  b.opts.MaxAckPending,
	}
	if b.opts.ConsumerInactive > 0 {
		cfg.InactiveThreshold = b.opts.ConsumerInactive
	}
	if req.GetStartPosition() == jimbotpb.StartPosition_START_POSITION_UNSPECIFIED {
		c, err := b.js.Consumer(ctx, b.opts.Stream, name)
		switch {
		case err == nil:
			have := c.CachedInfo().Config
			if sameFilters(have, filters) {
				return c, nil
			}
			have.FilterSubject, have.FilterSubjects = "", filters
			if c, err = b.js.UpdateConsumer(ctx, b.opts.Stream, have); err != nil {
				return nil, consumerError(err)
			}
			return c, nil
		case !errors.Is(err, natsjs.ErrConsumerNotFound):
			return nil, consumerError(err)
		}
	} else if err := b.js.DeleteConsumer(ctx, b.opts.Stream, name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return nil, consumerError(err)
	}
	applyStart(req, &cfg.DeliverPolicy, &cfg.OptStartSeq, &cfg.OptStartTime)
	c, err := b.js.CreateOrUpdateConsumer(ctx, b.opts.Stream, cfg)
	if err != nil {
		return nil, consumerError(err)
	}
	return c, nil
}

func sameFilters(cfg natsjs.ConsumerConfig, want []string) bool {
	have := slices.Clone(cfg.FilterSubjects)
	if cfg.FilterSubject != "" {
		have = append(have, cfg.FilterSubject)
	}
	want = slices.Clone(want)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// consumerError turns a failure to set a consumer up into a status:
// InvalidArgument for a request JetStream refused, Unavailable for anything
// else, a cluster still forming among them (its no-peers answer is a 400
// too, but a retry succeeds).
func consumerError(err error) error {
	code := codes.Unavailable
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 && !clusterForming(err) {
		code = codes.InvalidArgument
	}
	return status.Errorf(code, "jetstream: cannot set up the subscription's consumer: %v", err)
}

// dropEphemeral deletes an ordered consumer's server side at once (it would
// go after its inactivity threshold anyway).
func (b *Bus) dropEphemeral(cons natsjs.Consumer, durable bool) {
	if durable {
		return
	}
	name := consumerNameOf(cons)
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.js.DeleteConsumer(ctx, b.opts.Stream, name)
}

// consumerNameOf is the server-side name of cons; "" when an ordered
// consumer has not created one yet.
func consumerNameOf(cons natsjs.Consumer) string {
	if info := cons.CachedInfo(); info != nil {
		return info.Name
	}
	return ""
}

// receive is the consumer callback: it queues m for the writer, or, once
// the writer has left, keeps it for leave to hand back.
func (s *session) receive(m natsjs.Msg) {
	select {
	case <-s.gone:
	default:
		select {
		case s.msgs <- m:
			return
		case <-s.gone:
		}
	}
	s.lateMu.Lock()
	s.late = append(s.late, m)
	s.lateMu.Unlock()
}

// consumeError ends the stream on failures the consumer does not recover
// from (a durable consumer deleted, the connection closed); the others
// (missed heartbeats, leader changes) it recovers from by itself.
func (s *session) consumeError(_ natsjs.ConsumeContext, err error) {
	terminal := errors.Is(err, natsjs.ErrConnectionClosed) ||
		// An ordered consumer recreates itself when it is deleted.
		s.durable && (errors.Is(err, natsjs.ErrConsumerDeleted) || errors.Is(err, natsjs.ErrConsumerNotFound))
	switch {
	case terminal:
		select {
		case s.errc <- err:
		default:
		}
	default:
		s.b.log.Debug("jetstream: consumer", "subscriber", s.id, "err", err)
	}
}

// serve is the writer loop: it packs the queued events into one message, up
// to s.max, sends it, and acknowledges.
func (s *session) serve(st grpc.ServerStreamingServer[jimbotpb.EventBatch], acks <-chan uint64) error {
	ctx := st.Context()
	for {
		select {
		case m := <-s.msgs:
			s.add(m)
		case n := <-acks:
			s.ackThrough(n)
			continue
		case err := <-s.errc:
			return status.Errorf(codes.Unavailable, "jetstream: subscription ended: %v; reconnect", err)
		case <-s.b.quit:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	more:
		for len(s.batch) < s.max {
			select {
			case m := <-s.msgs:
				s.add(m)
			default:
				break more
			}
		}
		if len(s.out.Events) == 0 {
			s.ackBatch() // nothing decodable: do not deliver it again
			continue
		}
		s.out.Timestamp = time.Now().UnixMilli()
		err := st.Send(&s.out)
		n := len(s.out.Events)
		if err != nil {
			s.nakBatch()
			return err
		}
		s.sent.Add(float64(n))
		now := time.Now().UnixNano()
		if at := s.out.Events[0].GetReceivedAtNs(); at > 0 {
			s.b.m.latency.Observe(float64(now-at) / 1e9)
		}
		if acks == nil {
			s.ackBatch()
		} else {
			s.holdBatch()
		}
	}
}

// add decodes m into the next reused event of out.
func (s *session) add(m natsjs.Msg) {
	s.batch = append(s.batch, m)
	meta, err := m.Metadata()
	if err != nil {
		s.b.m.undecodable.Inc()
		return
	}
	ev := s.evs[len(s.out.Events)]
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		s.b.m.undecodable.Inc()
		s.b.log.Warn("jetstream: stored event does not decode; skipped", "subject", m.Subject(),
			"sequence", meta.Sequence.Stream, "err", err)
		return
	}
	ev.BusSequence = meta.Sequence.Stream
	if !s.typed {
		ev.Payload = nil
	}
	if ev.Topic == "" {
		ev.Topic = strings.TrimPrefix(m.Subject(), s.b.prefix)
	}
	if meta.NumDelivered > 1 {
		s.redelivered.Inc()
	}
	s.lag.Set(float64(meta.NumPending))
	s.out.Events = append(s.out.Events, ev)
}

// reset empties out and batch for the next message.
func (s *session) reset() {
	s.out.Events = s.out.Events[:0]
	clear(s.batch)
	s.batch = s.batch[:0]
}

// ackBatch acknowledges the messages of the batch (durable only).
func (s *session) ackBatch() {
	if s.durable {
		for _, m := range s.batch {
			_ = m.Ack()
		}
		s.b.m.acked.Add(float64(len(s.batch)))
	}
	s.reset()
}

// nakBatch hands the messages of the batch back for delivery at once.
func (s *session) nakBatch() {
	if s.durable {
		for _, m := range s.batch {
			_ = m.Nak()
		}
	}
	s.reset()
}

// holdBatch keeps the messages sent for the client's acknowledgement.
func (s *session) holdBatch() {
	if s.durable {
		for _, m := range s.batch {
			if meta, err := m.Metadata(); err == nil {
				s.unacked[meta.Sequence.Stream] = m
			}
		}
		s.ackPending.Set(float64(len(s.unacked)))
	}
	s.reset()
}

// ackThrough acknowledges every held message whose stream sequence is n or
// less.
func (s *session) ackThrough(n uint64) {
	acked := 0
	for seq, m := range s.unacked {
		if seq <= n {
			_ = m.Ack()
			delete(s.unacked, seq)
			acked++
		}
	}
	if acked > 0 {
		s.b.m.acked.Add(float64(acked))
		s.ackPending.Set(float64(len(s.unacked)))
	}
}

// leave ends the consumer subscription and hands back, for delivery at once
// to the next stream of this id, every message fetched and not
// acknowledged, in the order they were delivered: those sent and not
// acknowledged by the client, those queued for the writer, and those the
// consumer still buffered.
func (s *session) leave(cc natsjs.ConsumeContext, cons natsjs.Consumer) {
	close(s.gone)
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(leaveWait):
	}
	var back []natsjs.Msg
	if len(s.unacked) > 0 {
		seqs := slices.Sorted(maps.Keys(s.unacked))
		for _, seq := range seqs {
			back = append(back, s.unacked[seq])
		}
		clear(s.unacked)
	}
	for {
		select {
		case m := <-s.msgs:
			back = append(back, m)
			continue
		default:
		}
		break
	}
	s.lateMu.Lock()
	back = append(back, s.late...)
	s.late = nil
	s.lateMu.Unlock()
	if s.durable {
		for _, m := range back {
			_ = m.Nak()
		}
	}
	s.ackPending.Set(0)
	s.b.dropEphemeral(cons, s.durable)
}
