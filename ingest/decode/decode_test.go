package decode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

const recvAt = int64(1751439200123456789)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	require.NoError(t, err)
	return bytes.TrimRight(b, "\n")
}

// jsonlBodies returns the lines of the captured batches.
func jsonlBodies(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join(examplesDir, "captured_heartbeat_batches_2025-07-01.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	require.NoError(t, sc.Err())
	require.Len(t, out, 10)
	return out
}

// kindBody is a request body and the endpoint it goes to.
type kindBody struct {
	kind Kind
	body []byte
}

// realBodies returns the real BalatroMCP bodies by name (the examples, each
// captured batch as jsonlN) and the synthetic 50-event batch.
func realBodies(t testing.TB) map[string]kindBody {
	t.Helper()
	bodies := map[string]kindBody{
		"state_change":    {KindBatch, readTestdata(t, "request_batch_state_change.json")},
		"first_heartbeat": {KindBatch, readTestdata(t, "request_batch_first_heartbeat.json")},
		"connection_test": {KindEvent, readTestdata(t, "request_connection_test_body.json")},
		"game_state":      {KindEvent, readTestdata(t, "event_GAME_STATE.with_changes.json")},
		"game_state_init": {KindEvent, readTestdata(t, "event_GAME_STATE.initial.json")},
		"heartbeat":       {KindEvent, readTestdata(t, "event_HEARTBEAT.json")},
		"jokers":          {KindEvent, readTestdata(t, "event_JOKERS_CHANGED.json")},
		"synthetic50":     {KindBatch, syntheticBatch(50)},
	}
	for i, b := range jsonlBodies(t) {
		bodies["jsonl"+string(rune('0'+i))] = kindBody{KindBatch, b}
	}
	return bodies
}

// decodeT decodes and registers the cleanup of the result and the batch.
func decodeT(t testing.TB, d *Decoder, kind Kind, body string) *Result {
	t.Helper()
	r := d.Decode(kind, []byte(body), recvAt)
	t.Cleanup(func() {
		r.Batch.Release()
		d.ReleaseResult(r)
	})
	require.Equal(t, len(r.Batch.Events), len(r.Keys))
	require.Equal(t, len(r.Batch.Events), len(r.Batch.Topics))
	return r
}

func errText(r *Result) string { return string(r.AppendError(nil)) }

// refEvent is an event as encoding/json sees it: every value's exact bytes.
type refEvent map[string]json.RawMessage

func (e refEvent) str(t testing.TB, k string) string {
	var s string
	require.NoError(t, json.Unmarshal(e[k], &s), k)
	return s
}

// checkEvent compares a decoded event with the reference decoding of its
// JSON object.
func checkEvent(t *testing.T, ref refEvent, ev *jimbotpb.Event, topic route.TopicID, key uint64, batchID string) {
	t.Helper()
	require.Equal(t, ref.str(t, "type"), ev.TypeName)
	require.Equal(t, ref.str(t, "source"), ev.Source)
	wantType, ok := route.ParseType(ev.TypeName, ev.Subtype)
	require.True(t, ok)
	require.Equal(t, wantType, ev.Type)
	wantTopic, _ := route.TopicOf(wantType, ev.Subtype)
	require.Equal(t, wantTopic, topic)
	require.Equal(t, wantTopic.String(), ev.Topic)
	pay, ok := ref["payload"]
	if !ok {
		pay = ref["data"]
	}
	require.Equal(t, string(pay), string(ev.PayloadJson), "payload byte-exact")
	if ts, ok := ref["timestamp"]; ok {
		var f float64
		require.NoError(t, json.Unmarshal(ts, &f))
		require.Equal(t, f, ev.ClientTimestamp)
		if f >= 1e12 {
			require.Equal(t, int64(f), ev.Timestamp)
		} else {
			require.Equal(t, recvAt/1e6, ev.Timestamp)
		}
	}
	if id, ok := ref["event_id"]; ok {
		var s string
		require.NoError(t, json.Unmarshal(id, &s))
		require.Equal(t, s, ev.EventId)
		require.Equal(t, Key(ev.Source, s, ev.ClientTimestamp), key)
		require.NotZero(t, key)
	} else {
		require.True(t, strings.HasPrefix(ev.EventId, "jb-"), ev.EventId)
		require.Zero(t, key)
	}
	require.EqualValues(t, 1, ev.Version)
	require.Equal(t, batchID, ev.BatchId)
	require.Equal(t, recvAt, ev.ReceivedAtNs)
	require.Empty(t, ev.DeadletterReason)
	// extra_json: every other key, values byte-exact.
	extra := map[string]json.RawMessage{}
	for k, v := range ref {
		switch k {
		case "type", "source", "payload", "data", "timestamp", "version", "event_id", "priority", "subtype", "headers", "metadata":
		default:
			extra[k] = v
		}
	}
	if len(extra) == 0 {
		require.Empty(t, ev.ExtraJson)
	} else {
		got := map[string]json.RawMessage{}
		require.NoError(t, json.Unmarshal(ev.ExtraJson, &got), string(ev.ExtraJson))
		require.Equal(t, len(extra), len(got))
		for k, v := range extra {
			require.Equal(t, string(v), string(got[k]), k)
		}
	}
	// The event must be marshalable (valid UTF-8 strings etc.).
	_, err := proto.Marshal(ev)
	require.NoError(t, err)
}

func checkBatchBody(t *testing.T, d *Decoder, body []byte) *Result {
	t.Helper()
	var ref struct {
		BatchID string     `json:"batch_id"`
		Events  []refEvent `json:"events"`
	}
	require.NoError(t, json.Unmarshal(body, &ref))
	r := d.Decode(KindBatch, body, recvAt)
	t.Cleanup(func() { r.Batch.Release(); d.ReleaseResult(r) })
	require.Empty(t, r.Fatal)
	require.Empty(t, errText(r))
	require.Equal(t, len(ref.Events), r.Accepted)
	require.Zero(t, r.Rejected)
	require.Len(t, r.Batch.Events, len(ref.Events))
	for i, ev := range r.Batch.Events {
		checkEvent(t, ref.Events[i], ev, r.Batch.Topics[i], r.Keys[i], ref.BatchID)
		require.True(t, bytes.Contains(body, ev.PayloadJson))
	}
	require.Equal(t, recvAt, r.Batch.ReceivedAt)
	return r
}

func TestExamples(t *testing.T) {
	d := New(Options{})
	t.Run("batches", func(t *testing.T) {
		for _, name := range []string{"request_batch_first_heartbeat.json", "request_batch_state_change.json"} {
			t.Run(name, func(t *testing.T) {
				checkBatchBody(t, d, readTestdata(t, name))
			})
		}
	})
	t.Run("jsonl", func(t *testing.T) {
		for _, body := range jsonlBodies(t) {
			r := checkBatchBody(t, d, body)
			require.Len(t, r.Batch.Events, 1)
			require.Equal(t, "system.heartbeat", r.Batch.Events[0].Topic)
		}
	})
	t.Run("single", func(t *testing.T) {
		for _, name := range []string{"event_GAME_STATE.initial.json", "event_GAME_STATE.with_changes.json",
			"event_HEARTBEAT.json", "event_JOKERS_CHANGED.json", "request_connection_test_body.json"} {
			t.Run(name, func(t *testing.T) {
				body := readTestdata(t, name)
				var ref refEvent
				require.NoError(t, json.Unmarshal(body, &ref))
				r := d.Decode(KindEvent, body, recvAt)
				defer func() { r.Batch.Release(); d.ReleaseResult(r) }()
				require.Empty(t, errText(r))
				require.Equal(t, 1, r.Accepted)
				checkEvent(t, ref, r.Batch.Events[0], r.Batch.Topics[0], r.Keys[0], "")
			})
		}
	})
}

func TestConnectionTest(t *testing.T) {
	d := New(Options{})
	r := decodeT(t, d, KindEvent, string(readTestdata(t, "request_connection_test_body.json")))
	require.Equal(t, 1, r.Accepted)
	ev := r.Batch.Events[0]
	require.Equal(t, jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST, ev.Type)
	require.Equal(t, "connection_test", ev.TypeName)
	require.Equal(t, "system.connection.test", ev.Topic)
	require.Equal(t, `{"message":"Testing event bus connection"}`, string(ev.PayloadJson))
	require.EqualValues(t, 1751439161000, ev.Timestamp)
	require.EqualValues(t, 1751439161000, ev.ClientTimestamp)
	require.Zero(t, r.Keys[0])
	require.True(t, strings.HasPrefix(ev.EventId, "jb-"))
}

func TestPeerSuiteSingle(t *testing.T) {
	d := New(Options{})
	// ok: accepted without error.
	ok := func(body string) {
		t.Helper()
		r := decodeT(t, d, KindEvent, body)
		require.Empty(t, errText(r), body)
		require.Equal(t, 1, r.Accepted, body)
		require.Equal(t, 1, r.Batch.Len())
	}
	// fatal: the whole body is unusable.
	fatal := func(body, want string) {
		t.Helper()
		r := decodeT(t, d, KindEvent, body)
		require.NotEmpty(t, r.Fatal, body)
		require.Contains(t, errText(r), want, body)
		require.Zero(t, r.Accepted)
		require.Equal(t, 1, r.Batch.Len())
		ev := r.Batch.Events[0]
		require.Equal(t, route.TopicDeadletter, r.Batch.Topics[0])
		require.Equal(t, "system.deadletter", ev.Topic)
		require.Equal(t, body, string(ev.Raw))
		require.Equal(t, r.Fatal, ev.DeadletterReason)
	}
	// rejected: one event, rejected with a reason.
	rejected := func(body, want string) {
		t.Helper()
		r := decodeT(t, d, KindEvent, body)
		require.Empty(t, r.Fatal, body)
		require.Equal(t, 0, r.Accepted, body)
		require.Equal(t, 1, r.Rejected, body)
		require.Equal(t, want, errText(r), body)
		ev := r.Batch.Events[0]
		require.Equal(t, "system.deadletter", ev.Topic)
		require.Equal(t, body, string(ev.Raw))
		require.Equal(t, want, ev.DeadletterReason)
		require.Zero(t, r.Keys[0])
		_, err := proto.Marshal(ev)
		require.NoError(t, err)
	}
	// 2, 4, 5
	ok(`{"type":"HEARTBEAT","source":"integration_test","payload":{"version":"1.0.0","uptime":12345,"headless":false,"game_state":"MENU"}}`)
	rejected(`{"type":"INVALID_TYPE","source":"integration_test","payload":{}}`, "Invalid event format: Unknown event type: INVALID_TYPE")
	rejected(`{}`, "Invalid JSON: missing field `type`")
	fatal(`{invalid_json`, "Invalid JSON: ")
	ok(`{"type":"HEARTBEAT","source":"integration_test","payload":{"large_field":"` + strings.Repeat("x", 1<<20) + `"}}`)
	// 6.x
	fatal(`{'single_quotes': 'not_valid'}`, "Invalid JSON: ")
	fatal(`{"unclosed_object": "value"`, "Invalid JSON: unexpected end of JSON input")
	fatal(`[{"array_instead_of_object": true}]`, "Invalid JSON: expected an object, got sequence")
	fatal(``, "Invalid JSON: empty body")
	fatal(`null`, "Invalid JSON: expected an object, got null")
	rejected(`{"type": null}`, "Invalid JSON: field `type`: invalid type: null, expected a string")
	rejected(`{"type": 123}`, "Invalid JSON: field `type`: invalid type: number, expected a string")
	rejected(`{"type": ["array"]}`, "Invalid JSON: field `type`: invalid type: sequence, expected a string")
	rejected(`{"type": {"nested": "object"}}`, "Invalid JSON: field `type`: invalid type: map, expected a string")
	rejected(`{"type": "test", "data": "\u0000null_char"}`, "Invalid JSON: missing field `source`")
	rejected(`{"type": "test", "data": "\uD800incomplete_surrogate"}`, "Invalid JSON: missing field `source`")
	rejected(`{"type": "test", "source": "../../../../etc/passwd"}`, "Invalid JSON: missing field `payload`")
	rejected(`{"type": "test", "data": {"level1": {"level2": {"level3": {"level4": {"level5": "deep"}}}}}}`, "Invalid JSON: missing field `source`")
	// 8.x
	rejected(`{"source":"test","payload":{}}`, "Invalid JSON: missing field `type`")
	rejected(`{"type":"HEARTBEAT","payload":{}}`, "Invalid JSON: missing field `source`")
	rejected(`{"type":"HEARTBEAT","source":"test"}`, "Invalid JSON: missing field `payload`")
	rejected(`{"type":"","source":"test","payload":{}}`, "Invalid event format: Event type cannot be empty")
	rejected(`{"type":"HEARTBEAT","source":"","payload":{}}`, "Invalid event format: Event source cannot be empty")
	rejected(`{"type":null,"source":"test","payload":{}}`, "Invalid JSON: field `type`: invalid type: null, expected a string")
	rejected(`{"type":"HEARTBEAT","source":null,"payload":{}}`, "Invalid JSON: field `source`: invalid type: null, expected a string")
	// 9.x
	for _, typ := range []string{"INVALID_TYPE", "UNKNOWN_EVENT", "SQL_INJECTION'; DROP TABLE events; --",
		"<script>alert('xss')</script>", "../../etc/passwd",
		"EXTREMELY_LONG_EVENT_TYPE_NAME_THAT_EXCEEDS_REASONABLE_LIMITS_AND_SHOULD_BE_REJECTED_BY_THE_SERVER",
		"🚀💀🔥", "type with spaces", "TYPE_WITH_UNICODE_çharacters"} {
		js, _ := json.Marshal(typ)
		rejected(`{"type":`+string(js)+`,"source":"invalid_type_test","payload":{}}`, "Invalid event format: Unknown event type: "+typ)
	}
	rejected(`{"type":"\u0000NULL_BYTE","source":"invalid_type_test","payload":{}}`, "Invalid event format: Unknown event type: \x00NULL_BYTE")
	// 10, 12.x, 16-19
	ok(`{"type":"CONNECTION_TEST","source":"concurrent_test","payload":{"test_id":"connection_limit_test"}}`)
	ok(`{"type":"MONEY_CHANGED","source":"proto_test","payload":{"old_value":9223372036854775807,"new_value":-9223372036854775808,"difference":null}}`)
	ok(`{"type":"SCORE_CHANGED","source":"proto_test","payload":{"score":null,"multiplier":null,"bonus":-0.0}}`)
	ok(`{"type":"HEARTBEAT","source":"proto_test","payload":{"message":"` + strings.Repeat("x", 100000) + `"}}`)
	ok(`{"type":"GAME_STATE","source":"proto_test","payload":{"unknown":{"a":{"b":{"c":{"d":{"e":1}}}}}}}`)
	ok(`{"type":"HAND_PLAYED","source":"proto_test","payload":{"cards":["AH",123,null,{"rank":"K","suit":"S"},[1,2,3]]}}`)
	ok(`{"type":"HEARTBEAT","source":"proto_test","payload":{"binary_data":"SGVsbG8gV29ybGQ="}}`)
	ok(`{"type":"HEARTBEAT","source":"<script>alert('xss')</script>","payload":{"message":"<img src=x onerror=alert('xss')>"}}`)
	ok(`{"type":"HEARTBEAT","source":"cmd_test; cat /etc/passwd","payload":{"command":"$(whoami)"}}`)
	ok(`{"type":"HEARTBEAT","source":"fuzz","payload":{"fuzz_data":"\ufffd\ufffd\ufffd \u0000\u0001\u0002\u0003"}}`)
	// 13.x
	fatal(`{invalid_json`, "Invalid JSON")
	rejected(`{}`, "Invalid JSON: missing field `type`")
	rejected(`{"type": "INVALID", "source": "test", "payload": {}}`, "Invalid event format: Unknown event type: INVALID")
	fatal(``, "Invalid JSON")
}

func TestPeerSuiteBatch(t *testing.T) {
	d := New(Options{})
	hb := `{"type":"HEARTBEAT","source":"batch_test","payload":{}}`
	bad := `{"type":"INVALID_TYPE","source":"batch_test","payload":{}}`
	// 11.1
	r := decodeT(t, d, KindBatch, `{"events":[]}`)
	require.Empty(t, errText(r))
	require.Zero(t, r.Batch.Len())
	// 11.2
	r = decodeT(t, d, KindBatch, `{"events":[`+hb+`]}`)
	require.Empty(t, errText(r))
	require.Equal(t, 1, r.Accepted)
	// 11.3
	r = decodeT(t, d, KindBatch, `{"events":[`+hb+`,`+bad+`,`+hb+`]}`)
	require.Equal(t, "Processed 2/3 events. Errors: Event 1: Invalid format - Unknown event type: INVALID_TYPE", errText(r))
	require.Equal(t, 2, r.Accepted)
	require.Equal(t, 1, r.Rejected)
	require.Equal(t, []EventError{{1, "Invalid format - Unknown event type: INVALID_TYPE"}}, r.Errors)
	require.Equal(t, 3, r.Batch.Len())
	require.Equal(t, "system.heartbeat", r.Batch.Events[0].Topic)
	require.Equal(t, "system.deadletter", r.Batch.Events[1].Topic)
	require.Equal(t, bad, string(r.Batch.Events[1].Raw))
	require.Equal(t, "INVALID_TYPE", r.Batch.Events[1].TypeName)
	require.Equal(t, "batch_test", r.Batch.Events[1].Source)
	require.Equal(t, "system.heartbeat", r.Batch.Events[2].Topic)
	// 11.4
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := 0; i < 1000; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"type":"HEARTBEAT","source":"batch_test","payload":{"batch_id":`)
		sb.WriteString(strings.Repeat("1", 1+i%5))
		sb.WriteString(`}}`)
	}
	sb.WriteString(`]}`)
	r = decodeT(t, d, KindBatch, sb.String())
	require.Empty(t, errText(r))
	require.Equal(t, 1000, r.Accepted)
	// 11.5, 11.6
	r = decodeT(t, d, KindBatch, `{"not_events":[`+hb+`]}`)
	require.Equal(t, "Invalid JSON: missing field `events`", errText(r))
	require.Equal(t, 1, r.Batch.Len())
	require.Equal(t, "system.deadletter", r.Batch.Events[0].Topic)
	r = decodeT(t, d, KindBatch, `{"events":`+hb+`}`)
	require.Equal(t, "Invalid JSON: invalid type: map, expected a sequence for field `events`", errText(r))
	// Several errors.
	r = decodeT(t, d, KindBatch, `{"events":[`+bad+`,`+hb+`,{"source":"x","payload":1},7]}`)
	require.Equal(t, "Processed 1/4 events. Errors: Event 0: Invalid format - Unknown event type: INVALID_TYPE; "+
		"Event 2: Invalid format - missing field `type`; Event 3: Invalid format - expected an event object, got number", errText(r))
	// Whole-body errors.
	for body, want := range map[string]string{
		``:                "Invalid JSON: empty body",
		`null`:            "Invalid JSON: expected an object, got null",
		`[]`:              "Invalid JSON: expected an object, got sequence",
		`"x"`:             "Invalid JSON: expected an object, got string",
		`{"events":null}`: "Invalid JSON: invalid type: null, expected a sequence for field `events`",
		`{}`:              "Invalid JSON: missing field `events`",
		`{invalid`:        "Invalid JSON: ",
		`{"events":{"x":`: "Invalid JSON: ",
	} {
		r = decodeT(t, d, KindBatch, body)
		require.NotEmpty(t, r.Fatal, body)
		require.Contains(t, errText(r), want, body)
		require.Equal(t, 1, r.Batch.Len())
		require.Equal(t, body, string(r.Batch.Events[0].Raw))
	}
	// A truncated body: the complete events are recovered.
	r = decodeT(t, d, KindBatch, `{"events":[`+hb+`,`+hb)
	require.Equal(t, 2, r.Accepted)
	r = decodeT(t, d, KindBatch, `{"events":[`+hb+`,{"type":"HEARTBEAT","sou`)
	require.Equal(t, 1, r.Accepted)
	require.Equal(t, 1, r.Rejected)
	require.Contains(t, errText(r), "Event 1: Invalid format - unexpected end of JSON input at offset ")
	// Batch metadata: batch_id (after the events, too) on every event.
	r = decodeT(t, d, KindBatch, `{"source":"s","events":[`+hb+`,`+bad+`],"batch_id":"b-1","timestamp":1751439161000}`)
	require.Equal(t, "b-1", r.Batch.Events[0].BatchId)
	require.Equal(t, "b-1", r.Batch.Events[1].BatchId)
}

func TestMaxEvents(t *testing.T) {
	d := New(Options{MaxEvents: 2})
	hb := `{"type":"HEARTBEAT","source":"s","payload":{}}`
	r := decodeT(t, d, KindBatch, `{"events":[`+hb+`,`+hb+`]}`)
	require.Equal(t, 2, r.Accepted)
	r = decodeT(t, d, KindBatch, `{"events":[`+hb+`,`+hb+`,`+hb+`]}`)
	require.Equal(t, "Too many events: a batch may hold at most 2", r.Fatal)
	require.Zero(t, r.Accepted)
	require.Equal(t, 1, r.Batch.Len())
}

// examplesDir holds the mod's real bodies, shared by every package's tests.
const examplesDir = "../../testdata/balatromcp"

// TestKeyHint: the hook gets every non-zero key of Result.Keys, in order,
// on every path that makes keys; none for events without an event_id or
// for rejected ones.
func TestKeyHint(t *testing.T) {
	var hints []uint64
	d := New(Options{KeyHint: func(k uint64) { hints = append(hints, k) }})
	nonZero := func(keys []uint64) []uint64 {
		var out []uint64
		for _, k := range keys {
			if k != 0 {
				out = append(out, k)
			}
		}
		return out
	}
	batch := `{"events":[` +
		`{"type":"HEARTBEAT","source":"s","event_id":"a","payload":{}},` +
		`{"type":"HEARTBEAT","source":"s","payload":{}},` +
		`{"type":"NO_SUCH_TYPE","source":"s","event_id":"b","payload":{}},` +
		`{"type":"GAME_STATE","source":"s","event_id":"c","payload":{"ante":1}}]}`
	for _, c := range []struct {
		kind  Kind
		body  string
		keys  int
		again bool // decoded twice: keys may be given twice
	}{
		{KindBatch, batch, 2, false},
		{KindEvent, `{"type":"HEARTBEAT","source":"s","event_id":"x","payload":{}}`, 1, false},
		{KindNDJSON, "{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"event_id\":\"y\",\"payload\":{}}\n{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"payload\":{}}\n", 1, false},
		// Decoded again after the pre-pass: the first line's key is
		// given twice.
		{KindNDJSON, "{\"type\":\"HEARTBEAT\",\"source\":\"s\",\"event_id\":\"y\",\"payload\":{}}\nnot json\n", 1, true},
	} {
		hints = hints[:0]
		r := d.Decode(c.kind, []byte(c.body), recvAt)
		want := nonZero(r.Keys)
		require.Len(t, want, c.keys, "%q", c.body)
		if !c.again {
			require.Equal(t, want, hints, "%q", c.body)
		} else {
			require.Subset(t, want, hints, "%q", c.body)
			require.Subset(t, hints, want, "%q", c.body)
		}
		r.Batch.Release()
		d.ReleaseResult(r)
	}
	hints = hints[:0]
	r := d.FromProto("b", []*jimbotpb.Event{
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "s", EventId: "p"},
		{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "s"},
		{Source: "s", EventId: "q"}, // no type: rejected
	}, recvAt)
	require.Equal(t, nonZero(r.Keys), hints)
	require.Len(t, hints, 1)
	r.Batch.Release()
	d.ReleaseResult(r)
}

// TestEnvelopeNumbers: the timestamp, valued in the scan that validates it
// (scanNumberF), and the version come out as when parsed on their own, on
// and off the fast path: quoted, with an exponent, too long for a float64's
// mantissa, null, followed by whitespace; versions saturated, a text kept in
// extra_json (the version left at 1).
func TestEnvelopeNumbers(t *testing.T) {
	d := New(Options{})
	cases := []struct {
		source, version, timestamp string
		wantSource                 string
		wantVersion                int32
		wantTS                     float64
		extra                      string
	}{
		{`"BalatroMCP"`, `1`, `266945.45746667`, "BalatroMCP", 1, 266945.45746667, ""},
		{`"BalatroMCP"`, `2`, `1751439182000`, "BalatroMCP", 2, 1751439182000, ""},
		{`"BalatroMCPx"`, `-4`, `-0.5`, "BalatroMCPx", -4, -0.5, ""},
		{`"BalatroMC"`, `"3"`, `"7.25"`, "BalatroMC", 3, 7.25, ""},
		{`"Balatro\u004dCP"`, `3.5`, `1e3`, "BalatroMCP", 3, 1000, ""},
		{`"BalatroMCP"`, `12345678901234567890`, `12345678901234567890123`, "BalatroMCP", math.MaxInt32, 12345678901234567890123, ""},
		{`"BalatroMCP"`, `"v1"`, `"soon"`, "BalatroMCP", 1, 0, `{"version":"v1","timestamp":"soon"}`},
		{`"a source of more than twenty-four bytes"`, `99999999999999999`, `0.1234567890123456789`, "a source of more than twenty-four bytes", math.MaxInt32, 0.1234567890123456789, ""},
		{`"a source of more than twenty-four bytes"`, `-99999999999999999`, `0`, "a source of more than twenty-four bytes", math.MinInt32, 0, ""},
		{`"BalatroMCP"`, `null`, `null`, "BalatroMCP", 1, 0, ""},
		{`"BalatroMCP" `, `1 `, `5 `, "BalatroMCP", 1, 5, ""},
		{`"BalatroMCP"`, `0`, `1`, "BalatroMCP", 0, 1, ""},
		{`"BalatroMCP"`, `12`, `1`, "BalatroMCP", 12, 1, ""},
		{`"BalatroMCP"`, `99`, `1`, "BalatroMCP", 99, 1, ""},
		{`"BalatroMCP"`, `100`, `1`, "BalatroMCP", 100, 1, ""},
	}
	var body []byte
	body = append(body, `{"events":[`...)
	for i, c := range cases {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"type":"HEARTBEAT","version":%s,"source":%s,"payload":{},"event_id":"e%d","timestamp":%s}`,
			c.version, c.source, i, c.timestamp)
	}
	body = append(body, `]}`...)
	r := decodeT(t, d, KindBatch, string(body))
	require.Equal(t, len(cases), r.Accepted)
	for i, c := range cases {
		ev := r.Batch.Events[i]
		require.Equal(t, c.wantSource, ev.Source, "event %d", i)
		require.Equal(t, c.wantVersion, ev.Version, "event %d", i)
		require.Equal(t, c.wantTS, ev.ClientTimestamp, "event %d", i)
		require.Equal(t, c.extra, string(ev.ExtraJson), "event %d", i)
	}
}
