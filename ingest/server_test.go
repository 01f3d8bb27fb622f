package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jimbot/jimbus/route"
)

const (
	heartbeat = `{"type":"HEARTBEAT","source":"integration_test","payload":{"version":"1.0.0","uptime":12345,"headless":false,"game_state":"MENU"}}`
	okBody    = `{"status":"ok"}`
)

// event is a MONEY_CHANGED event; id "" leaves event_id out.
func event(id string, ts float64) string {
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"event_id":%q,`, id)
	}
	return fmt.Sprintf(`{"type":"MONEY_CHANGED","source":"BalatroMCP",%s"timestamp":%v,"payload":{"old_value":10,"new_value":15,"difference":5}}`, idField, ts)
}

func batch(batchID string, events ...string) string {
	return fmt.Sprintf(`{"batch_id":%q,"source":"BalatroMCP","events":[%s]}`, batchID, strings.Join(events, ","))
}

func TestEndpoints(t *testing.T) {
	ts := startServer(t, Options{Version: "test"}, nil)
	f := func(method, path, body string, code int, wantBody, allow string) {
		t.Helper()
		a := ts.do(t, method, path, "application/json", body)
		require.Equal(t, code, a.code, "%s %s: %s", method, path, a.body)
		if wantBody != "" {
			require.Contains(t, a.body, wantBody, "%s %s", method, path)
		}
		require.Equal(t, allow, a.header.Get("Allow"), "%s %s", method, path)
		if method != http.MethodHead {
			require.NotEmpty(t, a.header.Get("Content-Length"), "%s %s", method, path)
		}
	}
	two := batch("b1", `{"type":"CONNECTION_TEST","source":"integration_test","payload":{"message":"Test 1"}}`,
		`{"type":"MONEY_CHANGED","source":"integration_test","payload":{"old_value":10,"new_value":15,"difference":5}}`)

	f("POST", "/api/v1/events", heartbeat, 200, okBody, "")
	f("POST", "/api/v1/events/", heartbeat, 200, okBody, "")
	f("POST", "//api/v1/events", heartbeat, 200, okBody, "")
	f("POST", "/api/v1/events/batch", two, 200, okBody, "")
	f("POST", "/api/v1/events//batch", two, 200, okBody, "")
	f("POST", "/api/v1/events/health", `{}`, 200, okBody, "")
	f("POST", "/api/v1/events", `{"type":"INVALID_TYPE","source":"integration_test","payload":{}}`,
		200, `"status":"error","error":"Invalid event format: Unknown event type: INVALID_TYPE"`, "")
	f("GET", "/api/v1/commands/poll", "", 200, "", "")
	f("GET", "/health", "", 200, `"status":"healthy"`, "")
	f("GET", "/metrics", "", 200, "# HELP", "")

	f("GET", "/api/v1/events", "", 405, `"status":"error"`, "POST, OPTIONS")
	f("PUT", "/api/v1/events/batch", two, 405, `"status":"error"`, "POST, OPTIONS")
	f("GET", "/api/v1/events/health", "", 405, "", "POST, OPTIONS")
	f("GET", "/api/v1/commands", "", 405, "", "POST, OPTIONS")
	f("POST", "/health", `{}`, 405, "", "GET, HEAD, OPTIONS")
	f("DELETE", "/api/v1/commands/poll", "", 405, "", "GET, HEAD, OPTIONS")
	f("POST", "/metrics", "", 405, "", "GET, HEAD, OPTIONS")

	for _, p := range []string{"/", "/api", "/api/v1", "/health/invalid", "/api/v1/events/batch/x", "/../etc/passwd"} {
		f("GET", p, "", 404, `"status":"error"`, "")
		f("POST", p, heartbeat, 404, "", "")
	}

	f("OPTIONS", "/api/v1/events/batch", "", 200, "", "POST, OPTIONS")
	f("OPTIONS", "/health", "", 200, "", "GET, HEAD, OPTIONS")
	f("HEAD", "/health", "", 200, "", "")
	f("HEAD", "/api/v1/commands/poll", "", 200, "", "")
	f("HEAD", "/api/v1/events", "", 405, "", "POST, OPTIONS")

	// The events arrived, in order, on their topics.
	gotTypes := []string{}
	for _, g := range ts.pub.got() {
		gotTypes = append(gotTypes, g.Type)
	}
	require.Equal(t, []string{"HEARTBEAT", "HEARTBEAT", "HEARTBEAT", "CONNECTION_TEST", "MONEY_CHANGED",
		"CONNECTION_TEST", "MONEY_CHANGED", "INVALID_TYPE"}, gotTypes)
	require.Equal(t, route.TopicDeadletter, ts.pub.got()[7].Topic)
}

func TestHealth(t *testing.T) {
	ts := startServer(t, Options{Version: "1.2.3"}, nil, func(s *Server) {
		s.now = func() time.Time { return processStart.Add(42*time.Second + 500*time.Millisecond) }
	})
	check := func(a answer) {
		t.Helper()
		require.Equal(t, 200, a.code)
		require.Equal(t, "application/json", a.header.Get("Content-Type"))
		var h struct {
			Status   string            `json:"status"`
			Version  string            `json:"version"`
			Uptime   *int64            `json:"uptime_seconds"`
			Metadata map[string]string `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal([]byte(a.body), &h), a.body)
		require.Equal(t, "healthy", h.Status)
		require.Equal(t, "1.2.3", h.Version)
		require.NotNil(t, h.Uptime)
		require.EqualValues(t, 42, *h.Uptime)
		require.Equal(t, map[string]string{"service": "jimbus", "protocol_version": "1.0"}, h.Metadata)
	}
	check(ts.do(t, "GET", "/health", "", ""))
	check(ts.do(t, "GET", "/health?verbose=true", "", ""))
	check(ts.do(t, "GET", "/health", "text/plain", "unexpected_body"))
	check(ts.do(t, "GET", "/health/", "", ""))
}

