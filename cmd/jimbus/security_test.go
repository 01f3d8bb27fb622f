package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// writeSecret writes a random secret into a 0600 file and returns both.
func writeSecret(t *testing.T) (secret, path string) {
	t.Helper()
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	secret = "jb-" + hex.EncodeToString(b)
	path = filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("\n  "+secret+"\r\n"), 0o600))
	return secret, path
}

// httpDo sends one request with the given headers (name, value pairs).
func httpDo(t *testing.T, b *testBus, method, path, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.httpURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(out)
}

// TestAuth: with --auth-token-file, HTTP and gRPC need the secret (Bearer
// or X-API-Key), /health and grpc.health.v1 stay open, tail and coord send
// it, and the secret never shows in the log or in /metrics.
func TestAuth(t *testing.T) {
	checkLeaks(t)
	secret, file := writeSecret(t)
	var logs lockedBuffer
	b := startBusWith(t, busOpts{log: &logs}, "--auth-token-file", file)
	const ev = `{"type":"HEARTBEAT","source":"auth","payload":{}}`
	const path = "/api/v1/events"

	// HTTP.
	code, _, _ := httpDo(t, b, "GET", "/health", "")
	require.Equal(t, 200, code, "/health stays open")
	code, h, body := httpDo(t, b, "POST", path, ev)
	require.Equal(t, 401, code)
	require.Equal(t, "Bearer", h.Get("WWW-Authenticate"))
	require.Contains(t, body, "authentication required: send Authorization: Bearer or X-API-Key")
	code, _, _ = httpDo(t, b, "POST", path, ev, "Authorization", "Bearer "+secret+"x")
	require.Equal(t, 401, code, "wrong secret")
	code, _, _ = httpDo(t, b, "POST", path, ev, "X-API-Key", secret[:len(secret)-1])
	require.Equal(t, 401, code, "a prefix of the secret")
	code, _, body = httpDo(t, b, "POST", path, ev, "Authorization", "Bearer "+secret)
	require.Equal(t, 200, code)
	require.Equal(t, `{"status":"ok"}`, body)
	code, _, body = httpDo(t, b, "POST", path, ev, "X-API-Key", secret)
	require.Equal(t, `{"status":"ok"}`, body, code)
	code, _, _ = httpDo(t, b, "GET", "/metrics", "")
	require.Equal(t, 401, code, "/metrics needs the secret too")
	code, _, _ = httpDo(t, b, "GET", "/api/v1/commands/poll", "")
	require.Equal(t, 401, code)

	// gRPC without the secret, with a wrong one, with each header.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := jimbotpb.NewEventBusClient(dial(t, b.grpc))
	pub := &jimbotpb.Event{Type: jimbotpb.EventType_EVENT_TYPE_HEARTBEAT, Source: "auth-grpc", PayloadJson: []byte(`{}`)}
	_, err := client.PublishEvent(ctx, pub)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Equal(t, msgAuthMissing, status.Convert(err).Message())
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope")
	_, err = client.PublishEvent(bad, pub)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.Equal(t, msgAuthWrong, status.Convert(err).Message())
	stream, err := client.Subscribe(ctx, &jimbotpb.SubscribeRequest{TopicPatterns: []string{">"}})
	if err == nil {
		_, err = stream.Recv()
	}
	require.Equal(t, codes.Unauthenticated, status.Code(err), "Subscribe: %v", err)
	_, err = client.SendCommand(metadata.AppendToOutgoingContext(ctx, "x-api-key", "nope"), &jimbotpb.Command{Line: "x"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	hc, err := healthpb.NewHealthClient(dial(t, b.grpc)).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "grpc.health.v1 stays open")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
	good := metadata.AppendToOutgoingContext(ctx, "x-api-key", secret)
	resp, err := client.PublishEvent(good, pub)
	require.NoError(t, err)
	require.True(t, resp.GetSuccess())
	_, err = jimbotpb.NewResourceCoordinatorClient(dial(t, b.grpc)).GetResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "the coordinator is behind the secret too")

	// jimbus tail and jimbus coord send it with --auth-token-file.
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(ctx, []string{"tail", "--addr", b.grpc, "--count", "1"}, &out, &errOut))
	require.Contains(t, errOut.String(), "Unauthenticated")
	done := make(chan int, 1)
	out.Reset()
	go func() {
		done <- run(ctx, []string{"tail", "--addr", b.grpc, "--auth-token-file", file, "--count", "1"}, &out, &errOut)
	}()
	b.waitSubscribers(1)
	code, _, _ = httpDo(t, b, "POST", path, `{"type":"MONEY_CHANGED","source":"auth","payload":{"new_value":1}}`, "Authorization", "bearer "+secret)
	require.Equal(t, 200, code)
	require.Equal(t, 0, <-done, errOut.String())
	require.Contains(t, out.String(), `"topic":"game.money.changed"`)
	errOut.Reset()
	require.Equal(t, 1, run(ctx, []string{"coord", "status", "--addr", b.grpc}, &out, &errOut))
	require.Contains(t, errOut.String(), "Unauthenticated")
	require.Equal(t, 0, run(ctx, []string{"coord", "status", "--addr", b.grpc, "--auth-token-file", file}, &out, &errOut), errOut.String())

	// Counted, and the secret is nowhere to be read.
	_, _, metrics := httpDo(t, b, "GET", "/metrics", "", "Authorization", "Bearer "+secret)
	require.Contains(t, metrics, "jimbus_grpc_refused_total")
	require.GreaterOrEqual(t, metricSum(t, b.srv.reg, "jimbus_grpc_refused_total", "reason", "unauthenticated"), 6.0)
	require.Equal(t, 5.0, metricSum(t, b.srv.reg, "jimbus_http_requests_total", "code", "401"), "401s counted")
	b.stop()
	for _, w := range []string{"password", "secret", "token", "private"} {
		require.NotContains(t, strings.ToLower(metrics), w, "/metrics")
	}
	require.NotContains(t, metrics, secret)
	require.NotContains(t, logs.String(), secret, "log")
	require.NotContains(t, out.String()+errOut.String(), secret, "tail and coord output")
	require.Contains(t, logs.String(), "auth=true", "the log says that authentication is on")
}

