package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Bus. The zero value works: it joins the NATS server
// at nats.DefaultURL (nats://127.0.0.1:4222); every field documents its
// default.
type Options struct {
	// URL is the NATS server or cluster to join: one URL or several,
	// comma-separated ("nats://a:4222,nats://b:4222"); the client reconnects
	// to any of them (and to the servers the cluster announces). Ignored
	// when Embedded is set. Default "nats://127.0.0.1:4222".
	URL string
	// Embedded, when set, is a server of this process (see NewEmbedded),
	// joined in-process without a socket. It must be started before
	// Bus.Start and stopped after Bus.Stop.
	Embedded *Embedded
	// Name is the client connection name the NATS server shows.
	// Default "jimbus".
	Name string
	// Stream is the JetStream stream that stores the events. Default
	// "JIMBUS".
	Stream string
	// SubjectPrefix is the first subject token: an event of topic T is
	// stored under subject SubjectPrefix.T, and the stream holds
	// SubjectPrefix.>. Two buses on one cluster with different streams need
	// different prefixes. Default "jimbus".
	SubjectPrefix string
	// Replicas is the number of servers that store the stream (1, 3 or 5
	// in a cluster; 1 for a single server). Applies when Start creates the
	// stream or updates it. Default 1.
	Replicas int
	// MaxAge drops stored events older than this. Default 24h; negative:
	// no age limit.
	MaxAge time.Duration
	// MaxBytes drops the oldest events once the stream is larger. Default
	// 1 GiB; negative: no size limit.
	MaxBytes int64
	// DuplicateWindow is how long the stream remembers the message id of an
	// event (from its source, event_id and timestamp) to drop a resend
	// published after a failed or timed-out acknowledgement. Default 2m.
	DuplicateWindow time.Duration
	// MaxPending bounds the events published and not yet acknowledged by
	// JetStream, all Publish calls together; a Publish that would exceed it
	// answers route.ErrFull at once (ingest retries, then answers 503). A
	// batch larger than MaxPending is published alone. Default 4096.
	MaxPending int
	// AckTimeout bounds how long Publish waits for JetStream to acknowledge
	// every event of its batch; then it fails with ErrNotAcknowledged.
	// Default 5s.
	AckTimeout time.Duration
	// AckWait is how long a durable consumer waits for a subscriber's
	// acknowledgement before it delivers the event again. Default 30s.
	AckWait time.Duration
	// MaxAckPending is the most events delivered to a durable subscriber and
	// not acknowledged; JetStream delivers no more until some are. Default
	// 1024.
	MaxAckPending int
	// ConsumerInactive removes a durable subscription that no stream has
	// used for this long. Default 72h; negative: never.
	ConsumerInactive time.Duration
	// MaxBatchEvents is the most events in one EventBatch message sent to a
	// subscriber; a subscriber may ask for fewer. Default 256.
	MaxBatchEvents int
	// MaxSubscribers is the most subscriber streams at once on this
	// instance; one more is refused with codes.ResourceExhausted. Default
	// 1024.
	MaxSubscribers int
	// MaxSubscriberLabels is the most distinct subscriber ids that get
	// their own value of the "subscriber" metric label; later ids share
	// "other". Default 64.
	MaxSubscriberLabels int
	// HealthInterval is how often the stream is looked up for Healthy.
	// Default 2s.
	HealthInterval time.Duration
	// Registerer receives the metrics (prefix jimbus_jetstream_). Default
	// nil: they are kept but not registered.
	Registerer prometheus.Registerer
	// Logger logs connection changes, subscribers and failures (never per
	// event). Default slog.Default().
	Logger *slog.Logger
	// NoTypedView: the published events carry no typed view (the decoder
	// runs with decode.Options.NoTypedView), so a subscription asking for
	// PAYLOAD_VIEW_TYPED is refused (grpcout.ResolveView).
	NoTypedView bool

	// pullExpiry is how long one pull request of a subscriber's consumer
	// waits; a lost one (a consumer leader that changed) is noticed after
	// twice its heartbeat, half of it. Tests lower it. Default 5s.
	pullExpiry time.Duration
}

// Defaults of Options.
const (
	DefaultURL              = "nats://127.0.0.1:4222"
	DefaultName             = "jimbus"
	DefaultStream           = "JIMBUS"
	DefaultSubjectPrefix    = "jimbus"
	DefaultMaxAge           = 24 * time.Hour
	DefaultMaxBytes         = 1 << 30
	DefaultDuplicateWindow  = 2 * time.Minute
	DefaultMaxPending       = 4096
	DefaultAckTimeout       = 5 * time.Second
	DefaultAckWait          = 30 * time.Second
	DefaultMaxAckPending    = 1024
	DefaultConsumerInactive = 72 * time.Hour
	DefaultMaxBatchEvents   = 256
	DefaultMaxSubscribers   = 1024
	DefaultMaxLabels        = 64
	DefaultHealthInterval   = 2 * time.Second
)

// validName is what JetStream accepts for a stream name and what a subject
// token may be.
var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (o Options) withDefaults() (Options, error) {
	var errs []error
	neg := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("jetstream: %s is %d; want 0 (default) or more", name, v))
		}
	}
	neg("Replicas", o.Replicas)
	neg("MaxPending", o.MaxPending)
	neg("MaxAckPending", o.MaxAckPending)
	neg("MaxBatchEvents", o.MaxBatchEvents)
	neg("MaxSubscribers", o.MaxSubscribers)
	neg("MaxSubscriberLabels", o.MaxSubscriberLabels)
	for name, d := range map[string]time.Duration{
		"DuplicateWindow": o.DuplicateWindow, "AckTimeout": o.AckTimeout,
		"AckWait": o.AckWait, "HealthInterval": o.HealthInterval,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("jetstream: %s is %v; want 0 (default) or more", name, d))
		}
	}
	if o.Replicas > 5 {
		errs = append(errs, fmt.Errorf("jetstream: Replicas is %d; JetStream stores at most 5 copies", o.Replicas))
	}
	if o.Stream != "" && !validName.MatchString(o.Stream) {
		errs = append(errs, fmt.Errorf("jetstream: stream name %q: want 1 to 64 letters, digits, '_' or '-'", o.Stream))
	}
	if o.SubjectPrefix != "" && !validName.MatchString(o.SubjectPrefix) {
		errs = append(errs, fmt.Errorf("jetstream: subject prefix %q: want one token of letters, digits, '_' or '-'", o.SubjectPrefix))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.URL == "" {
		o.URL = DefaultURL
	}
	o.URL = strings.TrimSpace(o.URL)
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.MaxAge > 0 && o.DuplicateWindow > o.MaxAge {
		o.DuplicateWindow = o.MaxAge // JetStream refuses a longer window
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.AckWait == 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	if o.ConsumerInactive == 0 {
		o.ConsumerInactive = DefaultConsumerInactive
	}
	if o.MaxBatchEvents == 0 {
		o.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if o.MaxSubscribers == 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.MaxSubscriberLabels == 0 {
		o.MaxSubscriberLabels = DefaultMaxLabels
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.pullExpiry == 0 {
		o.pullExpiry = 5 * time.Second
	}
	return o, nil
}
