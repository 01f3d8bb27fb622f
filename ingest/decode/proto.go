package decode

import (
	"strconv"
	"unsafe"

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
	if len(evs) > d.opts.MaxEvents {
		// Fatal, as for a body: one deadletter event carries them all.
		r.Fatal = fatalTooMany + strconv.Itoa(d.opts.MaxEvents)
		raw, _ := proto.Marshal(&jimbotpb.EventBatch{BatchId: batchID, Events: evs})
		dl := &jimbotpb.Event{
			EventId: string(appendNewID(nil)), Timestamp: receivedAt / 1e6, ReceivedAtNs: receivedAt,
			BatchId: batchID, Topic: route.TopicDeadletter.String(), DeadletterReason: r.Fatal, Raw: raw,
		}
		b.Add(dl, route.TopicDeadletter)
		r.Keys = append(r.Keys, 0)
		return r
	}
	for i, ev := range evs {
		if ev == nil {
			ev = &jimbotpb.Event{}
		}
		// The bus's own fields are never taken from a client.
		ev.BusSequence, ev.Repairs, ev.DeadletterReason, ev.Raw = 0, 0, "", nil
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
		long := d.longProtoField(ev)
		key := uint64(0)
		if ev.EventId != "" {
			key = Key(ev.Source, ev.EventId, ev.ClientTimestamp)
		} else {
			ev.EventId = string(appendNewID(nil))
		}
		var why string
		switch {
		case long != "":
			why = "Invalid format - " + whyTooLong + long
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
			if len(ev.EventId) > d.opts.MaxStringLen {
				ev.EventId = string(appendNewID(nil)) // the long one is in raw
			}
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
		if key != 0 && d.opts.KeyHint != nil {
			d.opts.KeyHint(key)
		}
		r.Accepted++
	}
	for _, ev := range b.Events {
		// The events' own bytes, roughly; their typed views are not
		// walked (the client's views, at most its message's size again).
		b.Bytes += 2*(len(ev.PayloadJson)+len(ev.ExtraJson)+len(ev.Raw)) + eventSize
	}
	return r
}

// eventSize is the memory of one Event value, for route.Batch.Bytes.
const eventSize = int(unsafe.Sizeof(jimbotpb.Event{}))

// longProtoField is the detail of the first envelope string of ev longer
// than MaxStringLen (the fields Options.MaxStringLen names), or "".
func (d *Decoder) longProtoField(ev *jimbotpb.Event) string {
	limit := d.opts.MaxStringLen
	too := func(what string, n int) string {
		return what + " has " + strconv.Itoa(n) + " bytes, at most " + strconv.Itoa(limit)
	}
	for _, f := range [...]struct {
		name, v string
	}{{"field `type_name`", ev.TypeName}, {"field `source`", ev.Source}, {"field `subtype`", ev.Subtype},
		{"field `event_id`", ev.EventId}, {"field `priority`", ev.Priority}} {
		if len(f.v) > limit {
			return too(f.name, len(f.v))
		}
	}
	for k, v := range ev.Metadata {
		if len(k) > limit {
			return too("a key of field `metadata`", len(k))
		}
		if len(v) > limit {
			return too("a value of field `metadata`", len(v))
		}
	}
	return ""
}
