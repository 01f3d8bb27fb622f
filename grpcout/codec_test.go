package grpcout

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/jimbot/jimbus/ingest/decode"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// marshalBoth encodes eb with Codec and checks the bytes decode to eb and
// are as long as the protobuf library's encoding.
func checkCodec(t testing.TB, eb *jimbotpb.EventBatch) {
	t.Helper()
	bs, err := codec.Marshal(eb)
	if err != nil {
		t.Fatal(err)
	}
	got := bs.Materialize()
	bs.Free()
	if want := proto.Size(eb); len(got) != want {
		t.Fatalf("encoded in %d bytes, the library's encoding has %d", len(got), want)
	}
	var back jimbotpb.EventBatch
	if err := proto.Unmarshal(got, &back); err != nil {
		t.Fatalf("does not decode: %v", err)
	}
	if !proto.Equal(eb, &back) {
		t.Fatalf("decodes to\n%v\nwant\n%v", &back, eb)
	}
	if len(eb.Events) == 1 && eb.Events[0] != nil && eb.Events[0].Payload == nil && len(eb.Events[0].Metadata) <= 1 {
		// Without maps of several entries (in random order), byte for byte.
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(eb)
		if err != nil {
			t.Fatal(err)
		}
		if string(want) != string(got) {
			t.Fatalf("bytes differ from the library's:\n%x\n%x", got, want)
		}
	}
}

// everyField is an event with every field set to a value that stresses its
// encoding (see fill).
func everyField() *jimbotpb.Event {
	ev := &jimbotpb.Event{}
	fill(ev.ProtoReflect(), 0)
	return ev
}

// fill sets every field of m outside oneofs to a value that stresses its
// encoding (negative int32s, -0.0, long strings, two list elements and map
// entries, unknown fields), and fills the messages it holds depth levels
// down.
func fill(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.ContainingOneof() != nil:
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for _, k := range []string{"k", ""} {
				mp.Set(protoreflect.ValueOfString(k).MapKey(), stress(mp.NewValue(), fd.MapValue(), depth))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				l.Append(stress(l.NewElement(), fd, depth))
			}
		case fd.Message() != nil:
			if depth > 0 {
				m.Set(fd, stress(m.NewField(fd), fd, depth))
			}
		default:
			m.Set(fd, stress(m.NewField(fd), fd, depth))
		}
	}
	m.SetUnknown(protoreflect.RawFields{0xf8, 0x3e, 0x01})
}

// stress returns the value fill gives a field of fd's kind; v is a new
// value of the field.
func stress(v protoreflect.Value, fd protoreflect.FieldDescriptor, depth int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Any" {
			any, err := anypb.New(&jimbotpb.HeartbeatEvent{Uptime: 5})
			if err != nil {
				panic(err)
			}
			return protoreflect.ValueOfMessage(any.ProtoReflect())
		}
		if depth > 0 {
			fill(v.Message(), depth-1)
		}
		return v
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(string(fd.Name()) + string(make([]byte, 200)))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(make([]byte, 300))
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(-3)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(math.Copysign(0, -1))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(math.Copysign(0, -1)))
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(-1)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(math.MinInt64)
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(math.MaxUint32)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(math.MaxUint64)
	}
	panic("teach stress the kind of " + string(fd.FullName()))
}

