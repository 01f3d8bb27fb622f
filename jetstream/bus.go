package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/jimbot/jimbus/grpcout"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// ErrNotAcknowledged is wrapped by the error of a Publish whose events
// JetStream did not all acknowledge in time (or refused): the caller keeps
// its reference and the client should resend the request. Events already
// stored are recognised by their message id within Options.DuplicateWindow.
var ErrNotAcknowledged = errors.New("jetstream: events not acknowledged by JetStream")

var _ route.Publisher = (*Bus)(nil)

// ErrNotStarted is returned by Publish before Start.
var ErrNotStarted = errors.New("jetstream: bus not started")

// Bus is the NATS JetStream fan-out backend: a route.Publisher that stores
// every event in a stream, and the Subscriptions of grpcout.Service that
// stream them to subscribers through JetStream consumers. See the package
// documentation.
type Bus struct {
	opts     Options
	log      *slog.Logger
	m        *metrics
	prefix   string   // SubjectPrefix + "."
	subjects []string // subject of every TopicID

	nc *nats.Conn
	js natsjs.JetStream

	pending atomic.Int64 // events published and not yet acknowledged
	pubs    atomic.Int64 // Publish calls in flight
	closed  atomic.Bool  // Stop began: Publish answers route.ErrClosed

	healthErr atomic.Pointer[healthState]

	started  atomic.Bool
	isReady  atomic.Bool // Start succeeded: nc and js are set
	stopping atomic.Bool
	quit     chan struct{} // closed by Stop: subscriber streams end
	done     chan struct{} // closed when the first Stop returns
	stopErr  error
	bg       sync.WaitGroup // the health goroutine

	// The command relay (RelayCommands); set before Start.
	cmdLocal CommandQueue
	cmdCheck func(*jimbotpb.Command) error
	cmdCC    natsjs.ConsumeContext
	cmdCons  natsjs.Consumer

	mu       sync.Mutex
	refusing bool                      // Stop began: no new subscriber
	subs     int                       // Serve calls admitted and not returned
	labels   *grpcout.SubscriberLabels // metric label values in use (under mu)
	serving  sync.WaitGroup            // Serve calls admitted
}

type healthState struct{ err error }

// New returns a Bus configured by opts. It validates opts and starts
// nothing: Start connects.
func New(opts Options) (*Bus, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Bus{
		opts:   opts,
		log:    opts.Logger,
		prefix: opts.SubjectPrefix + ".",
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		labels: grpcout.NewSubscriberLabels(opts.MaxSubscriberLabels),
	}
	for _, t := range route.Topics() {
		b.subjects = append(b.subjects, b.prefix+t)
	}
	b.healthErr.Store(&healthState{ErrNotStarted})
	b.m = newMetrics(b)
	if err := b.m.register(opts.Registerer); err != nil {
		return nil, err
	}
	return b, nil
}

// Start connects to NATS, creates the stream or updates its limits, and
// starts the health check. It fails when the NATS servers cannot be reached
// or JetStream refuses the stream. ctx bounds the connection and the
// stream's creation.
func (b *Bus) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.stopping.Load() {
		return errors.New("jetstream: Start after Stop")
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("jetstream: already started")
	}
	nopts := []nats.Option{
		nats.Name(b.opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil && !nc.IsClosed() {
				b.log.Warn("jetstream: disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("jetstream: reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Warn("jetstream: NATS error", "err", err)
		}),
	}
	url, where := b.opts.URL, redactURLs(b.opts.URL)
	if b.opts.Embedded != nil {
		nopts = append(nopts, nats.InProcessServer(b.opts.Embedded.srv))
		url, where = "", "the embedded server"
	}
	if dl, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(max(time.Until(dl), time.Millisecond)))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return fmt.Errorf("jetstream: cannot connect to NATS at %s: %w", where, err)
	}
	js, err := natsjs.New(nc,
		natsjs.WithPublishAsyncMaxPending(1<<20), // Publish bounds what is in flight
		natsjs.WithPublishAsyncTimeout(b.opts.AckTimeout),
		natsjs.WithDefaultTimeout(b.opts.AckTimeout),
	)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	if err := b.ensureStream(ctx); err != nil {
		nc.Close()
		return err
	}
	if b.cmdLocal != nil {
		if err := b.startCommands(ctx); err != nil {
			nc.Close()
			return err
		}
	}
	b.healthErr.Store(&healthState{})
	b.isReady.Store(true)
	b.bg.Add(1)
	go b.watchHealth()
	b.log.Info("jetstream: connected", "server", nc.ConnectedUrlRedacted(), "stream", b.opts.Stream,
		"subjects", b.prefix+">", "replicas", b.opts.Replicas)
	return nil
}

