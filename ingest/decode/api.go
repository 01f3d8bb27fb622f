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
	// MaxDepth is the deepest JSON nesting accepted; a deeper event is
	// rejected ("nesting too deep"), a deeper body as a whole is Fatal.
	// The scanner stops at the first level too deep, so a body of 10,000
	// levels costs no more than reading up to that level. Default 256.
	MaxDepth int
	// MaxStringLen bounds, in bytes as received (quotes excluded, escapes
	// counted as written), every string of an event's envelope: the names of
	// its top-level members, type, subtype, source, event_id, priority, and
	// the keys and values of headers/metadata (the strings that subscribers
	// index, log and key deduplication on). An event with a longer one is
	// rejected to system.deadletter with the reason "string too long:
	// field `source` has 5000 bytes, at most 4096". The payload (and every
	// other member, kept in extra_json) is opaque data carried byte-exact
	// and is bounded only by the body size (ingest.Options.MaxBody), so a
	// 1 MiB payload string is accepted. A batch_id longer than the limit is
	// ignored (the events keep no batch id). FromProto applies the same
	// limit to the same fields. Default 4096.
	MaxStringLen int
	// NoTypedView skips the typed oneof view (payload_json is always set).
	NoTypedView bool
	// TypedWanted, when set, is asked once per request whether any consumer
	// wants the typed view now (grpcout.Bus.WantsTypedView). When it says
	// no, the view is left out and the batch is marked so that
	// route.Batch.FillTyped builds it later, should a consumer that wants it
	// receive the batch after all (one that subscribed while the request
	// was decoded). Setting it says that the consumer builds the views of a
	// marked batch before reading them. Ignored with NoTypedView.
	TypedWanted func() bool
	// DeferBelow: while TypedWanted is set, a body shorter than this many
	// bytes is decoded without the typed view whatever TypedWanted says,
	// its batch marked as when it says no, and the fan-out's writers build
	// the views (route.Batch.FillOnRead): the request is answered without
	// waiting for them, and a writer walks the views of the many small
	// requests it packs into one message one after the other, instead of
	// each request's handler walking its own after the socket's read. But
	// the handler still validates the payload, so the writer's walk is a
	// second pass over it, which costs more the larger the payload: a larger
	// body's views are built in the same pass that validates them. The
	// default, 512, takes in the mod's heartbeats (a single one is ~220
	// bytes, one in a batch ~410) and leaves out a JOKERS_CHANGED (~1 KB):
	// see bench/RESULTS.md, where deferring saves a single heartbeat ~1.5% of
	// the CPU a request costs and costs a JOKERS_CHANGED ~2.5% (both answer
	// ~6% more requests a second from 256 connections). Negative: never.
	DeferBelow int
	// KeyHint, when set, is called with each event's deduplication key
	// (Result.Keys) as soon as the decoder has it, before it walks the
	// event's payload, so that the caller can start fetching what the key
	// will need (ingest prefetches the key's bucket of its resend window:
	// the cache miss then overlaps with the decoding of the payload instead
	// of coming after the whole body). FromProto calls it too. Not called
	// for key 0; a body decoded again after the tolerant pre-pass gives the
	// keys decoded before it again. It must not block.
	KeyHint func(key uint64)
}

// Kind is the endpoint a body came to.
type Kind uint8

const (
	// KindEvent is POST /api/v1/events: the body is one event object.
	KindEvent Kind = iota
	// KindBatch is POST /api/v1/events/batch: {"events":[...], ...}.
	KindBatch
	// KindNDJSON is POST /api/v1/events/batch with Content-Type
	// application/x-ndjson: one event object per line (LF or CR LF), blank
	// lines skipped. Each line is decoded on its own, the tolerant pre-pass
	// included, so a broken line rejects only itself (to system.deadletter,
	// with its bytes); Event i of the answer is the i-th non-blank line,
	// 0-based. More than MaxEvents lines is Fatal; no line at all is an
	// empty batch, not an error.
	KindNDJSON
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
	pooled  keptMark
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
	if opts.MaxStringLen <= 0 {
		opts.MaxStringLen = DefaultMaxStringLen
	}
	if opts.DeferBelow == 0 {
		opts.DeferBelow = DefaultDeferBelow
	}
	return &Decoder{opts: opts}
}

// Defaults of Options.
const (
	DefaultMaxEvents    = 10000
	DefaultMaxDepth     = 256
	DefaultMaxStringLen = 4096
	DefaultDeferBelow   = 512
)

// Decode decodes one request body. It copies what it keeps: body may be
// reused once Decode returns. receivedAt is the arrival time, Unix ns.
func (d *Decoder) Decode(kind Kind, body []byte, receivedAt int64) *Result {
	st := getState()
	st.orig = append(st.orig[:0], body...)
	return d.decode(kind, st, receivedAt)
}

// DecodeSwap is Decode of a body it takes instead of copying: swap gets a
// spare buffer (empty; the caller uses it from then on in place of the
// body, e.g. for the next request) and returns the body, which the batch
// owns from then on: the caller must not use or change it again. With
// fasthttp, swap is the request's SwapBody: a 23 KB batch is not copied,
// and the process touches one buffer a request instead of two.
func (d *Decoder) DecodeSwap(kind Kind, receivedAt int64, swap func(spare []byte) (body []byte)) *Result {
	st := getState()
	st.orig = swap(st.orig[:0])
	return d.decode(kind, st, receivedAt)
}

// decode decodes st.orig into st's batch.
func (d *Decoder) decode(kind Kind, st *batchState, receivedAt int64) *Result {
	r := getResult()
	r.kind = kind
	st.batch.ReceivedAt = receivedAt
	// The parser lives in the state, not on the stack: with hundreds of
	// connections, a request runs on its connection's goroutine, whose
	// stack last ran hundreds of requests ago, and zeroing the parser there
	// cost twelve cold cache lines a request. Set field by field: a
	// composite literal would be built on the stack and copied.
	p := &st.p
	*p = parser{}
	p.d, p.st, p.r, p.kind, p.receivedAt = d, st, r, kind, receivedAt
	p.maxDepth, p.maxEvents, p.maxString = d.opts.MaxDepth, d.opts.MaxEvents, d.opts.MaxStringLen
	p.typedView = !d.opts.NoTypedView
	p.buf, p.members = st.orig, st.members[:0]
	p.envNext = envOrder
	if p.typedView && d.opts.TypedWanted != nil && (len(st.orig) < d.opts.DeferBelow || !d.opts.TypedWanted()) {
		p.typedView, p.deferTyped = false, true
		st.batch.DeferTyped(fillTyped)
	}
	p.decode()
	st.members = p.members[:0]
	st.batch.Bytes = st.footprint()
	r.Batch = st.batch
	return r
}

// FromProto normalises events published over gRPC the same way: topic
// from type (or type_name/subtype), event_id assigned when empty, keys,
// deadletter for an event without a known type or source or with an
// envelope string over MaxStringLen. More than MaxEvents events is Fatal
// (one deadletter event carries them all, marshalled as an EventBatch). The
// bus's own fields (bus_sequence, repairs, deadletter_reason, raw) are
// cleared, never taken from the client. It takes ownership of evs (they are
// not pooled).
func (d *Decoder) FromProto(batchID string, evs []*jimbotpb.Event, receivedAt int64) *Result {
	return d.fromProto(batchID, evs, receivedAt)
}

// ReleaseResult returns r to the pool. r.Batch is not released.
func (d *Decoder) ReleaseResult(r *Result) {
	if r != nil {
		putResult(r)
	}
}
