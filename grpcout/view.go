package grpcout

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// ResolveView says whether a subscription that asked for view v gets the
// typed view from a bus whose events carry none when noTyped is set
// (--typed-view=false): UNSPECIFIED is the bus's default (typed unless
// noTyped). It returns the status to end the stream with when the bus cannot
// serve v. Every fan-out backend resolves the view with it.
func ResolveView(v jimbotpb.PayloadView, noTyped bool) (typed bool, err error) {
	switch v {
	case jimbotpb.PayloadView_PAYLOAD_VIEW_UNSPECIFIED:
		return !noTyped, nil
	case jimbotpb.PayloadView_PAYLOAD_VIEW_JSON:
		return false, nil
	case jimbotpb.PayloadView_PAYLOAD_VIEW_TYPED:
		if !noTyped {
			return true, nil
		}
		return false, status.Error(codes.FailedPrecondition,
			"this bus runs with --typed-view=false and sends no typed views; "+
				"subscribe with PAYLOAD_VIEW_JSON or UNSPECIFIED and read payload_json")
	}
	return false, status.Errorf(codes.InvalidArgument, "unknown payload_view %d", int32(v))
}

// jsonView is a subscriber's reusable copies of shared events without their
// typed view, for the subscribers that asked for PAYLOAD_VIEW_JSON: the
// shared events are read concurrently by other writers and must not change.
type jsonView struct {
	evs []jimbotpb.Event
	n   int
}

func newJSONView(max int) *jsonView { return &jsonView{evs: make([]jimbotpb.Event, max)} }

// of returns ev itself when it has no typed view, else a copy without it.
// The copy aliases ev's strings and bytes and is valid until reset.
func (v *jsonView) of(ev *jimbotpb.Event) *jimbotpb.Event {
	if ev.Payload == nil {
		return ev
	}
	if v.n == len(v.evs) {
		v.evs = append(v.evs, jimbotpb.Event{})
		v.evs = v.evs[:cap(v.evs)]
	}
	dst := &v.evs[v.n]
	v.n++
	copyEnvelope(dst, ev)
	return dst
}

// reset makes every copy free again, dropping what they alias.
func (v *jsonView) reset() {
	clear(v.evs[:v.n])
	v.n = 0
}

// copyEnvelope sets dst to every field of src but the typed oneof
// (TestCopyEnvelopeCopiesEveryField checks that no field is forgotten).
func copyEnvelope(dst, src *jimbotpb.Event) {
	*dst = jimbotpb.Event{
		EventId:          src.EventId,
		Timestamp:        src.Timestamp,
		Type:             src.Type,
		Source:           src.Source,
		Version:          src.Version,
		Priority:         src.Priority,
		GameId:           src.GameId,
		SessionId:        src.SessionId,
		SequenceNumber:   src.SequenceNumber,
		Metadata:         src.Metadata,
		PayloadJson:      src.PayloadJson,
		ClientTimestamp:  src.ClientTimestamp,
		ReceivedAtNs:     src.ReceivedAtNs,
		Topic:            src.Topic,
		BusSequence:      src.BusSequence,
		TypeName:         src.TypeName,
		Subtype:          src.Subtype,
		ExtraJson:        src.ExtraJson,
		Repairs:          src.Repairs,
		DeadletterReason: src.DeadletterReason,
		Raw:              src.Raw,
		BatchId:          src.BatchId,
	}
	if u := src.ProtoReflect().GetUnknown(); len(u) > 0 {
		dst.ProtoReflect().SetUnknown(u)
	}
}