// TestTLS: with --tls-cert and --tls-key both listeners serve TLS only;
// clients that trust the certificate work, tail included.
func TestTLS(t *testing.T) {
	checkLeaks(t)
	cert, key, pool := selfSigned(t, t.TempDir())
	secret, file := writeSecret(t)
	var logs lockedBuffer
	b := startBusWith(t, busOpts{log: &logs, roots: pool}, "--tls-cert", cert, "--tls-key", key, "--auth-token-file", file)
	require.True(t, strings.HasPrefix(b.httpURL, "https://"))

	sub := jimbotpb.NewEventBusClient(dial(t, b.grpc, tlsCreds(pool)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := sub.Subscribe(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret),
		&jimbotpb.SubscribeRequest{TopicPatterns: []string{"system.heartbeat"}})
	require.NoError(t, err)
	_, err = stream.Header()
	require.NoError(t, err)
	code, _, body := httpDo(t, b, "POST", "/api/v1/events", `{"type":"HEARTBEAT","source":"tls","payload":{},"event_id":"t1"}`,
		"Authorization", "Bearer "+secret)
	require.Equal(t, 200, code, body)
	got, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, "t1", got.GetEvents()[0].GetEventId())

	// Plain text is refused on both ports.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	resp, err := plain.Get("http://" + b.srv.httpLn.Addr().String() + "/health")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, 200, resp.StatusCode)
	}
	plain.CloseIdleConnections()
	_, err = healthpb.NewHealthClient(dial(t, b.grpc)).Check(ctx, &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "plain-text gRPC: %v", err)
	hc, err := healthpb.NewHealthClient(dial(t, b.grpc, tlsCreds(pool))).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())

	// tail over TLS, with the CA and the secret.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caFile, certPEM, 0o600))
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", "--addr", b.grpc, "--tls-ca", caFile, "--auth-token-file", file, "--count", "1", "game.>"}, &out, &errOut)
	}()
	b.waitSubscribers(2)
	code, _, _ = httpDo(t, b, "POST", "/api/v1/events", `{"type":"MONEY_CHANGED","source":"tls","payload":{}}`, "X-API-Key", secret)
	require.Equal(t, 200, code)
	require.Equal(t, 0, <-done, errOut.String())
	require.Contains(t, out.String(), `"source":"tls"`)
	cancel()
	b.stop()
	require.Contains(t, logs.String(), "tls=true")
	require.NotContains(t, logs.String(), secret)
}

// TestExposedWarning: binding beyond loopback warns only without
// authentication, or (with it) without TLS.
func TestExposedWarning(t *testing.T) {
	f := func(sec *security, addr, want string) {
		t.Helper()
		var buf bytes.Buffer
		warnIfExposed(slog.New(slog.NewTextHandler(&buf, nil)), sec, addr)
		if want == "" {
			require.Empty(t, buf.String(), addr)
		} else {
			require.Contains(t, buf.String(), want, addr)
		}
	}
	none, auth, full := &security{}, &security{secret: []byte("s")}, &security{secret: []byte("s"), tls: &tls.Config{}}
	f(none, "127.0.0.1:8080", "")
	f(none, "[::1]:8080", "")
	f(none, "localhost:8080", "")
	f(none, "0.0.0.0:8080", "without authentication")
	f(none, "[::]:50051", "without authentication")
	f(none, "192.168.1.5:8080", "without authentication")
	f(auth, "0.0.0.0:8080", "without TLS")
	f(auth, "127.0.0.1:8080", "")
	f(full, "0.0.0.0:8080", "")
}

