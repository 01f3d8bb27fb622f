package grpcout

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	jimbotpb "github.com/jimbot/jimbus/proto"
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

// Marshal encodes an EventBatch with its generated encoder and anything
// else with the standard codec.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	eb, ok := v.(*jimbotpb.EventBatch)
	if !ok || eb == nil {
		return c.std.Marshal(v)
	}
	n := eb.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(n) {
		buf := make([]byte, n)
		if err := marshalInto(buf, eb); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	bp := bufPool.Get(n)
	if err := marshalInto(*bp, eb); err != nil {
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
