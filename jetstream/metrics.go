package jetstream

import (
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bus's Prometheus collectors, all named jimbus_jetstream_*.
// Per-subscriber children are resolved once per stream.
type metrics struct {
	published      prometheus.Counter
	publishSeconds prometheus.Histogram
	failed         prometheus.Counter
	full           prometheus.Counter
	duplicates     prometheus.Counter
	oversize       prometheus.Counter
	acked          prometheus.Counter
	undecodable    prometheus.Counter
	subscribers    prometheus.Gauge
	latency        prometheus.Histogram
	sent           *prometheus.CounterVec
	redelivered    *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	ackPending     *prometheus.GaugeVec

	commandsQueued, commandsDropped prometheus.Counter

	collectors []prometheus.Collector
}

func newMetrics(b *Bus) *metrics {
	bySubscriber := []string{"subscriber"}
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_published_events_total",
			Help: "Events stored in the stream and acknowledged by JetStream.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jimbus_jetstream_publish_seconds",
			Help:    "Seconds one Publish (the events of one request) took until JetStream acknowledged every event.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 3, 12), // 50us .. ~9s
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_publish_failures_total",
			Help: "Publish calls whose events JetStream did not all acknowledge in time (the client is asked to resend).",
		}),
		full: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_publish_full_total",
			Help: "Publish calls refused because the most events awaiting acknowledgement were in flight (--nats-max-pending).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_duplicate_events_total",
			Help: "Events JetStream recognised as resends within its duplicate window and stored once.",
		}),
		oversize: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_oversize_events_total",
			Help: "Events larger than a NATS message may be, stored as deadletter events without their body.",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_acknowledged_events_total",
			Help: "Events a durable subscriber acknowledged (on Subscribe: once sent).",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jimbus_jetstream_undecodable_events_total",
			Help: "Stored messages that did not decode as an Event and were skipped.",
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_subscribers",
			Help: "Subscriber streams served from JetStream consumers by this instance.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jimbus_jetstream_ingest_to_send_seconds",
			Help: "Seconds from the arrival of a request at ingest (Event.received_at_ns, on any instance) " +
				"to the Send that carried its first event to a subscriber; one observation per message sent.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 11), // 50us .. ~52s
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jimbus_jetstream_subscriber_events_sent_total",
			Help: "Events sent to a subscriber stream, by subscriber id (bounded; extra ids share \"other\").",
		}, bySubscriber),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jimbus_jetstream_subscriber_redelivered_events_total",
			Help: "Events delivered again to a durable subscriber (not acknowledged in time, or handed back " +
				"when a stream ended), by subscriber id.",
		}, bySubscriber),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_consumer_lag_events",
			Help: "Events in the stream that match a subscription and were not yet delivered to it, as of its " +
				"last delivery, by subscriber id.",
		}, bySubscriber),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_subscriber_unacknowledged_events",
			Help: "Events sent to a SubscribeAck stream and not yet acknowledged by its client, by subscriber id.",
		}, bySubscriber),
	}
	commands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_jetstream_relayed_commands_total",
		Help: "Commands for the game relayed through NATS and received by this instance, by outcome " +
			"(queued for the game's poll, or dropped: queue full or not decodable).",
	}, []string{"outcome"})
	m.commandsQueued = commands.WithLabelValues("queued")
	m.commandsDropped = commands.WithLabelValues("dropped")
	m.collectors = []prometheus.Collector{commands,
		m.published, m.publishSeconds, m.failed, m.full, m.duplicates, m.oversize, m.acked,
		m.undecodable, m.subscribers, m.latency, m.sent, m.redelivered, m.lag, m.ackPending,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_pending_acks",
			Help: "Events published to JetStream and not yet acknowledged by it.",
		}, func() float64 { return float64(b.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_pending_acks_limit",
			Help: "The most events awaiting acknowledgement at once (--nats-max-pending).",
		}, func() float64 { return float64(b.opts.MaxPending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_connected",
			Help: "1 while connected to a NATS server, else 0.",
		}, func() float64 {
			if b.ready() && b.nc.Status() == nats.CONNECTED {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jimbus_jetstream_healthy",
			Help: "1 while connected and the stream answers its periodic lookup, else 0.",
		}, func() float64 {
			if b.Healthy() == nil {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "jimbus_jetstream_reconnects_total",
			Help: "Times the NATS connection was re-established.",
		}, func() float64 {
			if !b.ready() {
				return 0
			}
			return float64(b.nc.Stats().Reconnects)
		}),
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
			return fmt.Errorf("jetstream: cannot register metrics: %w", err)
		}
	}
	return nil
}