func TestHealthOfBackend(t *testing.T) {
	var down atomic.Bool
	ts := startServer(t, Options{Health: func() error {
		if down.Load() {
			return errors.New("jetstream: not connected")
		}
		return nil
	}}, nil)
	require.Equal(t, 200, ts.do(t, "GET", "/health", "", "").code)
	down.Store(true)
	a := ts.do(t, "GET", "/health", "", "")
	require.Equal(t, 503, a.code)
	require.JSONEq(t, `{"status":"unhealthy","error":"jetstream: not connected"}`, a.body)
	down.Store(false)
	require.Equal(t, 200, ts.do(t, "GET", "/health", "", "").code)
}

func TestContentType(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	f := func(ct string, want string) {
		t.Helper()
		a := ts.do(t, "POST", "/api/v1/events", ct, heartbeat)
		require.Equal(t, 200, a.code)
		require.Equal(t, want, a.body, "Content-Type %q", ct)
	}
	bad := `{"status":"error","error":"Expected Content-Type: application/json"}`
	f("application/json", okBody)
	f("application/json; charset=utf-7", okBody)
	f("Application/JSON;charset=UTF-8", okBody)
	f("application/vnd.api+json", okBody)
	f("", okBody)
	f("text/html", bad)
	f("../etc/passwd", bad)
	f("application/x-www-form-urlencoded", bad)
	require.Len(t, ts.pub.got(), 5)
	// Also on the batch endpoint.
	a := ts.do(t, "POST", "/api/v1/events/batch", "text/html", batch("x", heartbeat))
	require.Equal(t, `{"status":"error","error":"Expected Content-Type: application/json or application/x-ndjson"}`, a.body)
	// NDJSON only on the batch endpoint.
	a = ts.do(t, "POST", "/api/v1/events", "application/x-ndjson", heartbeat)
	require.Equal(t, bad, a.body)
}

