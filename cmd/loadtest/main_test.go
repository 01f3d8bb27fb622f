package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/jimbot/jimbus/loadtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	)
}

func runT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestParseRate(t *testing.T) {
	f := func(in string, want float64, ok bool) {
		t.Helper()
		got, err := parseRate(in)
		require.Equal(t, ok, err == nil, in)
		require.InDelta(t, want, got, 1e-9, in)
	}
	f("", 0, true)
	f("500", 500, true)
	f("2000/s", 2000, true)
	f("600/m", 10, true)
	f("0", 0, false)
	f("-5/s", 0, false)
	f("fast", 0, false)
}

func TestUsage(t *testing.T) {
	code, _, stderr := runT(t)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "usage")
	code, _, _ = runT(t, "nope")
	require.Equal(t, 2, code)
	code, _, _ = runT(t, "gen")
	require.Equal(t, 2, code, "gen needs --out")
	code, _, _ = runT(t, "replay")
	require.Equal(t, 2, code, "replay needs files")
	code, _, _ = runT(t, "replay", "--speed", "2", "--rate", "10/s", "x")
	require.Equal(t, 2, code)
	code, _, _ = runT(t, "http")
	require.Equal(t, 2, code, "http needs a body")
	code, _, stderr = runT(t, "replay", "--target", "http://192.0.2.1:8080", "--grpc", "", os.DevNull)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "empty")
}

// okServer is a loopback fasthttp server that answers 200 to everything.
func okServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"status":"ok"}`) },
		MaxIdleWorkerDuration: 50 * time.Millisecond}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); _ = ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

func TestGenReplayHTTP(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runT(t, "gen", "--games", "2", "--duration", "6s", "--out", dir, "--seed", "9", "--outage", "--gzip")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "session-001.cap.jsonl.gz")
	recs, err := loadtest.ReadFile(filepath.Join(dir, "session-000.cap.jsonl.gz"))
	require.NoError(t, err)
	want, err := loadtest.Generate(loadtest.GenOptions{Seed: 9, Duration: 6 * time.Second, Outage: true})
	require.NoError(t, err)
	require.Equal(t, len(want), len(recs))

	target := okServer(t)
	jsonPath := filepath.Join(dir, "report.json")
	profPath := filepath.Join(dir, "cpu.prof")
	code, stdout, stderr = runT(t, "replay", "--target", target, "--grpc", "", "--games", "3", "--speed", "30",
		"--duration", "500ms", dir, "--json", jsonPath, "--quiet", "--cpuprofile", profPath)
	require.Equal(t, 0, code, stderr)
	prof, err := os.Stat(profPath)
	require.NoError(t, err)
	require.Positive(t, prof.Size(), "the load tester's profile was written")
	require.Contains(t, stdout, "requests")
	var rep loadtest.Report
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Positive(t, rep.Requests)
	require.Equal(t, rep.Requests, rep.Status["200"])
	require.Equal(t, 2, rep.Sessions)

	code, stdout, stderr = runT(t, "http", "--target", target, "--synthetic-batch", "10", "--conns", "2",
		"--duration", "200ms", "--json", "-", "--cpuprofile", profPath)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, `"events_per_request": 10`)

	code, _, stderr = runT(t, "http", "--target", target, "--synthetic-batch", "10", "--duration", "100ms",
		"--cpuprofile", filepath.Join(dir, "no-such-dir", "cpu.prof"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no-such-dir")
}