// redactURLs returns the comma-separated URLs with any user information
// replaced, for logs and errors.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := neturl.Parse(p); err == nil && u.User != nil {
			u.User = neturl.User("redacted")
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// streamConfig is the stream Start creates or updates.
func (b *Bus) streamConfig() natsjs.StreamConfig {
	cfg := natsjs.StreamConfig{
		Name:        b.opts.Stream,
		Description: "JimBus events (topic " + b.prefix + "<topic>)",
		Subjects:    []string{b.prefix + ">"},
		Retention:   natsjs.LimitsPolicy,
		Storage:     natsjs.FileStorage,
		Replicas:    b.opts.Replicas,
		Duplicates:  b.opts.DuplicateWindow,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     natsjs.DiscardOld,
	}
	if b.opts.MaxAge > 0 {
		cfg.MaxAge = b.opts.MaxAge
	}
	if b.opts.MaxBytes > 0 {
		cfg.MaxBytes = b.opts.MaxBytes
	}
	return cfg
}

// JetStream API error codes of a cluster that is still forming or electing
// its leaders (nats-server's JSClusterNoPeersErrF, e.g. "no suitable peers
// for placement, peer offline"; JSClusterNotAvailErr; JSClusterNotLeaderErr).
// nats.go names none of them.
const (
	errCodeClusterNoPeers   natsjs.ErrorCode = 10005
	errCodeClusterNotAvail  natsjs.ErrorCode = 10008
	errCodeClusterNotLeader natsjs.ErrorCode = 10009
)

// clusterForming reports whether err is what a cluster answers for a while
// as it forms or elects its leaders: no responders, a timeout, JetStream not
// yet enabled, or a peer not yet known to the meta leader. Such a request is
// worth another try shortly. A peer that stays away (more replicas than
// servers) answers the same no-peers error, so whoever retries must bound
// the tries.
func clusterForming(err error) bool {
	if errors.Is(err, natsjs.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, natsjs.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNoPeers, errCodeClusterNotAvail, errCodeClusterNotLeader:
			return true
		}
	}
	return false
}

func (b *Bus) ensureStream(ctx context.Context) error {
	cfg := b.streamConfig()
	var err error
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, b.opts.AckTimeout)
		_, err = b.js.CreateOrUpdateStream(cctx, cfg)
		cancel()
		if err == nil || attempt >= 20 || ctx.Err() != nil || !clusterForming(err) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("jetstream: cannot create or update stream %s (subjects %s>): %w", cfg.Name, b.prefix, err)
	}
	return nil
}

// Publish stores the events of bt in the stream (route.Publisher) and
// returns once JetStream acknowledged every one of them: nil means that
// each event is stored (on a majority of the stream's replicas, synced as
// the servers are configured). The events are published asynchronously,
// at most Options.MaxPending in flight for all callers together; beyond it
// Publish answers route.ErrFull at once. It returns route.ErrClosed once
// Stop began, and an error wrapping ErrNotAcknowledged when JetStream did
// not acknowledge every event within Options.AckTimeout; on any error the
// caller keeps its reference (some events may be stored: a resend of the
// same events within Options.DuplicateWindow is recognised and stored
// once). hint is not used: the stream orders everything.
func (b *Bus) Publish(_ uint32, bt *route.Batch) error {
	if bt == nil {
		panic("BUG: jetstream: Publish of a nil batch")
	}
	if len(bt.Topics) != len(bt.Events) {
		panic("BUG: jetstream: batch whose Topics and Events differ in length")
	}
	b.pubs.Add(1)
	defer b.pubs.Add(-1)
	if b.closed.Load() {
		return route.ErrClosed
	}
	if !b.ready() {
		return ErrNotStarted
	}
	n := int64(bt.Len())
	if n == 0 {
		bt.Release()
		return nil
	}
	if p := b.pending.Add(n); p > int64(b.opts.MaxPending) && p != n {
		b.pending.Add(-n)
		b.m.full.Inc()
		return route.ErrFull
	}
	start := time.Now()
	err := b.publish(bt)
	b.pending.Add(-n)
	b.m.publishSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		b.m.failed.Inc()
		return err
	}
	b.m.published.Add(float64(n))
	bt.Release()
	return nil
}