func TestPeerSuiteBodies(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	for _, body := range []string{
		`{invalid_json`, `{'single_quotes': 'not_valid'}`, `{"unclosed_object": "value"`,
		`[{"array_instead_of_object": true}]`, ``, `null`, `{}`, `{"type": null}`, `{"type": 123}`,
		`{"type": ["array"]}`, `{"type": {"nested": "object"}}`, `{"type": "test", "data": "\u0000null_char"}`,
		`{"type": "test", "data": "\uD800incomplete_surrogate"}`, `{"type": "test", "source": "../../../../etc/passwd"}`,
		`{"source":"test","payload":{}}`, `{"type":"HEARTBEAT","payload":{}}`, `{"type":"HEARTBEAT","source":"test"}`,
		`{"type":"","source":"test","payload":{}}`, `{"type":"HEARTBEAT","source":"","payload":{}}`,
		`{"type":"HEARTBEAT","source":null,"payload":{}}`, `{"type":"<script>alert('xss')</script>","source":"x","payload":{}}`,
		`{"type":"\u0000NULL_BYTE","source":"x","payload":{}}`,
	} {
		a := ts.post(t, "/api/v1/events", body)
		require.Equal(t, 200, a.code, body)
		var r struct{ Status, Error string }
		require.NoError(t, json.Unmarshal([]byte(a.body), &r), "%s -> %s", body, a.body)
		require.Equal(t, "error", r.Status, body)
		require.NotEmpty(t, r.Error, body)
	}
	a := ts.post(t, "/api/v1/events/batch", batch("b", `{"type":"HEARTBEAT","source":"batch_test","payload":{}}`,
		`{"type":"INVALID_TYPE","source":"batch_test","payload":{}}`, `{"type":"HEARTBEAT","source":"batch_test","payload":{}}`))
	require.Equal(t, `{"status":"error","error":"Processed 2/3 events. Errors: Event 1: Invalid format - Unknown event type: INVALID_TYPE"}`, a.body)
	require.Equal(t, okBody, ts.post(t, "/api/v1/events/batch", `{"events":[]}`).body)
	// 1 MiB event: accepted.
	big := `{"type":"HEARTBEAT","source":"integration_test","payload":{"large_field":"` + strings.Repeat("x", 1<<20) + `"}}`
	require.Equal(t, okBody, ts.post(t, "/api/v1/events", big).body)
	// Every rejected body went to the deadletter topic.
	dead := 0
	for _, g := range ts.pub.got() {
		if g.Topic == route.TopicDeadletter {
			dead++
			require.NotEmpty(t, g.Reason)
		}
	}
	require.Equal(t, 23, dead)
}

func TestBodyTooLarge(t *testing.T) {
	ts := startServer(t, Options{}, nil) // default MaxBody: 10 MiB
	// CONTRACT: 10 MiB or more is never answered ok.
	resp := raw(t, ts.addr, "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"+
		"Content-Length: 10485760\r\n\r\n")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 413 "), resp)
	require.Contains(t, resp, "Content-Length: ")
	require.Contains(t, resp, "request body of 10485760 bytes or more")

	// Announced with Expect: 100-continue: refused before the body is sent.
	resp = raw(t, ts.addr, "POST /api/v1/events/batch HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: 20000000\r\n\r\n")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 413 "), resp)
	require.NotContains(t, resp, "100 Continue")
	require.Empty(t, ts.pub.got())

	// The limit is exact.
	small := startServer(t, Options{MaxBody: 100}, nil)
	ev := `{"type":"HEARTBEAT","source":"x","payload":"` + strings.Repeat("a", 99-46) + `"}`
	require.Len(t, ev, 99)
	require.Equal(t, okBody, small.post(t, "/api/v1/events", ev).body)
	require.Equal(t, 413, small.post(t, "/api/v1/events", ev+" ").code)

	// A body that is too large once gunzipped.
	var zb strings.Builder
	zw := gzipWriter(&zb)
	_, _ = io.WriteString(zw, batch("z", `{"type":"HEARTBEAT","source":"x","payload":"`+strings.Repeat("a", 5000)+`"}`))
	require.NoError(t, zw.Close())
	req, _ := http.NewRequest("POST", small.url+"/api/v1/events/batch", strings.NewReader(zb.String()))
	req.Header.Set("Content-Encoding", "gzip")
	r, err := small.client.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, 413, r.StatusCode)
}

