package grpcout

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SlowPolicy is what the dispatcher does when a subscriber's queue is full.
type SlowPolicy uint8

const (
	// Block makes the dispatcher wait for room in the slow subscriber's
	// queue, for at most Options.BlockTimeout; then that subscriber is
	// disconnected with codes.ResourceExhausted and the events it misses are
	// counted as dropped. While the dispatcher waits, every subscriber waits
	// and the publish ring fills (ingest answers 503): nothing is lost for a
	// subscriber that keeps reading, however slowly.
	Block SlowPolicy = iota
	// DropOldest drops the oldest batch queued for the slow subscriber to
	// make room, counting its events as dropped for that subscriber. Other
	// subscribers are never delayed.
	DropOldest
	// Disconnect ends the slow subscriber's stream at once with
	// codes.ResourceExhausted. Other subscribers are never delayed.
	Disconnect
)

var policyNames = [...]string{Block: "block", DropOldest: "drop-oldest", Disconnect: "disconnect"}

// String returns the flag spelling: "block", "drop-oldest" or "disconnect".
func (p SlowPolicy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("SlowPolicy(%d)", p)
}

// ParsePolicy parses the value of --slow-subscriber: "block", "drop-oldest"
// or "disconnect" (case-insensitive).
func ParsePolicy(s string) (SlowPolicy, error) {
	for p, name := range policyNames {
		if strings.EqualFold(s, name) {
			return SlowPolicy(p), nil
		}
	}
	return 0, fmt.Errorf("grpcout: unknown slow-subscriber policy %q; want block, drop-oldest or disconnect", s)
}

// Set parses s with ParsePolicy; with String it makes *SlowPolicy a
// flag.Value.
func (p *SlowPolicy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Options configures a Bus. The zero value works: every field documents its
// default.
type Options struct {
	// Shards is the number of shards of the publish ring; concurrent
	// publishers with different hints use different shards. Default
	// 2×GOMAXPROCS.
	Shards int
	// RingSize is the capacity of each shard in batches, rounded up to a
	// power of two. Default 4096.
	RingSize int
	// QueueSize is the capacity of each subscriber's queue in batches,
	// rounded up to a power of two. Default 1024.
	QueueSize int
	// MaxBatchEvents is the most events in one EventBatch message sent to a
	// subscriber; a subscriber may ask for fewer with
	// SubscribeRequest.max_batch_events. Default 256.
	MaxBatchEvents int
	// SlowPolicy is what happens when a subscriber's queue is full.
	// Default Block.
	SlowPolicy SlowPolicy
	// BlockTimeout bounds how long the dispatcher waits for a slow
	// subscriber under Block before it disconnects it. Default 2s.
	BlockTimeout time.Duration
	// MaxSubscribers is the most subscriber streams at once; one more is
	// refused with codes.ResourceExhausted. Default 1024.
	MaxSubscribers int
	// MaxSubscriberLabels is the most distinct subscriber ids that get their
	// own value of the "subscriber" metric label; later ids share "other".
	// Default 64.
	MaxSubscriberLabels int
	// Registerer receives the bus's metrics. Default nil: no metrics are
	// registered (they are still counted).
	Registerer prometheus.Registerer
	// Logger logs subscriber connects, disconnects and slow-subscriber
	// actions (never per event). Default slog.Default().
	Logger *slog.Logger
	// NoTypedView says that the events never carry the typed oneof view
	// (the decoder runs with decode.Options.NoTypedView): a subscription
	// asking for PAYLOAD_VIEW_TYPED is refused, UNSPECIFIED means JSON.
	NoTypedView bool
}

// Defaults of Options.
const (
	DefaultRingSize            = 4096
	DefaultQueueSize           = 1024
	DefaultMaxBatchEvents      = 256
	DefaultBlockTimeout        = 2 * time.Second
	DefaultMaxSubscribers      = 1024
	DefaultMaxSubscriberLabels = 64
)

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	neg := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("grpcout: %s is %d; want 0 (default) or more", name, v))
		}
	}
	neg("Shards", o.Shards)
	neg("RingSize", o.RingSize)
	neg("QueueSize", o.QueueSize)
	neg("MaxBatchEvents", o.MaxBatchEvents)
	neg("MaxSubscribers", o.MaxSubscribers)
	neg("MaxSubscriberLabels", o.MaxSubscriberLabels)
	if o.BlockTimeout < 0 {
		errs = append(errs, fmt.Errorf("grpcout: BlockTimeout is %v; want 0 (default) or more", o.BlockTimeout))
	}
	if int(o.SlowPolicy) >= len(policyNames) {
		errs = append(errs, fmt.Errorf("grpcout: unknown SlowPolicy %d", o.SlowPolicy))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.Shards == 0 {
		o.Shards = 2 * runtime.GOMAXPROCS(0)
	}
	if o.RingSize == 0 {
		o.RingSize = DefaultRingSize
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxBatchEvents == 0 {
		o.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if o.BlockTimeout == 0 {
		o.BlockTimeout = DefaultBlockTimeout
	}
	if o.MaxSubscribers == 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.MaxSubscriberLabels == 0 {
		o.MaxSubscriberLabels = DefaultMaxSubscriberLabels
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
