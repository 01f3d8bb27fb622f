package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// endpoint is the bounded set of paths the metrics are labelled with.
type endpoint uint8

const (
	epEvents endpoint = iota
	epBatch
	epEventsHealth
	epPoll
	epCommands
	epHealth
	epMetrics
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{
	epEvents:       "events",
	epBatch:        "events_batch",
	epEventsHealth: "events_health",
	epPoll:         "commands_poll",
	epCommands:     "commands",
	epHealth:       "health",
	epMetrics:      "metrics",
	epOther:        "other",
}

// statusCodes is the bounded set of status codes the request counter is labelled
// with; anything else counts as "other".
var statusCodes = [...]int{200, 400, 401, 404, 405, 408, 413, 417, 431, 500, 503}

const numCodes = len(statusCodes) + 1

func codeIndex(code int) int {
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return len(statusCodes)
}

// Rejection reason classes: a bounded set derived from the decoder's reasons.
const (
	reasonUnknownType = iota
	reasonMissingField
	reasonBadValue
	reasonBadJSON
	reasonLimit
	reasonContentType
	reasonEncoding
	reasonOther
	numReasons
)

var reasonNames = [numReasons]string{
	reasonUnknownType:  "unknown_type",
	reasonMissingField: "missing_field",
	reasonBadValue:     "bad_value",
	reasonBadJSON:      "bad_json",
	reasonLimit:        "limit",
	reasonContentType:  "content_type",
	reasonEncoding:     "content_encoding",
	reasonOther:        "other",
}

// reasonClass maps a decoder reason to its class. It runs only for rejected
// events and does not allocate.
func reasonClass(reason string) int {
	has := func(s string) bool { return containsFold(reason, s) }
	switch {
	case has("unknown event type"):
		return reasonUnknownType
	case has("too many"), has("too deep"), has("too long"), has("too large"), has("limit"), has("exceed"):
		return reasonLimit
	case has("missing field"), has("cannot be empty"):
		return reasonMissingField
	case has("at offset"), has("empty body"), has("expected an object"):
		return reasonBadJSON // syntax errors carry their offset
	case has("invalid type"):
		return reasonBadValue
	case has("invalid json"), has("syntax"), has("unexpected"), has("eof"):
		return reasonBadJSON
	}
	return reasonOther
}

// containsFold reports whether s contains the lower-case ASCII substr, ignoring
// ASCII case in s.
func containsFold(s, substr string) bool {
	n := len(substr)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != substr[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// Repair kinds counted per event.
var repairKinds = [...]struct {
	bit  uint32
	name string
}{
	{uint32(jimbotpb.Repair_REPAIR_NON_FINITE), "non_finite"},
	{uint32(jimbotpb.Repair_REPAIR_CONTROL_BYTE), "control_byte"},
}

// metrics holds every child resolved once, so that the hot path never calls
// WithLabelValues. Names never contain the words an older acceptance suite
// forbids in /metrics (see CONTRACT section 1).
type metrics struct {
	requests [numEndpoints][numCodes]prometheus.Counter
	duration [numEndpoints]prometheus.Observer

	acceptedHTTP, acceptedGRPC prometheus.Counter
	rejected                   [numReasons]prometheus.Counter
	deduplicated               prometheus.Counter
	repairedEvents             [len(repairKinds)]prometheus.Counter
	repairs                    prometheus.Counter
	publishFull                prometheus.Counter

	commandsQueued, commandsServed, commandsRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, dd *dedup, cmds *Commands, budget *route.Budget) (*metrics, error) {
	m := &metrics{}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_http_requests_total",
		Help: "HTTP requests answered, by endpoint and status code.",
	}, []string{"endpoint", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jimbus_http_request_duration_seconds",
		Help:    "Time from the start of the handler to the answer, by endpoint.",
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	}, []string{"endpoint"})
	accepted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_ingest_events_accepted_total",
		Help: "Events accepted and published (resends not included), by the way they came in.",
	}, []string{"via"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_ingest_events_rejected_total",
		Help: "Events rejected and published to system.deadletter (content_type: bodies not read), by reason class.",
	}, []string{"reason"})
	dedupd := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_ingest_events_deduplicated_total",
		Help: "Resent events acknowledged but not delivered again.",
	})
	repaired := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_ingest_events_repaired_total",
		Help: "Published events whose bytes the tolerant pre-pass repaired, by repair kind.",
	}, []string{"kind"})
	repairs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_ingest_repairs_total",
		Help: "Invalid values (bare nan/inf, raw control bytes) the tolerant pre-pass rewrote in published requests.",
	})
	full := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_ingest_publish_full_total",
		Help: "Requests refused with 503 (gRPC: Unavailable) because the fan-out stayed full for the publish wait.",
	})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jimbus_ingest_dedup_entries",
		Help: "Events remembered by the resend window (bounded by the entries limit).",
	}, func() float64 {
		if dd == nil {
			return 0
		}
		n, _ := dd.stats()
		return float64(n)
	})
	evicted := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "jimbus_ingest_dedup_evicted_total",
		Help: "Events forgotten by the resend window before it ended, to stay within the entries limit (raise --dedup-max-entries).",
	}, func() float64 {
		if dd == nil {
			return 0
		}
		_, e := dd.stats()
		return float64(e)
	})
	cq := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_commands_queued_total",
		Help: "Command lines queued for the game.",
	})
	cs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_commands_served_total",
		Help: "Command lines served to a poll.",
	})
	cr := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_commands_refused_total",
		Help: "Command lines refused because the queue was full.",
	})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jimbus_commands_pending",
		Help: "Command lines waiting for a poll.",
	}, func() float64 { return float64(cmds.Len()) })

	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jimbus_ingest_queued_bytes",
		Help: "Memory held by accepted requests not yet sent to every subscriber (estimate; bounded by --max-queued-bytes).",
	}, func() float64 { return float64(budget.Used()) })
	queuedLimit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jimbus_ingest_queued_bytes_limit",
		Help: "The --max-queued-bytes bound of jimbus_ingest_queued_bytes (0: none).",
	}, func() float64 { return float64(max(budget.Limit(), 0)) })

	if reg != nil {
		for _, c := range []prometheus.Collector{requests, duration, accepted, rejected, dedupd, repaired, repairs, full, entries, evicted, cq, cs, cr, pending, queued, queuedLimit} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	for e := range numEndpoints {
		for i := range numCodes {
			code := "other"
			if i < len(statusCodes) {
				code = strconv.Itoa(statusCodes[i])
			}
			m.requests[e][i] = requests.WithLabelValues(endpointNames[e], code)
		}
		m.duration[e] = duration.WithLabelValues(endpointNames[e])
	}
	m.acceptedHTTP = accepted.WithLabelValues("http")
	m.acceptedGRPC = accepted.WithLabelValues("grpc")
	for r := range numReasons {
		m.rejected[r] = rejected.WithLabelValues(reasonNames[r])
	}
	m.deduplicated = dedupd
	for i, k := range repairKinds {
		m.repairedEvents[i] = repaired.WithLabelValues(k.name)
	}
	m.repairs = repairs
	m.publishFull = full
	m.commandsQueued, m.commandsServed, m.commandsRefused = cq, cs, cr
	return m, nil
}
