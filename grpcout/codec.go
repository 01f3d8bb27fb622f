package grpcout

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// ServerOption makes a gRPC server marshal the EventBatch messages of the
// subscriber streams with Codec. Every server that registers the EventBus
// service should use it; it changes nothing on the wire.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(codec) }

var codec = NewCodec()

// Codec is the proto codec with a generated encoder for EventBatch, the
// message that carries every event to every subscriber. The protobuf
// library's encoder walks each message through its reflection tables twice
// (a Size pass, then a marshal pass) and allocates for maps; the code that
// protoc-gen-go-vtproto generates for balatro_events.proto (make proto, with
// proto/internal/vtfix's corrections) sizes the message with plain
// arithmetic and writes it from its end, each length prefix after its
// content, without allocating (BenchmarkMarshalBatch, 60 real events with
// typed views: 34-43 us, the library 154-170 us). Buffers come from a pool
// that does not zero them (the encoder overwrites every byte it returns).
// Every other message goes to the standard proto codec. The output is the standard
// encoding, so clients see no difference; TestCodecMatchesProto and
// FuzzCodec compare it with the library's.
type Codec struct{ std encoding.CodecV2 }

// NewCodec returns the codec.
func NewCodec() *Codec { return &Codec{std: encoding.GetCodecV2(protocodec.Name)} }

// Name is the proto codec's name: this codec replaces it on the server.
func (c *Codec) Name() string { return protocodec.Name }

// Unmarshal is the standard proto codec's.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error { return c.std.Unmarshal(data, v) }

// Marshal encodes an EventBatch with its generated encoder, a sharedBatch
// with the encodings it carries, and anything else with the standard codec.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	if sb, ok := v.(*sharedBatch); ok && sb.EventBatch != nil {
		return marshalShared(sb)
	}
	eb, ok := v.(*jimbotpb.EventBatch)
	if !ok || eb == nil {
		return c.std.Marshal(v)
	}
	return encodeTo(eb.SizeVT(), func(buf []byte) error { return marshalInto(buf, eb) })
}

