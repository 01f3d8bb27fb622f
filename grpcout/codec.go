package grpcout

import (
	"fmt"
	"math"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// ServerOption makes a gRPC server marshal the EventBatch messages of the
// subscriber streams with Codec. Every server that registers the EventBus
// service should use it; it changes nothing on the wire.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(codec) }

var codec = NewCodec()

// Codec is the proto codec with a hand-written encoder for EventBatch, the
// message that carries every event to every subscriber. The generic
// protobuf encoder walks each event twice through its tables (a Size pass,
// then a marshal pass); this one computes the sizes of the flat envelope
// fields arithmetically and writes them in one pass, and leaves only the
// typed payload views to the protobuf library. Buffers come from a pool
// that does not zero them (the encoder overwrites every byte). Every other
// message goes to the standard proto codec. The output is the standard
// encoding (fields in number order), so clients see no difference;
// TestCodecMatchesProto and FuzzCodec compare it with the library's.
type Codec struct{ std encoding.CodecV2 }

// NewCodec returns the codec.
func NewCodec() *Codec { return &Codec{std: encoding.GetCodecV2(protocodec.Name)} }

// Name is the proto codec's name: this codec replaces it on the server.
func (c *Codec) Name() string { return protocodec.Name }

// Unmarshal is the standard proto codec's.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error { return c.std.Unmarshal(data, v) }

// Marshal encodes an EventBatch itself and anything else with the standard
// codec.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	eb, ok := v.(*jimbotpb.EventBatch)
	if !ok || eb == nil {
		return c.std.Marshal(v)
	}
	sz := getSizes(len(eb.Events))
	defer putSizes(sz)
	n := sizeBatch(eb, sz)
	if mem.IsBelowBufferPoolingThreshold(n) {
		buf := appendBatch(make([]byte, 0, n), eb, sz)
		if len(buf) != n {
			return nil, sizeError(len(buf), n)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	bp := bufPool.Get(n)
	buf := appendBatch((*bp)[:0], eb, sz)
	if len(buf) != n {
		bufPool.Put(bp)
		return nil, sizeError(len(buf), n)
	}
	return mem.BufferSlice{mem.NewBuffer(bp, bufPool)}, nil
}

func sizeError(got, want int) error {
	return fmt.Errorf("grpcout: BUG: EventBatch encoded in %d bytes, sized %d (was an event changed while it was sent?)", got, want)
}

// sizes holds, per event of a batch, the event's size and its typed
// payload's size, computed by sizeBatch and used by appendBatch.
type sizes struct{ ev, payload []int }

var sizesPool = sync.Pool{New: func() any { return new(sizes) }}

func getSizes(n int) *sizes {
	s := sizesPool.Get().(*sizes)
	if cap(s.ev) < n {
		s.ev, s.payload = make([]int, n), make([]int, n)
	}
	s.ev, s.payload = s.ev[:n], s.payload[:n]
	return s
}

func putSizes(s *sizes) { sizesPool.Put(s) }

// Field numbers of EventBatch and Event.
const (
	fBatchID    = 1
	fEvents     = 2
	fSource     = 3
	fTimestamp  = 4
	fMetadata   = 100
	fMapKey     = 1
	fMapValue   = 2
	fPayload    = 101
	fClientTS   = 102
	fReceivedAt = 103
	fTopic      = 104
	fBusSeq     = 105
	fTypeName   = 106
	fSubtype    = 107
	fExtra      = 108
	fRepairs    = 109
	fDeadletter = 110
	fRaw        = 111
	fEvBatchID  = 112
)

// payloadOneof is Event's oneof, for the typed views.
var payloadOneof = (&jimbotpb.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("payload")

func tagSize(f protowire.Number) int { return protowire.SizeTag(f) }

func strSize(f protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return tagSize(f) + protowire.SizeBytes(n)
}

func varSize(f protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return tagSize(f) + protowire.SizeVarint(v)
}

// sizeBatch returns eb's encoded size and fills sz.
func sizeBatch(eb *jimbotpb.EventBatch, sz *sizes) int {
	n := strSize(fBatchID, len(eb.BatchId)) + strSize(fSource, len(eb.Source)) +
		varSize(fTimestamp, uint64(eb.Timestamp))
	for i, ev := range eb.Events {
		e, p := sizeEvent(ev)
		sz.ev[i], sz.payload[i] = e, p
		n += tagSize(fEvents) + protowire.SizeBytes(e)
	}
	return n + len(eb.ProtoReflect().GetUnknown())
}

// sizeEvent returns ev's encoded size and its typed payload's (0: none).
func sizeEvent(ev *jimbotpb.Event) (int, int) {
	if ev == nil {
		return 0, 0
	}
	n := strSize(1, len(ev.EventId)) + varSize(2, uint64(ev.Timestamp)) + varSize(3, uint64(int64(ev.Type))) +
		strSize(4, len(ev.Source)) + varSize(5, uint64(int64(ev.Version))) + strSize(6, len(ev.Priority)) +
		strSize(7, len(ev.GameId)) + strSize(8, len(ev.SessionId)) + varSize(9, uint64(int64(ev.SequenceNumber)))
	payload := 0
	if ev.Payload != nil {
		fd, m := typedPayload(ev)
		payload = proto.Size(m)
		n += tagSize(fd.Number()) + protowire.SizeBytes(payload)
	}
	for k, v := range ev.Metadata {
		n += tagSize(fMetadata) + protowire.SizeBytes(mapEntrySize(k, v))
	}
	n += strSize(fPayload, len(ev.PayloadJson))
	if math.Float64bits(ev.ClientTimestamp) != 0 {
		n += tagSize(fClientTS) + 8
	}
	n += varSize(fReceivedAt, uint64(ev.ReceivedAtNs)) + strSize(fTopic, len(ev.Topic)) +
		varSize(fBusSeq, ev.BusSequence) + strSize(fTypeName, len(ev.TypeName)) +
		strSize(fSubtype, len(ev.Subtype)) + strSize(fExtra, len(ev.ExtraJson)) +
		varSize(fRepairs, uint64(ev.Repairs)) + strSize(fDeadletter, len(ev.DeadletterReason)) +
		strSize(fRaw, len(ev.Raw)) + strSize(fEvBatchID, len(ev.BatchId))
	return n + len(ev.ProtoReflect().GetUnknown()), payload
}

// mapEntrySize is the size of a metadata entry: as the protobuf library
// does, its key and value are written even when empty.
func mapEntrySize(k, v string) int {
	return tagSize(fMapKey) + protowire.SizeBytes(len(k)) + tagSize(fMapValue) + protowire.SizeBytes(len(v))
}

// typedPayload returns the set member of ev's oneof and its message.
func typedPayload(ev *jimbotpb.Event) (protoreflect.FieldDescriptor, protoreflect.ProtoMessage) {
	m := ev.ProtoReflect()
	fd := m.WhichOneof(payloadOneof)
	return fd, m.Get(fd).Message().Interface()
}

func appendStr(b []byte, f protowire.Number, s string) []byte {
	if len(s) == 0 {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, f, protowire.BytesType), s)
}

func appendRaw(b []byte, f protowire.Number, s []byte) []byte {
	if len(s) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, f, protowire.BytesType), s)
}

