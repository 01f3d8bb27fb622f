package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMetrics(t *testing.T) {
	ts := startServer(t, Options{PublishWait: time.Millisecond}, nil)
	// Traffic that touches every counter.
	ts.post(t, "/api/v1/events/batch", batch("m", event("A", 1), `{"type":"NOPE","source":"x","payload":{}}`, `{"source":"x","payload":{}}`))
	ts.post(t, "/api/v1/events/batch", batch("m2", event("A", 1)))
	ts.post(t, "/api/v1/events/batch", `{"events":[{"type":"HEARTBEAT","source":"x","payload":{"v":nan,"s":"a`+"\x01"+`b"}}]}`)
	ts.post(t, "/api/v1/events", `{invalid`)
	ts.do(t, "POST", "/api/v1/events", "text/html", heartbeat)
	ts.pub.full.Store(true)
	ts.post(t, "/api/v1/events", heartbeat)
	ts.pub.full.Store(false)
	ts.do(t, "GET", "/nope", "", "")
	ts.do(t, "POST", "/api/v1/commands", "text/plain", "play_hand")
	ts.do(t, "GET", "/api/v1/commands/poll", "", "")

	a := ts.do(t, "GET", "/metrics", "", "")
	require.Equal(t, 200, a.code)
	require.Contains(t, a.header.Get("Content-Type"), "text/plain")
	text := a.body
	for _, want := range []string{
		"# HELP jimbus_http_requests_total",
		"# TYPE jimbus_http_requests_total counter",
		`jimbus_http_requests_total{code="200",endpoint="events_batch"} 3`,
		`jimbus_http_requests_total{code="503",endpoint="events"} 1`,
		`jimbus_http_requests_total{code="404",endpoint="other"} 1`,
		`jimbus_http_request_duration_seconds_count{endpoint="events_batch"} 3`,
		`jimbus_ingest_events_accepted_total{via="http"} 2`,
		`jimbus_ingest_events_rejected_total{reason="unknown_type"} 1`,
		`jimbus_ingest_events_rejected_total{reason="missing_field"} 1`,
		`jimbus_ingest_events_rejected_total{reason="bad_json"} 1`,
		`jimbus_ingest_events_rejected_total{reason="content_type"} 1`,
		`jimbus_ingest_events_deduplicated_total 1`,
		`jimbus_ingest_events_repaired_total{kind="non_finite"} 1`,
		`jimbus_ingest_events_repaired_total{kind="control_byte"} 1`,
		`jimbus_ingest_repairs_total 2`,
		`jimbus_ingest_publish_full_total 1`,
		`jimbus_ingest_dedup_entries 1`,
		`jimbus_commands_queued_total 1`,
		`jimbus_commands_served_total 1`,
		`jimbus_commands_pending 0`,
	} {
		require.Contains(t, text, want)
	}
	// CONTRACT section 1: never these words, in any case.
	lower := strings.ToLower(text)
	for _, w := range []string{"password", "secret", "key", "token", "private", "stack trace"} {
		require.NotContains(t, lower, w)
	}
}

func TestReasonClass(t *testing.T) {
	f := func(reason, want string) {
		t.Helper()
		require.Equal(t, want, reasonNames[reasonClass(reason)], reason)
	}
	f("Invalid format - Unknown event type: NOPE", "unknown_type")
	f("Invalid event format: Unknown event type: NOPE", "unknown_type")
	f("Invalid JSON: missing field `type`", "missing_field")
	f("Invalid event format: Event source cannot be empty", "missing_field")
	f("Invalid JSON: field `type`: invalid type: null, expected a string", "bad_value")
	f("Invalid JSON: expected an object, got sequence", "bad_json")
	f("Invalid JSON: expected a string object key at offset 1", "bad_json")
	f("Invalid format - field `source`: invalid type: null, expected a string", "bad_value")
	f("Invalid JSON: empty body", "bad_json")
	f("Invalid JSON: unexpected end of input at offset 3", "bad_json")
	f("Too many events: a batch may hold at most 10000", "limit")
	f("Invalid JSON: nesting too deep at offset 300", "limit")
	f("something new", "other")
}