// encodeTo returns a message of n bytes that write fills: in a buffer of
// bufPool from gRPC's pooling threshold up, else in a new slice.
func encodeTo(n int, write func(buf []byte) error) (mem.BufferSlice, error) {
	if mem.IsBelowBufferPoolingThreshold(n) {
		buf := make([]byte, n)
		if err := write(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	bp := bufPool.Get(n)
	if err := write(*bp); err != nil {
		bufPool.Put(bp)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(bp, bufPool)}, nil
}

// marshalInto encodes eb into buf, which is eb.SizeVT() long.
func marshalInto(buf []byte, eb *jimbotpb.EventBatch) (err error) {
	defer func() {
		// The generated encoder writes from the end of buf and indexes out
		// of it when the message grew after it was sized.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errResized, r)
		}
	}()
	w, err := eb.MarshalToSizedBufferVT(buf)
	if err == nil && w != len(buf) {
		err = fmt.Errorf("%w: %d bytes written, %d sized", errResized, w, len(buf))
	}
	return err
}

var errResized = errors.New("grpcout: BUG: EventBatch encoded in another size than sized (was an event changed while it was sent?)")

// Forms of the events that route.Batch.Encoded holds: with their typed
// views, and without (the JSON view).
const (
	formTyped = 0
	formJSON  = 1
)

// encodeForm encodes a batch's events in each form.
var encodeForm = [2]func(*route.Batch, *route.Encoded){
	formTyped: func(bt *route.Batch, e *route.Encoded) { encodeEvents(bt, e, false) },
	formJSON:  func(bt *route.Batch, e *route.Encoded) { encodeEvents(bt, e, true) },
}

// encodeEvents encodes each event of bt into e, without its typed view
// when noView (what a JSON-view subscriber sends).
func encodeEvents(bt *route.Batch, e *route.Encoded, noView bool) {
	defer func() {
		if r := recover(); r != nil { // an event changed while encoded
			e.Err = fmt.Errorf("%w: %v", errResized, r)
		}
	}()
	tmp := envelopePool.Get().(*jimbotpb.Event)
	defer func() { *tmp = jimbotpb.Event{}; envelopePool.Put(tmp) }()
	form := func(ev *jimbotpb.Event) *jimbotpb.Event {
		if noView && ev != nil && ev.Payload != nil {
			copyEnvelope(tmp, ev)
			return tmp
		}
		return ev
	}
	// One pass: each event put in its form (a JSON view copies the
	// envelope) once, sized, then written at the end of Buf.
	e.Buf, e.Ends = e.Buf[:0], e.Ends[:0]
	for i, ev := range bt.Events {
		m := form(ev)
		n, start := m.SizeVT(), len(e.Buf)
		e.Buf = slices.Grow(e.Buf, n)[:start+n]
		if w, err := m.MarshalToSizedBufferVT(e.Buf[start:]); err != nil || w != n {
			e.Err = fmt.Errorf("%w: event %d: %d bytes written, %d sized (%v)", errResized, i, w, n, err)
			return
		}
		e.Ends = append(e.Ends, len(e.Buf))
	}
}

// envelopePool holds the scratch events encodeEvents copies envelopes into.
var envelopePool = sync.Pool{New: func() any { return new(jimbotpb.Event) }}

// sharedBatch is an EventBatch some of whose events are sent as a
// route.Batch encoded them once for several subscribers: parts[i], when not
// nil, is the encoding of Events[i]. It is a proto.Message (the embedded
// EventBatch's), so a codec other than Codec marshals the events
// themselves, to the same bytes.
type sharedBatch struct {
	*jimbotpb.EventBatch
	parts [][]byte
	sizes []int // marshalShared's scratch
}

// marshalShared encodes sb as Marshal encodes its EventBatch (fields in
// number order), copying the parts it has.
func marshalShared(sb *sharedBatch) (mem.BufferSlice, error) {
	eb := sb.EventBatch
	if len(sb.parts) != len(eb.Events) {
		return nil, fmt.Errorf("grpcout: BUG: sharedBatch of %d events with %d parts", len(eb.Events), len(sb.parts))
	}
	sb.sizes = sb.sizes[:0]
	n := strSize(len(eb.BatchId)) + strSize(len(eb.Source)) + len(eb.ProtoReflect().GetUnknown())
	if eb.Timestamp != 0 {
		n += 1 + protowire.SizeVarint(uint64(eb.Timestamp))
	}
	for i, ev := range eb.Events {
		l := len(sb.parts[i])
		if sb.parts[i] == nil {
			l = ev.SizeVT()
		}
		sb.sizes = append(sb.sizes, l)
		n += 1 + protowire.SizeBytes(l)
	}
	return encodeTo(n, func(buf []byte) error {
		out, err := appendShared(buf[:0], sb)
		if err == nil && len(out) != n {
			err = fmt.Errorf("%w: %d bytes written, %d sized", errResized, len(out), n)
		}
		return err
	})
}

func strSize(l int) int {
	if l == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(l)
}

// appendShared appends sb's encoding, sized by marshalShared, to buf, whose
// capacity holds it.
func appendShared(buf []byte, sb *sharedBatch) (_ []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errResized, r)
		}
	}()
	eb := sb.EventBatch
	if eb.BatchId != "" {
		buf = protowire.AppendString(protowire.AppendTag(buf, 1, protowire.BytesType), eb.BatchId)
	}
	for i, ev := range eb.Events {
		l := sb.sizes[i]
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 2, protowire.BytesType), uint64(l))
		if p := sb.parts[i]; p != nil {
			buf = append(buf, p...)
			continue
		}
		start := len(buf)
		buf = buf[:start+l]
		if w, err := ev.MarshalToSizedBufferVT(buf[start:]); err != nil || w != l {
			return nil, fmt.Errorf("%w: event %d: %d bytes written, %d sized (%v)", errResized, i, w, l, err)
		}
	}
	if eb.Source != "" {
		buf = protowire.AppendString(protowire.AppendTag(buf, 3, protowire.BytesType), eb.Source)
	}
	if eb.Timestamp != 0 {
		buf = protowire.AppendVarint(protowire.AppendTag(buf, 4, protowire.VarintType), uint64(eb.Timestamp))
	}
	return append(buf, eb.ProtoReflect().GetUnknown()...), nil
}

// bufPool hands out message buffers by power-of-two class without zeroing
// them (gRPC's default pool clears every buffer it hands out; the encoder
// writes every byte of its buffer).
var bufPool = newClassPool()

const (
	minClass = 12 // 4 KiB
	maxClass = 24 // 16 MiB; larger buffers are not pooled
)

type classPool struct{ classes [maxClass + 1]sync.Pool }

func newClassPool() *classPool { return &classPool{} }

func classOf(n int) int { return bits.Len(uint(n - 1)) }

// Get returns a buffer of length n.
func (p *classPool) Get(n int) *[]byte {
	c := max(classOf(n), minClass)
	if c > maxClass {
		b := make([]byte, n)
		return &b
	}
	if v := p.classes[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put takes back a buffer from Get.
func (p *classPool) Put(b *[]byte) {
	c := classOf(cap(*b))
	if cap(*b) != 1<<c || c < minClass || c > maxClass {
		return // not one of ours
	}
	p.classes[c].Put(b)
}