func appendVar(b []byte, f protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, f, protowire.VarintType), v)
}

// appendBatch appends eb, whose sizes sizeBatch put in sz, in field order.
func appendBatch(b []byte, eb *jimbotpb.EventBatch, sz *sizes) []byte {
	b = appendStr(b, fBatchID, eb.BatchId)
	for i, ev := range eb.Events {
		b = protowire.AppendTag(b, fEvents, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sz.ev[i]))
		if ev != nil {
			b = appendEvent(b, ev, sz.payload[i])
		}
	}
	b = appendStr(b, fSource, eb.Source)
	b = appendVar(b, fTimestamp, uint64(eb.Timestamp))
	return append(b, eb.ProtoReflect().GetUnknown()...)
}

// appendEvent appends ev's fields in number order; payload is the size of
// its typed view.
func appendEvent(b []byte, ev *jimbotpb.Event, payload int) []byte {
	b = appendStr(b, 1, ev.EventId)
	b = appendVar(b, 2, uint64(ev.Timestamp))
	b = appendVar(b, 3, uint64(int64(ev.Type)))
	b = appendStr(b, 4, ev.Source)
	b = appendVar(b, 5, uint64(int64(ev.Version)))
	b = appendStr(b, 6, ev.Priority)
	b = appendStr(b, 7, ev.GameId)
	b = appendStr(b, 8, ev.SessionId)
	b = appendVar(b, 9, uint64(int64(ev.SequenceNumber)))
	if ev.Payload != nil {
		fd, m := typedPayload(ev)
		b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(payload))
		// The size was just computed for this message (sizeEvent).
		b, _ = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
	}
	for k, v := range ev.Metadata {
		b = protowire.AppendTag(b, fMetadata, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(mapEntrySize(k, v)))
		b = protowire.AppendString(protowire.AppendTag(b, fMapKey, protowire.BytesType), k)
		b = protowire.AppendString(protowire.AppendTag(b, fMapValue, protowire.BytesType), v)
	}
	b = appendRaw(b, fPayload, ev.PayloadJson)
	if bits := math.Float64bits(ev.ClientTimestamp); bits != 0 {
		b = protowire.AppendFixed64(protowire.AppendTag(b, fClientTS, protowire.Fixed64Type), bits)
	}
	b = appendVar(b, fReceivedAt, uint64(ev.ReceivedAtNs))
	b = appendStr(b, fTopic, ev.Topic)
	b = appendVar(b, fBusSeq, ev.BusSequence)
	b = appendStr(b, fTypeName, ev.TypeName)
	b = appendStr(b, fSubtype, ev.Subtype)
	b = appendRaw(b, fExtra, ev.ExtraJson)
	b = appendVar(b, fRepairs, uint64(ev.Repairs))
	b = appendStr(b, fDeadletter, ev.DeadletterReason)
	b = appendRaw(b, fRaw, ev.Raw)
	b = appendStr(b, fEvBatchID, ev.BatchId)
	return append(b, ev.ProtoReflect().GetUnknown()...)
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
