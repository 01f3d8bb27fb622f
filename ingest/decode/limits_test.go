package decode

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

func ids(r *Result) string {
	var s []string
	for _, ev := range r.Batch.Events {
		s = append(s, ev.EventId+"@"+ev.Topic)
	}
	return strings.Join(s, " ")
}

func hbLine(id string) string {
	return `{"type":"HEARTBEAT","source":"s","payload":{"n":1},"event_id":"` + id + `"}`
}

// TestNDJSON: one event per line; a bad line rejects only itself.
func TestNDJSON(t *testing.T) {
	d := New(Options{})
	f := func(body string, wantIDs, wantErr string) *Result {
		t.Helper()
		r := decodeT(t, d, KindNDJSON, body)
		require.Empty(t, r.Fatal, body)
		require.Equal(t, wantErr, errText(r), body)
		var got []string
		for _, ev := range r.Batch.Events {
			if ev.Topic == "system.deadletter" {
				got = append(got, "dl")
			} else {
				got = append(got, ev.EventId)
			}
		}
		require.Equal(t, wantIDs, strings.Join(got, " "), body)
		return r
	}
	f(hbLine("a")+"\n"+hbLine("b")+"\n", "a b", "")
	f(hbLine("a")+"\r\n\r\n  \n"+hbLine("b"), "a b", "") // CR LF, blank lines, no final LF
	f("", "", "")
	f("\n\n", "", "")
	// Broken lines cost only themselves, whatever breaks them.
	r := f(hbLine("a")+"\n{\"type\":\"HEARTBEAT\",\"source\n"+hbLine("c")+"\n[1,2]\n"+hbLine("e")+" trailing\n"+hbLine("f"),
		"a dl c dl dl f",
		"Processed 3/6 events. Errors: Event 1: Invalid format - unexpected end of JSON input at offset 94; "+
			"Event 3: Invalid format - expected an event object, got sequence; "+
			"Event 4: Invalid format - invalid character after top-level value at offset 234")
	require.Equal(t, `{"type":"HEARTBEAT","source`, string(r.Batch.Events[1].Raw))
	require.Equal(t, hbLine("e")+" trailing", string(r.Batch.Events[4].Raw))
	// The pre-pass repairs a line without touching the others; an
	// unterminated string does not swallow the next line.
	r = f("{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{\"x\":nan},\"event_id\":\"a\"}\n"+
		"{\"type\":\"ERROR\",\"source\":\"s\",\"payload\":{\"m\":\"a\x01b\"},\"event_id\":\"b\"}\n"+
		"{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{\"m\":\"open},\"event_id\":\"c\"}\n"+
		hbLine("d"), "a b dl d",
		"Processed 3/4 events. Errors: Event 2: Invalid format - expected ',' or end of object/array at offset 192")
	require.Equal(t, `{"x":null}`, string(r.Batch.Events[0].PayloadJson))
	require.Equal(t, repNF, r.Batch.Events[0].Repairs)
	require.Equal(t, `{"m":"a\u0001b"}`, string(r.Batch.Events[1].PayloadJson))
	require.Equal(t, repCB, r.Batch.Events[1].Repairs)
	require.Equal(t, "{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{\"m\":\"open},\"event_id\":\"c\"}",
		string(r.Batch.Events[2].Raw))
	// Per-event errors as in a batch; keys for deduplication.
	r = f(hbLine("a")+"\n"+`{"type":"NOPE","source":"s","payload":{}}`, "a dl",
		"Processed 1/2 events. Errors: Event 1: Invalid format - Unknown event type: NOPE")
	require.Equal(t, Key("s", "a", 0), r.Keys[0])

	// More than MaxEvents lines: the whole body, fatal.
	d = New(Options{MaxEvents: 2})
	r = decodeT(t, d, KindNDJSON, hbLine("a")+"\n"+hbLine("b")+"\n\n"+hbLine("c"))
	require.Equal(t, "Too many events: a batch may hold at most 2", r.Fatal)
	require.Equal(t, 1, r.Batch.Len())
	r = decodeT(t, d, KindNDJSON, hbLine("a")+"\n"+hbLine("b")+"\n\n")
	require.Empty(t, r.Fatal)
	// Depth is per line.
	d = New(Options{MaxDepth: 8})
	r = decodeT(t, d, KindNDJSON, hbLine("a")+"\n"+mcEvent(strings.Repeat("[", 20)+strings.Repeat("]", 20)))
	require.Contains(t, errText(r), "Event 1: Invalid format - nesting too deep at offset ")
	require.Equal(t, 1, r.Accepted)
}

