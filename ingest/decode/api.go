package decode

import (
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// Options configures a Decoder. The zero value works.
type Options struct {
	// MaxEvents is the most events one batch body may hold; more is a
	// whole-request error. Default 10000.
	MaxEvents int
	// MaxDepth is the deepest JSON nesting accepted. Default 256.
	MaxDepth int
	// NoTypedView skips the typed oneof view (payload_json is always set).
	NoTypedView bool
}

// Kind is the endpoint a body came to.
type Kind uint8

const (
	// KindEvent is POST /api/v1/events: the body is one event object.
	KindEvent Kind = iota
	// KindBatch is POST /api/v1/events/batch: {"events":[...], ...}.
	KindBatch
)

// EventError is why the event at Index (0-based, in the request) was rejected.
type EventError struct {
	Index  int
	Reason string
}

// Result is what Decode made of one request body. It comes from a pool:
// give it back with ReleaseResult once the answer is written.
type Result struct {
	// Batch holds, in request order, every accepted event and a deadletter
	// event (topic system.deadletter, reason and raw bytes) for every
	// rejected one or for an unreadable body. It has one reference, which
	// the caller owns (ReleaseResult does not touch it). Never nil.
	Batch *route.Batch
	// Keys[i] is the deduplication key of Batch.Events[i]: a hash of
	// (source, event_id, client timestamp); 0 for an event that must never
	// be deduplicated (no event_id in the request, or a deadletter event).
	Keys []uint64
	// Accepted and Rejected count the request's events.
	Accepted, Rejected int
	// Errors lists the rejected events, in order.
	Errors []EventError
	// Fatal is set when the body as a whole is unusable (not JSON, not an
	// object, no "events" array, too many events); Accepted and Rejected
	// are then 0, Errors is empty and Batch holds one deadletter event that
	// carries the whole body. Fatal and the reasons in Errors stay valid
	// until ReleaseResult (they do not live in the batch).
	Fatal string
	// Repairs is the OR of the repair bits (jimbotpb.Repair) the tolerant
	// pre-pass applied; RepairCount counts the tokens it changed.
	Repairs     uint32
	RepairCount int

	kind    Kind
	reasons []byte // the bytes of Fatal and of Errors[i].Reason
}

// AppendError appends the answer's error text to dst: "" when nothing was
// rejected; for a batch with rejections "Processed 2/3 events. Errors:
// Event 1: Invalid format - Unknown event type: INVALID_TYPE"; for a single
// event its reason; when Fatal, Fatal. The text repeats client bytes (an
// unknown type as sent), so JSON-escape it before writing it into a body.
func (r *Result) AppendError(dst []byte) []byte {
	switch {
	case r.Fatal != "":
		return append(dst, r.Fatal...)
	case len(r.Errors) == 0:
		return dst
	case r.kind == KindEvent:
		return append(dst, r.Errors[0].Reason...)
	}
	dst = append(dst, "Processed "...)
	dst = appendInt(dst, r.Accepted)
	dst = append(dst, '/')
	dst = appendInt(dst, r.Accepted+r.Rejected)
	dst = append(dst, " events. Errors: "...)
	for i, e := range r.Errors {
		if i > 0 {
			dst = append(dst, "; "...)
		}
		dst = append(dst, "Event "...)
		dst = appendInt(dst, e.Index)
		dst = append(dst, ": "...)
		dst = append(dst, e.Reason...)
	}
	return dst
}

// Decoder turns request bodies into batches of pooled events. It is safe
// for concurrent use.
type Decoder struct{ opts Options }

// New returns a Decoder.
func New(opts Options) *Decoder {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	return &Decoder{opts: opts}
}

// Defaults of Options.
const (
	DefaultMaxEvents = 10000
	DefaultMaxDepth  = 256
)

// Decode decodes one request body. It copies what it keeps: body may be
// reused once Decode returns. receivedAt is the arrival time, Unix ns.
func (d *Decoder) Decode(kind Kind, body []byte, receivedAt int64) *Result {
	r := getResult()
	r.kind = kind
	st := getState()
	st.batch.ReceivedAt = receivedAt
	st.orig = append(st.orig[:0], body...)
	p := parser{
		d:          d,
		st:         st,
		r:          r,
		kind:       kind,
		receivedAt: receivedAt,
		maxDepth:   d.opts.MaxDepth,
		maxEvents:  d.opts.MaxEvents,
		typedView:  !d.opts.NoTypedView,
		buf:        st.orig,
		members:    st.members[:0],
	}
	p.decode()
	st.members = p.members[:0]
	r.Batch = st.batch
	return r
}

// FromProto normalises events published over gRPC the same way: topic
// from type (or type_name/subtype), event_id assigned when empty, keys,
// deadletter for an event without a known type or source. It takes
// ownership of evs (they are not pooled).
func (d *Decoder) FromProto(batchID string, evs []*jimbotpb.Event, receivedAt int64) *Result {
	return d.fromProto(batchID, evs, receivedAt)
}

// ReleaseResult returns r to the pool. r.Batch is not released.
func (d *Decoder) ReleaseResult(r *Result) {
	if r != nil {
		putResult(r)
	}
}
