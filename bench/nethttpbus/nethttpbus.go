// Package nethttpbus provides the "obvious" event bus that the JimBus
// benchmarks compare against: net/http and encoding/json for ingest, a Go
// channel as the queue, and the same jimbot.EventBus Subscribe RPC for
// egress. It is what one writes in an afternoon, written fairly: keep-alive
// HTTP/1.1, one json.Unmarshal per request into a struct whose payload is a
// json.RawMessage, one protobuf EventBatch per request, and a single
// goroutine that sends each batch to every subscriber.
//
// It does what a naive bus does and nothing more: no validation beyond JSON,
// no repair of the mod's invalid tokens, no resend window, no topic
// filtering (every subscriber receives every event; the patterns of
// SubscribeRequest are ignored), no metrics.
//
// # Concurrency and ownership
//
// HTTP handlers decode into fresh values and send the batch on a buffered
// channel (blocking while it is full: the backpressure is the client's
// wait). The dispatcher goroutine owns the batches it receives; it calls
// Send on each subscriber's stream while holding that subscriber's mutex, so
// a stream whose Subscribe handler has returned is never written to.
package nethttpbus

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// Options configures a Bus. The zero value works.
type Options struct {
	// QueueSize is the capacity of the channel between the HTTP handlers
	// and the dispatcher, in batches. Default 1024.
	QueueSize int
	// MaxBody is the largest request body. Default 10 MiB.
	MaxBody int64
}

// Bus is the baseline bus: an HTTP handler, a channel, a dispatcher and the
// EventBus gRPC service (Subscribe only).
type Bus struct {
	jimbotpb.UnimplementedEventBusServer

	opts  Options
	queue chan *jimbotpb.EventBatch
	http  *http.Server
	mux   *http.ServeMux

	mu      sync.Mutex
	subs    map[*sub]struct{}
	closing bool // no more subscribers, no more batches

	inflight  sync.WaitGroup // HTTP handlers between the closing check and their send
	dispDone  chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup // Serve goroutines
}

type sub struct {
	mu   sync.Mutex
	st   grpc.ServerStreamingServer[jimbotpb.EventBatch]
	gone bool          // the handler returned, or Send failed
	done chan struct{} // closed by the dispatcher when it drops s
}

