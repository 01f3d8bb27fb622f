package loadtest

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// The load tester's subscription reads only the envelope fields it accounts
// with (event_id, source, received_at_ns, topic, type_name) from the raw
// EventBatch messages, skipping payloads and typed views without decoding
// them: it shares the machine with the bus, and a full protobuf decode of
// every event (typed views above all) would take CPU from the bus it
// measures and make delivery latency grow first on the client's side.

// rawBatch is one EventBatch message as received.
type rawBatch struct{ b []byte }

// rawCodec receives EventBatch messages as bytes (rawBatch) and marshals
// the request with the standard proto codec.
type rawCodec struct{ std encoding.CodecV2 }

func (c rawCodec) Name() string                           { return protocodec.Name }
func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.std.Marshal(v) }
func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawBatch); ok {
		r.b = r.b[:0]
		for _, buf := range data {
			r.b = append(r.b, buf.ReadOnlyData()...)
		}
		return nil
	}
	return c.std.Unmarshal(data, v)
}

var codecRaw = rawCodec{std: encoding.GetCodecV2(protocodec.Name)}

// rawStream is a Subscribe stream whose messages are read as rawBatch.
type rawStream struct{ grpc.ClientStream }

// openRaw starts Subscribe(req) on conn, receiving raw messages.
func openRaw(ctx context.Context, conn *grpc.ClientConn, req *jimbotpb.SubscribeRequest) (*rawStream, error) {
	desc := &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}
	st, err := conn.NewStream(ctx, desc, jimbotpb.EventBus_Subscribe_FullMethodName, grpc.ForceCodecV2(codecRaw))
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(req); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	return &rawStream{st}, nil
}

// Recv receives the next message into r.
func (s *rawStream) Recv(r *rawBatch) error { return s.RecvMsg(r) }

var errBadBatch = errors.New("malformed EventBatch")

// eachEvent calls f for every event of the EventBatch message b with an
// envelope holding its event_id, source, received_at_ns, topic and
// type_name. The strings alias b and ev is reused: f must not keep them.
func eachEvent(b []byte, ev *jimbotpb.Event, f func(*jimbotpb.Event)) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n, errBadBatch
		}
		b = b[l:]
		if num == 2 && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return n, errBadBatch
			}
			b = b[l:]
			if err := envelope(v, ev); err != nil {
				return n, err
			}
			n++
			if f != nil {
				f(ev)
			}
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return n, errBadBatch
		}
		b = b[l:]
	}
	return n, nil
}

// envelope reads the fields the load tester uses from one Event message.
func envelope(b []byte, ev *jimbotpb.Event) error {
	ev.EventId, ev.Source, ev.ReceivedAtNs, ev.Topic, ev.TypeName = "", "", 0, "", ""
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return errBadBatch
		}
		b = b[l:]
		switch {
		case typ == protowire.BytesType && (num == 1 || num == 4 || num == 104 || num == 106):
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return errBadBatch
			}
			b = b[l:]
			s := unsafe.String(unsafe.SliceData(v), len(v))
			switch num {
			case 1:
				ev.EventId = s
			case 4:
				ev.Source = s
			case 104:
				ev.Topic = s
			case 106:
				ev.TypeName = s
			}
		case typ == protowire.VarintType && num == 103:
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return errBadBatch
			}
			b = b[l:]
			ev.ReceivedAtNs = int64(v)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
			if l < 0 {
				return fmt.Errorf("%w: field %d", errBadBatch, num)
			}
			b = b[l:]
		}
	}
	return nil
}