// TestCodecMatchesProto: the EventBatch encoder gives the library's encoding
// for the real bodies (typed views on and off), every field, every typed
// view, nil and empty events and views, and leaves other messages to the
// standard codec.
func TestCodecMatchesProto(t *testing.T) {
	dir := filepath.Join("..", "testdata", "balatromcp")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, opts := range []decode.Options{{}, {NoTypedView: true}} {
		d := decode.New(opts)
		for _, name := range names {
			body, err := os.ReadFile(name)
			require.NoError(t, err)
			kind := decode.KindEvent
			if filepath.Base(name)[:8] == "request_" && filepath.Base(name) != "request_connection_test_body.json" {
				kind = decode.KindBatch
			}
			r := d.Decode(kind, body, 1)
			eb := &jimbotpb.EventBatch{BatchId: "b", Source: "s", Timestamp: 7, Events: r.Batch.Events}
			checkCodec(t, eb)
			for _, ev := range r.Batch.Events {
				checkCodec(t, &jimbotpb.EventBatch{Events: []*jimbotpb.Event{ev}})
			}
			r.Batch.Release()
			d.ReleaseResult(r)
		}
	}
	checkCodec(t, &jimbotpb.EventBatch{})
	checkCodec(t, &jimbotpb.EventBatch{Events: []*jimbotpb.Event{{}, nil, {}}})
	checkCodec(t, &jimbotpb.EventBatch{Events: []*jimbotpb.Event{everyField()}})

	// Every member of the oneof: nil inside, empty, and with every field
	// set (-0.0 in floats, nested messages and Events two levels down).
	oneof := (&jimbotpb.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("payload")
	for i := range oneof.Fields().Len() {
		fd := oneof.Fields().Get(i)
		for _, depth := range []int{-1, 0, 2} {
			ev := everyField()
			m := ev.ProtoReflect()
			v := m.NewField(fd)
			switch depth {
			case -1:
				v = protoreflect.ValueOfMessage(v.Message().Type().Zero())
			case 2:
				v = stress(v, fd, depth)
			}
			m.Set(fd, v)
			checkCodec(t, &jimbotpb.EventBatch{Events: []*jimbotpb.Event{ev, {}}})
		}
	}

	// A large batch goes through the pooled buffers; other messages through
	// the standard codec.
	big := &jimbotpb.EventBatch{}
	for range 300 {
		big.Events = append(big.Events, everyField())
	}
	checkCodec(t, big)
	checkCodec(t, big)
	bs, err := codec.Marshal(&jimbotpb.PublishResponse{Success: true, Message: "ok"})
	require.NoError(t, err)
	var pr jimbotpb.PublishResponse
	require.NoError(t, codec.Unmarshal(bs, &pr))
	require.True(t, pr.Success)
	bs.Free()
	_, err = codec.Marshal(42)
	require.Error(t, err)
	require.Equal(t, "proto", codec.Name())
}

// TestClassPool: buffers of the right length, reused by class, and foreign
// buffers are not taken.
func TestClassPool(t *testing.T) {
	p := newClassPool()
	for _, n := range []int{1, 4095, 4096, 4097, 1 << 20, 1<<24 + 1} {
		b := p.Get(n)
		require.Len(t, *b, n)
		require.GreaterOrEqual(t, cap(*b), n)
		p.Put(b)
	}
	foreign := make([]byte, 5000)
	p.Put(&foreign) // not a power of two: ignored
	b := p.Get(5000)
	require.Equal(t, 8192, cap(*b))
	var _ mem.BufferPool = p
}

// FuzzCodec: any EventBatch the library decodes, Codec encodes to bytes that
// decode to it again.
func FuzzCodec(f *testing.F) {
	for _, eb := range []*jimbotpb.EventBatch{
		{}, {Events: []*jimbotpb.Event{everyField()}},
		{BatchId: "b", Events: []*jimbotpb.Event{{Payload: &jimbotpb.Event_GameState{GameState: &jimbotpb.GameStateEvent{Ante: 3}}}}},
	} {
		b, err := proto.Marshal(eb)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var eb jimbotpb.EventBatch
		if proto.Unmarshal(data, &eb) != nil {
			return
		}
		checkCodec(t, &eb)
	})
}

// TestSharedBatch: a sharedBatch, whatever mix of its events comes encoded
// already, encodes to an EventBatch equal to the plain one, by Codec and by
// the standard codec; encodeEvents does not allocate once its buffers grew.
func TestSharedBatch(t *testing.T) {
	var evs []*jimbotpb.Event
	for _, b := range realEvents(t) {
		evs = append(evs, b...)
	}
	evs = append(evs, everyField(), &jimbotpb.Event{}, &jimbotpb.Event{Payload: &jimbotpb.Event_Heartbeat{}})
	bt := route.NewBatch(nil)
	for _, ev := range evs {
		bt.Add(ev, route.TopicDeadletter)
	}
	std := encoding.GetCodecV2(protocodec.Name)
	r := rand.New(rand.NewPCG(1, 2))
	for form, noView := range []bool{false, true} {
		var enc route.Encoded
		encodeEvents(bt, &enc, noView)
		require.NoError(t, enc.Err)
		out := &jimbotpb.EventBatch{BatchId: "b", Source: "s", Timestamp: 9}
		jv := newJSONView(4)
		for _, ev := range evs {
			if noView {
				ev = jv.of(ev)
			}
			out.Events = append(out.Events, ev)
		}
		plain, err := codec.Marshal(out)
		require.NoError(t, err)
		want := plain.Materialize()
		plain.Free()
		for round := range 20 {
			sb := &sharedBatch{EventBatch: out}
			for i := range out.Events {
				var part []byte
				if round == 0 || r.IntN(3) > 0 { // round 0: every event shared
					part = enc.Event(i)
				}
				sb.parts = append(sb.parts, part)
			}
			for _, c := range []encoding.CodecV2{codec, std} {
				bs, err := c.Marshal(sb)
				require.NoError(t, err)
				got := bs.Materialize()
				bs.Free()
				require.Len(t, got, len(want), "form %d round %d", form, round)
				var a, b jimbotpb.EventBatch
				require.NoError(t, proto.Unmarshal(want, &a))
				require.NoError(t, proto.Unmarshal(got, &b))
				require.True(t, proto.Equal(&a, &b), "form %d round %d", form, round)
			}
		}
		n := testing.AllocsPerRun(50, func() { encodeEvents(bt, &enc, noView) })
		require.Zero(t, n, "encodeEvents allocations, form %d", form)
	}
	_, err := codec.Marshal(&sharedBatch{EventBatch: &jimbotpb.EventBatch{Events: evs[:2]}})
	require.ErrorContains(t, err, "parts")
}