// wireEvent is one event of a request body.
type wireEvent struct {
	Type      string          `json:"type"`
	Source    string          `json:"source"`
	EventID   string          `json:"event_id"`
	Version   int32           `json:"version"`
	Timestamp float64         `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
}

type wireBatch struct {
	Source  string      `json:"source"`
	BatchID string      `json:"batch_id"`
	Events  []wireEvent `json:"events"`
}

// types maps the type strings to EventType, and topics each EventType to its
// topic: precomputed once, as anyone would.
var (
	types  = map[string]jimbotpb.EventType{}
	topics = map[jimbotpb.EventType]string{}
)

func init() {
	for _, row := range route.Table() {
		if row.Subtype == "" {
			topics[row.Type] = row.Topic
		}
	}
	for name, v := range jimbotpb.EventType_value {
		if len(name) > len("EVENT_TYPE_") {
			types[name[len("EVENT_TYPE_"):]] = jimbotpb.EventType(v)
		}
	}
	types["connection_test"] = jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST
}

// ErrStopped is returned by Start once Stop was called.
var ErrStopped = errors.New("nethttpbus: stopped")

// New returns a bus; it starts nothing but the dispatcher is started by Start.
func New(opts Options) *Bus {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 10 << 20
	}
	b := &Bus{
		opts:     opts,
		queue:    make(chan *jimbotpb.EventBatch, opts.QueueSize),
		subs:     map[*sub]struct{}{},
		dispDone: make(chan struct{}),
		mux:      http.NewServeMux(),
	}
	b.mux.HandleFunc("POST /api/v1/events/batch", func(w http.ResponseWriter, r *http.Request) { b.serve(w, r, true) })
	b.mux.HandleFunc("POST /api/v1/events", func(w http.ResponseWriter, r *http.Request) { b.serve(w, r, false) })
	b.http = &http.Server{Handler: b.mux, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	return b
}

// Handler returns the HTTP handler.
func (b *Bus) Handler() http.Handler { return b.mux }

// Register registers the EventBus service (Subscribe) on r.
func (b *Bus) Register(r grpc.ServiceRegistrar) { jimbotpb.RegisterEventBusServer(r, b) }

// Start starts the dispatcher (once) and serves HTTP on ln in a new
// goroutine. ln may be nil: only the dispatcher starts (for a caller that
// drives Handler itself).
func (b *Bus) Start(ln net.Listener) error {
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing {
		return ErrStopped
	}
	b.startOnce.Do(func() { go b.dispatch() })
	if ln != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_ = b.http.Serve(ln)
		}()
	}
	return nil
}

var (
	answerOK  = []byte(`{"status":"ok"}`)
	answerBad = []byte(`{"status":"error","error":"invalid JSON"}`)
	answerOff = []byte(`{"status":"error","error":"stopping"}`)
)

func (b *Bus) serve(w http.ResponseWriter, r *http.Request, isBatch bool) {
	w.Header().Set("Content-Type", "application/json")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.opts.MaxBody))
	if err != nil {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now().UnixNano()
	var wb wireBatch
	if isBatch {
		err = json.Unmarshal(body, &wb)
	} else {
		wb.Events = make([]wireEvent, 1)
		err = json.Unmarshal(body, &wb.Events[0])
	}
	if err != nil {
		w.Write(answerBad)
		return
	}
	eb := &jimbotpb.EventBatch{BatchId: wb.BatchID, Source: wb.Source, Timestamp: now / 1e6, Events: make([]*jimbotpb.Event, len(wb.Events))}
	for i := range wb.Events {
		e := &wb.Events[i]
		t := types[e.Type]
		eb.Events[i] = &jimbotpb.Event{
			EventId:         e.EventID,
			Timestamp:       now / 1e6,
			Type:            t,
			Source:          e.Source,
			Version:         e.Version,
			PayloadJson:     e.Payload,
			ClientTimestamp: e.Timestamp,
			ReceivedAtNs:    now,
			Topic:           topics[t],
			TypeName:        e.Type,
			BatchId:         wb.BatchID,
		}
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(answerOff)
		return
	}
	b.inflight.Add(1)
	b.mu.Unlock()
	b.queue <- eb
	b.inflight.Done()
	w.Write(answerOK)
}

// dispatch sends every batch to every subscriber, in order, until the queue
// is closed; then it ends every stream.
func (b *Bus) dispatch() {
	defer close(b.dispDone)
	var subs []*sub
	for eb := range b.queue {
		subs = subs[:0]
		b.mu.Lock()
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.Unlock()
		for _, s := range subs {
			s.mu.Lock()
			if !s.gone {
				if err := s.st.Send(eb); err != nil {
					s.gone = true
				}
			}
			gone := s.gone
			s.mu.Unlock()
			if gone {
				b.drop(s)
			}
		}
	}
	b.mu.Lock()
	for s := range b.subs {
		delete(b.subs, s)
		close(s.done)
	}
	b.mu.Unlock()
}

func (b *Bus) drop(s *sub) {
	b.mu.Lock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.done)
	}
	b.mu.Unlock()
}

// Subscribe streams every event to the client, one EventBatch per HTTP
// request, until the client leaves or the bus stops (then it returns nil:
// status OK). The subscription is active once the response headers are
// sent.
func (b *Bus) Subscribe(_ *jimbotpb.SubscribeRequest, st grpc.ServerStreamingServer[jimbotpb.EventBatch]) error {
	s := &sub{st: st, done: make(chan struct{})}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	if err := st.SendHeader(nil); err != nil {
		s.mu.Lock()
		s.gone = true
		s.mu.Unlock()
		b.drop(s)
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-st.Context().Done():
		s.mu.Lock() // waits for a Send in progress
		s.gone = true
		s.mu.Unlock()
		b.drop(s)
		return st.Context().Err()
	}
}

// Stop stops the HTTP server (in-flight requests finish), lets the
// dispatcher send what is queued, ends the subscriber streams, and waits, or
// until ctx is done. It may be called more than once.
func (b *Bus) Stop(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		err = b.http.Shutdown(ctx)
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		b.inflight.Wait()
		close(b.queue)
		b.startOnce.Do(func() { go b.dispatch() }) // drains and closes dispDone
	})
	done := make(chan struct{})
	go func() { <-b.dispDone; b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