// futurePool recycles the slices of futures of Publish.
var futurePool = sync.Pool{New: func() any { s := make([]natsjs.PubAckFuture, 0, 64); return &s }}

// publish publishes every event of bt and waits for their acknowledgements.
func (b *Bus) publish(bt *route.Batch) error {
	fp := futurePool.Get().(*[]natsjs.PubAckFuture)
	futs := (*fp)[:0]
	defer func() {
		clear(futs)
		*fp = futs[:0]
		futurePool.Put(fp)
	}()
	var firstErr error
	for i, ev := range bt.Events {
		msg, err := b.message(ev, bt.Topics[i])
		if err == nil {
			var f natsjs.PubAckFuture
			if f, err = b.js.PublishMsgAsync(msg); err == nil {
				futs = append(futs, f)
				continue
			}
		}
		firstErr = err
		break
	}
	failed := len(bt.Events) - len(futs)
	// The library fails every future after AckTimeout; the timer only
	// guards against a future that is never resolved.
	timer := time.NewTimer(b.opts.AckTimeout + time.Second)
	defer timer.Stop()
wait:
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				b.m.duplicates.Inc()
			}
		case err := <-f.Err():
			failed++
			if firstErr == nil {
				firstErr = err
			}
		case <-timer.C:
			failed += len(futs) - i
			if firstErr == nil {
				firstErr = natsjs.ErrAsyncPublishTimeout
			}
			break wait
		}
	}
	if firstErr != nil {
		return fmt.Errorf("%w: %d of %d events failed (first: %v); resend them", ErrNotAcknowledged,
			failed, len(bt.Events), firstErr)
	}
	return nil
}

// message returns the NATS message of ev: the marshalled event on the
// subject of its topic, with a message id for JetStream's duplicate window
// when the event has an event_id. An event too large for the server is
// replaced by a deadletter event without its body.
func (b *Bus) message(ev *jimbotpb.Event, topic route.TopicID) (*nats.Msg, error) {
	if int(topic) >= len(b.subjects) {
		return nil, fmt.Errorf("jetstream: topic id %d out of range", topic)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("jetstream: cannot marshal event %q: %w", ev.GetEventId(), err)
	}
	if limit := b.nc.MaxPayload() - 512; int64(len(data)) > limit {
		b.m.oversize.Inc()
		dl := &jimbotpb.Event{
			EventId:      ev.GetEventId(),
			Timestamp:    ev.GetTimestamp(),
			Type:         ev.GetType(),
			Source:       ev.GetSource(),
			GameId:       ev.GetGameId(),
			SessionId:    ev.GetSessionId(),
			TypeName:     ev.GetTypeName(),
			Subtype:      ev.GetSubtype(),
			ReceivedAtNs: ev.GetReceivedAtNs(),
			BatchId:      ev.GetBatchId(),
			Topic:        route.TopicDeadletter.String(),
			DeadletterReason: fmt.Sprintf("event of %d bytes (topic %s) exceeds the %d bytes a NATS message may carry; "+
				"raise max_payload of the NATS servers", len(data), topic, b.nc.MaxPayload()),
		}
		if data, err = proto.Marshal(dl); err != nil {
			return nil, fmt.Errorf("jetstream: cannot marshal deadletter event: %w", err)
		}
		topic = route.TopicDeadletter
	}
	msg := &nats.Msg{Subject: b.subjects[topic], Data: data}
	if ev.GetEventId() != "" {
		msg.Header = nats.Header{natsjs.MsgIDHeader: []string{msgID(ev)}}
	}
	return msg, nil
}

