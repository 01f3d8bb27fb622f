package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// testBus is a whole jimbus (coordinator, fan-out, ingest, gRPC) serving on
// loopback ports chosen by the kernel.
type testBus struct {
	t       *testing.T
	srv     *server
	httpURL string
	grpc    string
	client  *http.Client
	stopped bool
}

func startBus(t *testing.T, args ...string) *testBus {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var cfg config
	cfg.register(fs)
	args = append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...)
	require.NoError(t, fs.Parse(args))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := newServer(cfg, logger)
	require.NoError(t, err)
	require.NoError(t, s.start(context.Background()))
	b := &testBus{
		t: t, srv: s,
		httpURL: "http://" + s.httpLn.Addr().String(),
		grpc:    s.grpcLn.Addr().String(),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}},
	}
	t.Cleanup(func() { b.stop() })
	// Unlike the earlier suite, a bus that is not up fails every test.
	code, body := b.do("GET", "/health", "", "")
	require.Equal(t, 200, code, body)
	return b
}

func (b *testBus) stop() {
	if b.stopped {
		return
	}
	b.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(b.t, b.srv.shutdown(ctx))
	b.client.CloseIdleConnections()
}

// do sends one request and returns the status code and body.
func (b *testBus) do(method, path, contentType, body string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.httpURL+path, strings.NewReader(body))
	require.NoError(b.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp.StatusCode, string(out)
}

func (b *testBus) postJSON(path, body string) (int, map[string]any) {
	b.t.Helper()
	code, raw := b.do("POST", path, "application/json", body)
	var m map[string]any
	if raw != "" {
		require.NoError(b.t, json.Unmarshal([]byte(raw), &m), raw)
	}
	return code, m
}

// ok asserts a 200 {"status":"ok"} answer.
func (b *testBus) ok(path, body string) {
	b.t.Helper()
	code, m := b.postJSON(path, body)
	require.Equal(b.t, 200, code)
	require.Equal(b.t, "ok", m["status"], "%v", m)
}

// contentError asserts a 200 {"status":"error","error":...} answer and
// returns the error text.
func (b *testBus) contentError(path, body string) string {
	b.t.Helper()
	code, m := b.postJSON(path, body)
	require.Equal(b.t, 200, code, "%.200s", body)
	require.Equal(b.t, "error", m["status"], "%.200s -> %v", body, m)
	msg, _ := m["error"].(string)
	require.NotEmpty(b.t, msg)
	return msg
}

// subscriber is a real gRPC subscriber collecting events.
type subscriber struct {
	mu     sync.Mutex
	events []*jimbotpb.Event
	done   chan error
	cancel context.CancelFunc
}

func (b *testBus) subscribe(patterns ...string) *subscriber {
	b.t.Helper()
	return b.subscribeReq(&jimbotpb.SubscribeRequest{TopicPatterns: patterns, SubscriberId: "e2e"})
}

// subscribeReq subscribes with req and waits until the bus routes to it.
func (b *testBus) subscribeReq(req *jimbotpb.SubscribeRequest) *subscriber {
	b.t.Helper()
	conn, err := grpc.NewClient(b.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(b.t, err)
	b.t.Cleanup(func() { conn.Close() })
	before := b.srv.bus.Subscribers()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, req)
	require.NoError(b.t, err)
	s := &subscriber{done: make(chan error, 1), cancel: cancel}
	b.t.Cleanup(cancel)
	go func() {
		for {
			batch, err := stream.Recv()
			if err != nil {
				s.done <- err
				return
			}
			s.mu.Lock()
			s.events = append(s.events, batch.Events...)
			s.mu.Unlock()
		}
	}()
	b.waitSubscribers(before + 1)
	return s
}

// waitSubscribers waits until the bus has at least n subscribers.
func (b *testBus) waitSubscribers(n int) {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.srv.bus.Subscribers() < n {
		if time.Now().After(deadline) {
			b.t.Fatalf("subscriber %d did not register", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *subscriber) snapshot() []*jimbotpb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*jimbotpb.Event(nil), s.events...)
}

// waitFor waits until the subscriber holds at least n events.
func (s *subscriber) waitFor(t *testing.T, n int) []*jimbotpb.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := s.snapshot()
		if len(evs) >= n || time.Now().After(deadline) {
			require.GreaterOrEqual(t, len(evs), n, "events received")
			return evs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "balatromcp", name))
	require.NoError(t, err)
	return b
}

func heartbeat(source, payload string) string {
	return fmt.Sprintf(`{"type":"HEARTBEAT","source":%q,"payload":%s}`, source, payload)
}