func TestGzipBody(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	var zb strings.Builder
	zw := gzipWriter(&zb)
	_, _ = io.WriteString(zw, batch("z", event("g1", 1), event("g2", 2)))
	require.NoError(t, zw.Close())
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/events/batch", strings.NewReader(zb.String()))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	r, err := ts.client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, okBody, string(b))
	require.Equal(t, []string{"g1", "g2"}, ts.pub.ids())

	req, _ = http.NewRequest("POST", ts.url+"/api/v1/events/batch", strings.NewReader("not gzip"))
	req.Header.Set("Content-Encoding", "gzip")
	r, err = ts.client.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, 200, r.StatusCode)
	require.Contains(t, string(b), `"status":"error"`)
}

func TestRawClients(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	// lua-https's plain-socket backend: Connection: close, Host without
	// port, no User-Agent; it reads until EOF and needs "HTTP/1.1".
	resp := raw(t, ts.addr, fmt.Sprintf("POST /api/v1/events//batch HTTP/1.1\r\nHost: localhost\r\nConnection: Close\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(batch("r", heartbeat)), batch("r", heartbeat)))
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 200 OK\r\n"), resp)
	require.Contains(t, resp, "\r\nContent-Length: 15\r\n")
	require.True(t, strings.HasSuffix(resp, "\r\n\r\n"+okBody), resp)

	require.NoError(t, ts.Commands().EnqueueLine("play_hand"))
	resp = raw(t, ts.addr, "GET /api/v1/commands/poll HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 200 OK\r\n"), resp)
	require.Contains(t, resp, "\r\nContent-Length: 10\r\n")
	require.True(t, strings.HasSuffix(resp, "\r\n\r\nplay_hand\n"), resp)

	// HTTP/1.0 still gets an HTTP/1.1 status line.
	resp = raw(t, ts.addr, "GET /health HTTP/1.0\r\n\r\n")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 200 OK\r\n"), resp)
	require.Contains(t, resp, "Content-Length: ")

	// Expect: 100-continue on a keep-alive connection, twice.
	c, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	for i := range 2 {
		body := batch("e", event(fmt.Sprintf("expect-%d", i), 1))
		_, err = fmt.Fprintf(c, "POST /api/v1/events/batch HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n"+
			"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
		line, err = br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "\r\n", line)
		_, err = io.WriteString(c, body)
		require.NoError(t, err)
		st, h, b := readResponse(t, br)
		require.Equal(t, "HTTP/1.1 200 OK", st)
		require.Equal(t, "15", h.Get("Content-Length"))
		require.Equal(t, okBody, b)
	}
	ids := ts.pub.ids()
	require.Len(t, ids, 3)
	require.NotEmpty(t, ids[0]) // assigned by the bus
	require.Equal(t, []string{"expect-0", "expect-1"}, ids[1:])
}

func TestAuth(t *testing.T) {
	ts := startServer(t, Options{AuthSecret: "s3"}, nil)
	send := func(path, hdr, val string) answer {
		t.Helper()
		req, err := http.NewRequest("POST", ts.url+path, strings.NewReader(heartbeat))
		require.NoError(t, err)
		if hdr != "" {
			req.Header.Set(hdr, val)
		}
		resp, err := ts.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	for _, c := range []struct{ hdr, val string }{{"", ""}, {"Authorization", "Bearer nope"}, {"X-API-Key", "s"},
		{"Authorization", "Basic s3"}, {"X-API-Key", ""}} {
		a := send("/api/v1/events", c.hdr, c.val)
		require.Equal(t, 401, a.code, c)
		require.Equal(t, "Bearer", a.header.Get("WWW-Authenticate"))
		require.Contains(t, a.body, "authentication required")
	}
	require.Equal(t, 401, send("/nope", "", "").code)
	require.Equal(t, okBody, send("/api/v1/events", "Authorization", "Bearer s3").body)
	require.Equal(t, okBody, send("/api/v1/events", "Authorization", "bearer  s3").body)
	require.Equal(t, okBody, send("/api/v1/events", "X-API-Key", "s3").body)
	require.Equal(t, 200, ts.do(t, "GET", "/health", "", "").code, "/health stays open")
	require.Len(t, ts.pub.got(), 3)
}
