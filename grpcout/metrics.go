package grpcout

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bus's Prometheus collectors. Children with fixed labels
// are resolved here, and per-subscriber children once per subscription, so
// that the hot path never calls WithLabelValues.
type metrics struct {
	ringFull    prometheus.Counter
	deliveries  prometheus.Counter
	latency     prometheus.Histogram
	sent        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	killedFull  prometheus.Counter // Disconnect policy
	killedBlock prometheus.Counter // Block policy, after BlockTimeout
	shared      prometheus.Counter // events sent as encoded once for several subscribers

	collectors []prometheus.Collector
}

// Label values of jimbus_grpc_subscriber_disconnects_total.
const (
	reasonQueueFull    = "queue_full"
	reasonBlockTimeout = "block_timeout"
)

// Special values of the "subscriber" label.
const (
	labelOther     = "other"
	labelAnonymous = "anonymous"
	labelRedacted  = "redacted"
	maxLabelLen    = 64
)

func newMetrics(b *Bus) *metrics {
	m := &metrics{
		ringFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_fanout_ring_full_total",
			Help: "Publish calls refused because the fan-out ring was full (ingest answers 503).",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_fanout_deliveries_total",
			Help: "Batches queued to a subscriber: one per batch and subscriber with at least one matching event.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jimbus_ingest_to_send_seconds",
			Help: "Seconds from the arrival of a request at ingest (Event.received_at_ns) to the Send that " +
				"carried its events to a subscriber; one observation per request batch and subscriber.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 11), // 10us .. ~10s
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jimbus_grpc_subscriber_events_sent_total",
			Help: "Events sent to a subscriber stream, by subscriber id (bounded; extra ids share \"other\").",
		}, []string{"subscriber"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jimbus_grpc_subscriber_events_dropped_total",
			Help: "Events a subscriber missed under its slow-subscriber policy, by subscriber id " +
				"(bounded; extra ids share \"other\").",
		}, []string{"subscriber"}),
		shared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_grpc_events_sent_shared_total",
			Help: "Events sent to a subscriber as encoded once for every subscriber that takes the whole " +
				"batch in the same payload view (two or more): the encodings saved are this less one per batch.",
		}),
	}
	disconnects := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_grpc_subscriber_disconnects_total",
		Help: "Subscriber streams ended by the bus because they were too slow, by reason.",
	}, []string{"reason"})
	m.killedFull = disconnects.WithLabelValues(reasonQueueFull)
	m.killedBlock = disconnects.WithLabelValues(reasonBlockTimeout)

	m.collectors = []prometheus.Collector{
		m.ringFull, m.deliveries, m.latency, m.sent, m.dropped, m.shared, disconnects,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_fanout_ring_batches",
			Help: "Batches waiting in the fan-out ring for the dispatcher.",
		}, func() float64 { return float64(b.ring.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_fanout_ring_capacity_batches",
			Help: "Capacity of the fan-out ring in batches, all shards together.",
		}, func() float64 { return float64(b.ring.Cap()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "jimbus_fanout_events_total",
			Help: "Events the dispatcher has numbered (bus_sequence) and routed.",
		}, func() float64 { return float64(b.seq.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_grpc_subscribers",
			Help: "Subscriber streams connected and receiving.",
		}, func() float64 { return float64(b.Subscribers()) }),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for i, c := range m.collectors {
		if err := r.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				r.Unregister(done)
			}
			return fmt.Errorf("grpcout: cannot register metrics: %w", err)
		}
	}
	return nil
}

// forbiddenWords must never appear in the /metrics body (CONTRACT section 1).
var forbiddenWords = []string{"password", "secret", "key", "token", "private", "stack trace"}

// SubscriberLabels bounds the subscriber label values of a backend's
// metrics; both backends (grpcout, jetstream) use it. Not safe for
// concurrent use: callers serialise Label.
type SubscriberLabels struct {
	max  int
	seen map[string]struct{}
}

// NewSubscriberLabels returns a set of at most max distinct values.
func NewSubscriberLabels(max int) *SubscriberLabels {
	return &SubscriberLabels{max: max, seen: make(map[string]struct{})}
}

// Label returns the metric label value for a subscriber id: the id made
// valid UTF-8 and cut to maxLabelLen bytes, "anonymous" when empty,
// "redacted" when it holds a word that must not appear in /metrics, and
// "other" once max distinct values are in use.
func (ls *SubscriberLabels) Label(id string) string {
	l := id
	if l == "" {
		l = labelAnonymous
	}
	if len(l) > maxLabelLen {
		l = l[:maxLabelLen]
	}
	if !utf8.ValidString(l) {
		l = strings.ToValidUTF8(l, "?")
	}
	lower := strings.ToLower(l)
	for _, w := range forbiddenWords {
		if strings.Contains(lower, w) {
			l = labelRedacted
			break
		}
	}
	if _, ok := ls.seen[l]; ok {
		return l
	}
	if len(ls.seen) >= ls.max {
		return labelOther
	}
	ls.seen[l] = struct{}{}
	return l
}