// TestPeerSuite runs every case of the earlier bus's acceptance suite
// (shared/reference/PEER-SUITE.md) against a real listener, with the
// answers CONTRACT.md asks for.
func TestPeerSuite(t *testing.T) {
	b := startBus(t)
	const ev = "/api/v1/events"
	const batch = "/api/v1/events/batch"

	t.Run("1 health", func(t *testing.T) {
		code, body := b.do("GET", "/health", "", "")
		require.Equal(t, 200, code)
		var h map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &h))
		require.Equal(t, "healthy", h["status"])
		require.Contains(t, h, "version")
		require.Contains(t, h, "uptime_seconds")
		md, _ := h["metadata"].(map[string]any)
		require.Equal(t, "1.0", md["protocol_version"])
		require.NotEmpty(t, md["service"])
	})
	t.Run("2 heartbeat", func(t *testing.T) {
		b.ok(ev, heartbeat("integration_test", `{"version":"1.0.0","uptime":12345,"headless":false,"game_state":"MENU"}`))
	})
	t.Run("3 batch", func(t *testing.T) {
		b.ok(batch, `{"events":[{"type":"CONNECTION_TEST","source":"integration_test","payload":{"message":"Test 1"}},`+
			`{"type":"MONEY_CHANGED","source":"integration_test","payload":{"old_value":10,"new_value":15,"difference":5}}]}`)
	})
	t.Run("4 invalid type", func(t *testing.T) {
		require.Contains(t, b.contentError(ev, `{"type":"INVALID_TYPE","source":"integration_test","payload":{}}`), "Unknown event type")
	})
	t.Run("5 basic edge cases", func(t *testing.T) {
		require.Contains(t, b.contentError(ev, `{}`), "type")
		b.contentError(ev, `{invalid_json`)
		b.ok(ev, heartbeat("integration_test", `{"large_field":"`+strings.Repeat("x", 1<<20)+`"}`))
	})
	t.Run("6 malformed json", func(t *testing.T) {
		for _, body := range []string{
			`{invalid_json`, `{'single_quotes': 'not_valid'}`, `{"unclosed_object": "value"`,
			`[{"array_instead_of_object": true}]`, ``, `null`, `{}`, `{"type": null}`, `{"type": 123}`,
			`{"type": ["array"]}`, `{"type": {"nested": "object"}}`, `{"type": "test", "data": "\u0000null_char"}`,
			`{"type": "test", "data": "\uD800incomplete_surrogate"}`, `{"type": "test", "source": "../../../../etc/passwd"}`,
			`{"type": "test", "data": {"level1": {"level2": {"level3": {"level4": {"level5": "deep"}}}}}}`,
		} {
			b.contentError(ev, body)
		}
	})
	t.Run("7 oversized", func(t *testing.T) {
		b.ok(ev, heartbeat("oversized_test", `{"large_field":"`+strings.Repeat("x", 1<<20)+`"}`))
		for _, n := range []int{10 << 20, 100 << 20} {
			body := heartbeat("oversized_test", `{"large_field":"`+strings.Repeat("x", n)+`"}`)
			req, err := http.NewRequest("POST", b.httpURL+ev, strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := b.client.Do(req)
			if err != nil {
				continue // the server may close the connection while we upload: not ok either
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, 413, resp.StatusCode, "%d bytes: %s", len(body), out)
		}
	})
	t.Run("8 missing required fields", func(t *testing.T) {
		require.Contains(t, b.contentError(ev, `{"source":"test","payload":{}}`), "type")
		require.Contains(t, b.contentError(ev, `{"type":"HEARTBEAT","payload":{}}`), "source")
		require.Contains(t, b.contentError(ev, `{"type":"HEARTBEAT","source":"test"}`), "payload")
		require.Contains(t, b.contentError(ev, `{"type":"","source":"test","payload":{}}`), "type")
		require.Contains(t, b.contentError(ev, `{"type":"HEARTBEAT","source":"","payload":{}}`), "source")
		require.Contains(t, b.contentError(ev, `{"type":null,"source":"test","payload":{}}`), "type")
		require.Contains(t, b.contentError(ev, `{"type":"HEARTBEAT","source":null,"payload":{}}`), "source")
	})
	t.Run("9 invalid event types", func(t *testing.T) {
		for _, typ := range []string{"INVALID_TYPE", "UNKNOWN_EVENT", "SQL_INJECTION'; DROP TABLE events; --",
			"<script>alert('xss')</script>", "../../etc/passwd", "\x00NULL_BYTE",
			"EXTREMELY_LONG_EVENT_TYPE_NAME_THAT_EXCEEDS_REASONABLE_LIMITS_AND_SHOULD_BE_REJECTED_BY_THE_SERVER",
			"🚀💀🔥", "type with spaces", "TYPE_WITH_UNICODE_çharacters"} {
			q, _ := json.Marshal(typ)
			msg := b.contentError(ev, `{"type":`+string(q)+`,"source":"invalid_type_test","payload":{}}`)
			require.Contains(t, msg, "Unknown event type")
		}
	})
	t.Run("10 concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := b.client.Post(b.httpURL+ev, "application/json",
					strings.NewReader(`{"type":"CONNECTION_TEST","source":"concurrent_test","payload":{"test_id":"connection_limit_test"}}`))
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
					errs <- fmt.Errorf("%d %s", resp.StatusCode, body)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("11 batch edge cases", func(t *testing.T) {
		b.ok(batch, `{"events":[]}`)
		b.ok(batch, `{"events":[`+heartbeat("batch_test", `{}`)+`]}`)
		msg := b.contentError(batch, `{"events":[`+heartbeat("batch_test", `{}`)+
			`,{"type":"INVALID_TYPE","source":"batch_test","payload":{}},`+heartbeat("batch_test", `{}`)+`]}`)
		require.Equal(t, "Processed 2/3 events. Errors: Event 1: Invalid format - Unknown event type: INVALID_TYPE", msg)
		var sb strings.Builder
		sb.WriteString(`{"events":[`)
		for i := 0; i < 1000; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(heartbeat("batch_test", fmt.Sprintf(`{"batch_id":%d}`, i)))
		}
		sb.WriteString(`]}`)
		b.ok(batch, sb.String())
		require.Contains(t, b.contentError(batch, `{"not_events":[`+heartbeat("batch_test", `{}`)+`]}`), "events")
		require.Contains(t, b.contentError(batch, `{"events":`+heartbeat("batch_test", `{}`)+`}`), "events")
	})
	t.Run("12 protocol buffer edge cases", func(t *testing.T) {
		for _, body := range []string{
			`{"type":"MONEY_CHANGED","source":"proto_test","payload":{"old_value":9223372036854775807,"new_value":-9223372036854775808,"difference":null}}`,
			`{"type":"SCORE_CHANGED","source":"proto_test","payload":{"score":null,"multiplier":null,"bonus":-0.0}}`,
			heartbeat("proto_test", `{"message":"`+strings.Repeat("x", 100000)+`"}`),
			`{"type":"GAME_STATE","source":"proto_test","payload":{"unknown":{"a":{"b":{"c":{"d":{"e":1}}}}}}}`,
			`{"type":"HAND_PLAYED","source":"proto_test","payload":{"cards":["AH",123,null,{"rank":"K","suit":"S"},[1,2,3]]}}`,
			heartbeat("proto_test", `{"binary_data":"SGVsbG8gV29ybGQ="}`),
		} {
			b.ok(ev, body)
		}
	})
	t.Run("13 error response consistency", func(t *testing.T) {
		for _, body := range []string{`{invalid_json`, `{}`, `{"type": "INVALID", "source": "test", "payload": {}}`, ``} {
			b.contentError(ev, body)
		}
	})
	t.Run("14 health resilience", func(t *testing.T) {
		f := func(method, path, body string, want int) {
			t.Helper()
			code, _ := b.do(method, path, "", body)
			require.Equal(t, want, code, "%s %s", method, path)
		}
		f("GET", "/health", "", 200)
		f("GET", "/health?verbose=true", "", 200)
		f("POST", "/health", "{}", 405)
		f("GET", "/health", "unexpected_body", 200)
		f("GET", "/health/invalid", "", 404)
		f("GET", "/health", "", 200)
	})
	t.Run("15 and 21 no disclosure", func(t *testing.T) {
		code, body := b.do("GET", "/metrics", "", "")
		require.Equal(t, 200, code)
		require.True(t, strings.Contains(body, "# HELP") || strings.Contains(body, "# TYPE"))
		for _, w := range []string{"password", "secret", "key", "token"} {
			require.NotContains(t, body, w)
		}
		for _, p := range []string{"/", "/api", "/api/v1"} {
			code, _ := b.do("GET", p, "", "")
			require.Equal(t, 404, code, p)
		}
		for _, p := range []string{"/health", "/metrics"} {
			_, body := b.do("GET", p, "", "")
			for _, w := range []string{"password", "secret", "private", "stack trace"} {
				require.NotContains(t, strings.ToLower(body), w, p)
			}
		}
	})
	t.Run("16-19 hostile strings are data", func(t *testing.T) {
		for _, p := range []string{"<script>alert('xss')</script>", "<img src=x onerror=alert('xss')>", "javascript:alert('xss')",
			"; cat /etc/passwd", "| whoami", "$(whoami)", "../../../etc/passwd", `..\..\..\windows\system32\drivers\etc\hosts`,
			"/etc/passwd", "\ufffd\ufffd\ufffd", "\x00\x01\x02\x03"} {
			q, _ := json.Marshal(p)
			code, body := b.do("POST", ev, "application/json",
				`{"type":"HEARTBEAT","source":`+string(q)+`,"payload":{"message":`+string(q)+`,"path":`+string(q)+`}}`)
			require.Equal(t, 200, code)
			require.Contains(t, body, `"ok"`)
			require.NotContains(t, body, "root:")
			require.NotContains(t, body, "/bin/bash")
		}
	})
	t.Run("20 content types", func(t *testing.T) {
		body := heartbeat("content_type_test", `{}`)
		code, out := b.do("POST", ev, "application/json; charset=utf-7", body)
		require.Equal(t, 200, code)
		require.Contains(t, out, `"ok"`)
		for _, ct := range []string{"text/html", "../etc/passwd"} {
			code, out := b.do("POST", ev, ct, body)
			require.Equal(t, 200, code)
			require.Contains(t, out, `"error"`, ct)
		}
	})
}