// TestSecurityFlagErrors: bad security and limit flags stop the start with
// a message that names the flag, never the secret.
func TestSecurityFlagErrors(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	cert, key, _ := selfSigned(t, dir)
	f := func(want string, args ...string) {
		t.Helper()
		var stderr bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		code := run(ctx, append([]string{"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--nvml=false"}, args...), io.Discard, &stderr)
		require.Equal(t, 1, code, stderr.String())
		require.Contains(t, stderr.String(), want)
		require.NotContains(t, stderr.String(), "hunter2-secret")
	}
	f("cannot read --auth-token-file", "--auth-token-file", filepath.Join(dir, "missing"))
	f("is empty", "--auth-token-file", write("empty", " \n"))
	f("printable ASCII without spaces", "--auth-token-file", write("spaces", "hunter2-secret with space\n"))
	f("--tls-cert and --tls-key go together", "--tls-cert", cert)
	f("cannot load --tls-cert", "--tls-cert", key, "--tls-key", cert)
	f("--max-patterns must be between 1 and 64, got 65", "--max-patterns", "65")
	f("--max-depth must be at least 4, got 1", "--max-depth", "1")
	f("--max-string must be at least 1, got 0", "--max-string", "0")
	f("--max-batch must be at least 1, got -1", "--max-batch", "-1")
	f("--command-queue must be at least 1, got 0", "--command-queue", "0")
	f("--max-subscribers must be at least 1, got 0", "--max-subscribers", "0")
	f("--max-body must be at least 1, got 0", "--max-body", "0")
}

// TestLimitFlags: each limit flag reaches its component and answers with a
// clear error when hit.
func TestLimitFlags(t *testing.T) {
	checkLeaks(t)
	b := startBusWith(t, busOpts{}, "--max-patterns", "2", "--max-string", "32", "--max-depth", "8",
		"--max-subscribers", "2", "--command-queue", "2", "--max-batch", "3", "--max-body", "4096")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := jimbotpb.NewEventBusClient(dial(t, b.grpc))

	// Patterns per subscription.
	stream, err := client.Subscribe(ctx, &jimbotpb.SubscribeRequest{TopicPattern: "a.b", TopicPatterns: []string{"game.>", "system.>"}})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "the subscription lists 3 topic patterns; this bus accepts at most 2 (--max-patterns)")

	// Subscribers.
	s1 := b.subscribe("game.>", "system.>")
	b.subscribe(">")
	stream, err = client.Subscribe(ctx, &jimbotpb.SubscribeRequest{})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)

	// String length, depth, events per batch, body size: answered, and
	// deadlettered where the content was refused.
	require.Contains(t, b.contentError("/api/v1/events", `{"type":"HEARTBEAT","source":"`+strings.Repeat("s", 33)+`","payload":{}}`),
		"string too long: field `source` has 33 bytes, at most 32")
	require.Contains(t, b.contentError("/api/v1/events", `{"type":"HEARTBEAT","source":"s","payload":`+strings.Repeat("[", 9)+strings.Repeat("]", 9)+`}`),
		"nesting too deep")
	require.Contains(t, b.contentError("/api/v1/events/batch", idBatch("m", 0, 4, 0)), "Too many events: a batch may hold at most 3")
	code, _ := b.do("POST", "/api/v1/events", "application/json", `{"type":"HEARTBEAT","source":"s","payload":"`+strings.Repeat("x", 4096)+`"}`)
	require.Equal(t, 413, code)
	dead := s1.waitFor(t, 3)
	for _, ev := range dead {
		require.Equal(t, "system.deadletter", ev.GetTopic())
	}

	// Commands queued.
	b.ok("/api/v1/commands", `[{"type":"a"},{"type":"b"}]`)
	code, body := b.do("POST", "/api/v1/commands", "text/plain", "c")
	require.Equal(t, 503, code, body)
	require.Contains(t, body, "command queue full")
	code, body = b.do("POST", "/api/v1/commands", "text/plain", "a\nb\nc")
	require.Equal(t, 200, code)
	require.Contains(t, body, "3 commands in one request; the queue holds at most 2 (--command-queue)")

	// NDJSON through the whole binary: a bad line costs only itself.
	code, body = b.do("POST", "/api/v1/events/batch", "application/x-ndjson",
		`{"type":"MONEY_CHANGED","source":"nd","payload":{},"event_id":"n1"}`+"\n{oops\n"+`{"type":"MONEY_CHANGED","source":"nd","payload":{},"event_id":"n3"}`)
	require.Equal(t, 200, code)
	require.Contains(t, body, "Processed 2/3 events. Errors: Event 1: Invalid format - ")
	var ids []string
	for _, ev := range s1.waitFor(t, 6)[3:] {
		ids = append(ids, ev.GetEventId()+"@"+ev.GetTopic())
	}
	require.Equal(t, "n1@game.money.changed", ids[0])
	require.Equal(t, "system.deadletter", strings.SplitN(ids[1], "@", 2)[1])
	require.Equal(t, "n3@game.money.changed", ids[2])
}