// msgID is the JetStream message id of an event: a hash of (source,
// event_id, client timestamp), as ingest's resend window uses, but stable
// across processes so that every instance recognises a resend.
func msgID(ev *jimbotpb.Event) string {
	h := sha256.New()
	h.Write([]byte(ev.GetSource()))
	h.Write([]byte{0})
	h.Write([]byte(ev.GetEventId()))
	h.Write([]byte{0})
	var ts [8]byte
	binary.LittleEndian.PutUint64(ts[:], math.Float64bits(ev.GetClientTimestamp()))
	h.Write(ts[:])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// ready reports whether Start succeeded (nc and js may be used).
func (b *Bus) ready() bool { return b.isReady.Load() }

// Healthy returns nil while the bus is connected to NATS and its stream
// answered the last lookup (every Options.HealthInterval), or what is wrong.
// Feed it to /health and grpc.health.v1.
func (b *Bus) Healthy() error {
	if b.stopping.Load() {
		return errors.New("jetstream: bus stopping")
	}
	if st := b.healthErr.Load(); st.err != nil {
		return st.err
	}
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("jetstream: NATS connection %s", s)
	}
	return nil
}

// watchHealth looks the stream up every HealthInterval until Stop.
func (b *Bus) watchHealth() {
	defer b.bg.Done()
	t := time.NewTicker(b.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(b.opts.HealthInterval, time.Second))
		_, err := b.js.Stream(ctx, b.opts.Stream)
		cancel()
		if err != nil {
			err = fmt.Errorf("jetstream: stream %s does not answer: %w", b.opts.Stream, err)
		}
		prev := b.healthErr.Swap(&healthState{err})
		switch {
		case err != nil && prev.err == nil:
			b.log.Warn("jetstream: unhealthy", "err", err)
		case err == nil && prev.err != nil:
			b.log.Info("jetstream: healthy again")
		}
	}
}

// Subscribers returns the number of subscriber streams being served.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs
}

// Stop stops the bus: new Publish calls fail with route.ErrClosed and new
// subscribers are refused; Stop waits for the Publish calls in flight (each
// bounded by Options.AckTimeout), ends every subscriber stream with status
// OK (events delivered and not acknowledged go back to their durable
// consumer, to be delivered again), waits for them, flushes the
// acknowledgements to NATS and closes the connection. Stored events stay in
// the stream. When ctx ends first, Stop closes the connection at once and
// returns an error wrapping ctx.Err(). Stop is idempotent; later calls wait
// for the first and return its result.
func (b *Bus) Stop(ctx context.Context) error {
	if !b.stopping.CompareAndSwap(false, true) {
		select {
		case <-b.done:
			return b.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.stopErr = b.stop(ctx)
	close(b.done)
	return b.stopErr
}

func (b *Bus) stop(ctx context.Context) error {
	b.closed.Store(true)
	b.mu.Lock()
	b.refusing = true
	b.mu.Unlock()
	var err error
	for b.pubs.Load() != 0 && err == nil {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("jetstream: stop deadline passed with %d Publish calls waiting for acknowledgements: %w",
				b.pubs.Load(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	close(b.quit)
	served := make(chan struct{})
	go func() { b.serving.Wait(); close(served) }()
	select {
	case <-served:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("jetstream: stop deadline passed with %d subscriber streams still ending: %w",
				b.Subscribers(), ctx.Err())
		}
	}
	b.bg.Wait()
	b.stopCommands(ctx)
	if b.ready() {
		if err == nil && b.nc.Status() == nats.CONNECTED {
			if ferr := b.nc.FlushTimeout(flushWait(ctx)); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
				b.log.Warn("jetstream: cannot flush acknowledgements before closing", "err", ferr)
			}
		}
		b.nc.Close()
	}
	return err
}

// flushWait is how long Stop waits for NATS to confirm the last writes.
func flushWait(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(min(time.Until(dl), 5*time.Second), time.Millisecond)
	}
	return 5 * time.Second
}