// TestMaxStringLen: an envelope string over the limit rejects its event
// with a clear reason; the payload is not limited.
func TestMaxStringLen(t *testing.T) {
	d := New(Options{MaxStringLen: 16})
	long := strings.Repeat("x", 17)
	f := func(ev, want string) {
		t.Helper()
		r := decodeT(t, d, KindBatch, batchOf(hbLine("ok"), ev))
		if want == "" {
			require.Equal(t, 2, r.Accepted, errText(r))
			return
		}
		require.Equal(t, 1, r.Rejected, ev)
		require.Equal(t, "Processed 1/2 events. Errors: Event 1: Invalid format - string too long: "+want, errText(r))
		dl := r.Batch.Events[1]
		require.Equal(t, "system.deadletter", dl.Topic)
		require.Equal(t, ev, string(dl.Raw))
		require.NotContains(t, dl.EventId, long)
		require.NotContains(t, dl.Source, long)
	}
	f(`{"type":"HEARTBEAT","source":"`+long+`","payload":{}}`, "field `source` has 17 bytes, at most 16")
	f(`{"type":"`+long+`","source":"s","payload":{}}`, "field `type` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"event_id":"`+long+`"}`, "field `event_id` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"event_id":123456789012345678}`, "field `event_id` has 18 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"subtype":"`+long+`"}`, "field `subtype` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"priority":"`+long+`"}`, "field `priority` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"`+long+`":1}`, "a member name has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"metadata":{"`+long+`":"v"}}`, "a key of field `metadata` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"headers":{"k":"`+long+`"}}`, "a value of field `headers` has 17 bytes, at most 16")
	f(`{"type":"HEARTBEAT","source":"s","payload":{},"headers":{"k":["`+long+`"]}}`, "a value of field `headers` has 21 bytes, at most 16")
	// At the limit, and the payload and other members beyond it: accepted.
	f(`{"type":"HEARTBEAT","source":"`+long[1:]+`","payload":{"`+long+`":"`+long+long+`"},"debug":"`+long+`"}`, "")
	// Escapes count as written.
	f(`{"type":"HEARTBEAT","source":"\u0041\u0042\u0043x","payload":{}}`, "field `source` has 19 bytes, at most 16")
	// A long batch_id is ignored.
	r := decodeT(t, d, KindBatch, `{"batch_id":"`+long+`","events":[`+hbLine("a")+`]}`)
	require.Equal(t, 1, r.Accepted)
	require.Empty(t, r.Batch.Events[0].BatchId)
	// The default keeps a 1 MiB payload string.
	d = New(Options{})
	r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"s","payload":{"large_field":"`+strings.Repeat("x", 1<<20)+`"}}`)
	require.Equal(t, 1, r.Accepted)
	r = decodeT(t, d, KindEvent, `{"type":"HEARTBEAT","source":"`+strings.Repeat("x", DefaultMaxStringLen+1)+`","payload":{}}`)
	require.Equal(t, "Invalid event format: string too long: field `source` has 4097 bytes, at most 4096", errText(r))
}

// TestFromProtoLimits: MaxStringLen and MaxEvents on the gRPC path, and the
// bus's own fields are not taken from the client.
func TestFromProtoLimits(t *testing.T) {
	d := New(Options{MaxStringLen: 8, MaxEvents: 3})
	long := strings.Repeat("y", 9)
	evs := []*jimbotpb.Event{
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "g", EventId: "a", DeadletterReason: "spoofed",
			Raw: []byte("x"), BusSequence: 99, Repairs: 3},
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "g", EventId: long},
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "g", Metadata: map[string]string{"k": long}},
	}
	r := d.FromProto("b", evs, recvAt)
	defer d.ReleaseResult(r)
	require.Equal(t, "Processed 1/3 events. Errors: Event 1: Invalid format - string too long: field `event_id` has 9 bytes, at most 8; "+
		"Event 2: Invalid format - string too long: a value of field `metadata` has 9 bytes, at most 8", errText(r))
	b := r.Batch
	require.Empty(t, b.Events[0].DeadletterReason)
	require.Nil(t, b.Events[0].Raw)
	require.Zero(t, b.Events[0].BusSequence)
	require.Zero(t, b.Events[0].Repairs)
	require.NotEqual(t, long, b.Events[1].EventId)
	var orig jimbotpb.Event
	require.NoError(t, proto.Unmarshal(b.Events[1].Raw, &orig))
	require.Equal(t, long, orig.EventId)
	require.Zero(t, r.Keys[1])

	evs = append(evs, &jimbotpb.Event{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "g"})
	r2 := d.FromProto("b", evs, recvAt)
	defer d.ReleaseResult(r2)
	require.Equal(t, "Too many events: a batch may hold at most 3", r2.Fatal)
	require.Equal(t, 1, r2.Batch.Len())
	require.Equal(t, route.TopicDeadletter, r2.Batch.Topics[0])
	var eb jimbotpb.EventBatch
	require.NoError(t, proto.Unmarshal(r2.Batch.Events[0].Raw, &eb))
	require.Len(t, eb.Events, 4)
}
