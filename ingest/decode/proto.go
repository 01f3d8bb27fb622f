package decode

import (
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// fromProto is FromProto.
func (d *Decoder) fromProto(batchID string, evs []*jimbotpb.Event, receivedAt int64) *Result {
	r := getResult()
	r.kind = KindBatch
	b := route.NewBatch(nil)
	b.ReceivedAt = receivedAt
	r.Batch = b
	for i, ev := range evs {
		if ev == nil {
			ev = &jimbotpb.Event{}
		}
		typ := ev.Type
		if typ == jimbotpb.EventType_EVENT_TYPE_UNSPECIFIED {
			typ, _ = route.ParseType(ev.TypeName, ev.Subtype)
		}
		topic, known := route.TopicOf(typ, ev.Subtype)
		if ev.BatchId == "" {
			ev.BatchId = batchID
		}
		ev.ReceivedAtNs = receivedAt
		if ev.Timestamp == 0 {
			ev.Timestamp = receivedAt / 1e6
		}
		key := uint64(0)
		if ev.EventId != "" {
			key = Key(ev.Source, ev.EventId, ev.ClientTimestamp)
		} else {
			ev.EventId = string(appendNewID(nil))
		}
		var why string
		switch {
		case ev.Source == "":
			why = "Invalid format - " + whyEmptySource
		case !known && ev.TypeName == "" && ev.Type == 0:
			why = "Invalid format - " + whyMissingType
		case !known:
			name := ev.TypeName
			if name == "" {
				name = ev.Type.String()
			}
			why = "Invalid format - " + whyUnknownType + clip(name)
		}
		if why != "" {
			raw, _ := proto.Marshal(ev)
			ev.Raw = raw
			ev.DeadletterReason = why
			ev.Topic = route.TopicDeadletter.String()
			b.Add(ev, route.TopicDeadletter)
			r.Keys = append(r.Keys, 0)
			r.Rejected++
			r.Errors = append(r.Errors, EventError{Index: i, Reason: why})
			continue
		}
		ev.Type = typ
		ev.Topic = topic.String()
		if ev.Version == 0 {
			ev.Version = 1
		}
		b.Add(ev, topic)
		r.Keys = append(r.Keys, key)
		r.Accepted++
	}
	return r
}
