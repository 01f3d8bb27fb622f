package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSoak is `make soak`: it builds cmd/jimbus and cmd/loadtest, runs the
// bus on free loopback ports, replays the generated game sessions of
// loadtest/testdata against it for JIMBUS_SOAK_DURATION, and fails on any
// loss, duplicate, unexpected status or transport error, on goroutine
// growth (go_goroutines at the end back near its value before the load)
// and on RSS growth (process_resident_memory_bytes at the end against a
// sample taken after warm-up). It stops by itself: every process has a
// deadline. Skipped unless JIMBUS_SOAK_DURATION is set.
//
//	JIMBUS_SOAK_DURATION   how long the replay sends (e.g. 5m; CI: 20s)
//	JIMBUS_SOAK_GAMES      concurrent simulated games (default 16)
//	JIMBUS_SOAK_SPEED      replay speed, times real time (default 10)
//	JIMBUS_SOAK_RSS_GROWTH_MB  allowed RSS growth after warm-up (default 64)
//	JIMBUS_SOAK_RSS_MAX_MB     RSS never above this (default 1024)
//	JIMBUS_SOAK_ARGS       extra flags for jimbus serve
func TestSoak(t *testing.T) {
	durEnv := os.Getenv("JIMBUS_SOAK_DURATION")
	if durEnv == "" {
		t.Skip("set JIMBUS_SOAK_DURATION (make soak)")
	}
	dur, err := time.ParseDuration(durEnv)
	require.NoError(t, err, "JIMBUS_SOAK_DURATION")
	envInt := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, name)
			return n
		}
		return def
	}
	games := envInt("JIMBUS_SOAK_GAMES", 16)
	speed := envInt("JIMBUS_SOAK_SPEED", 10)
	rssGrowth := uint64(envInt("JIMBUS_SOAK_RSS_GROWTH_MB", 64)) << 20
	rssMax := uint64(envInt("JIMBUS_SOAK_RSS_MAX_MB", 1024)) << 20
	hard := dur + 3*time.Minute // every process is killed by then
	ctx, cancel := context.WithTimeout(context.Background(), hard)
	defer cancel()

	dir := t.TempDir()
	bus := buildBinary(t, dir, "github.com/jimbot/jimbus/cmd/jimbus", "jimbus")
	lt := buildBinary(t, dir, "github.com/jimbot/jimbus/cmd/loadtest", "loadtest")
	sessions, err := filepath.Glob(filepath.Join("..", "..", "loadtest", "testdata", "session_*.cap.jsonl.gz"))
	require.NoError(t, err)
	require.NotEmpty(t, sessions, "generated sessions in loadtest/testdata")

	httpAddr, grpcAddr := freePort(t), freePort(t)
	args := []string{"serve", "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--nvml=false", "--log-format", "json"}
	if extra := strings.Fields(os.Getenv("JIMBUS_SOAK_ARGS")); len(extra) > 0 {
		args = append(args, extra...)
	}
	srv := exec.CommandContext(ctx, bus, args...)
	logPath := filepath.Join(dir, "jimbus.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	srv.Stderr = logFile
	require.NoError(t, srv.Start())
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("jimbus log (last 4 KiB):\n%s", tail(b, 4096))
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	base := "http://" + httpAddr
	eventually(t, 20*time.Second, func() bool {
		resp, err := client.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "jimbus serves")
	scrape := func() (goroutines, rss uint64) {
		resp, err := client.Get(base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			switch name {
			case "go_goroutines":
				goroutines = uint64(f)
			case "process_resident_memory_bytes":
				rss = uint64(f)
			}
		}
		return goroutines, rss
	}
	g0, rss0 := scrape()

	// Sample while the load runs: the RSS after warm-up is the baseline of
	// growth, and the highest RSS is checked against the cap.
	warmAt := max(dur/5, min(30*time.Second, dur/2))
	var mu sync.Mutex
	var rssWarm, rssPeak, gPeak uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		start := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			g, rss := scrape()
			mu.Lock()
			rssPeak, gPeak = max(rssPeak, rss), max(gPeak, g)
			if rssWarm == 0 && time.Since(start) >= warmAt {
				rssWarm = rss
			}
			mu.Unlock()
		}
	}()

	report := filepath.Join(dir, "report.json")
	replay := exec.CommandContext(ctx, lt, append([]string{"replay", "--target", base, "--grpc", grpcAddr,
		"--games", strconv.Itoa(games), "--speed", strconv.Itoa(speed), "--duration", dur.String(),
		"--grace", "10s", "--json", report, "--quiet"}, sessions...)...)
	out, err := replay.CombinedOutput()
	close(stopSampling)
	<-sampled
	t.Logf("loadtest replay:\n%s", out)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "loadtest replay did not run")
		code = ee.ExitCode()
	}

	var rep struct {
		Requests          uint64            `json:"requests"`
		EventsAcked       uint64            `json:"events_acked"`
		EventsDelivered   uint64            `json:"events_delivered"`
		Status            map[string]uint64 `json:"status"`
		TransportErrors   uint64            `json:"transport_errors"`
		FirstError        string            `json:"first_error"`
		Lost              uint64            `json:"lost"`
		Duplicates        uint64            `json:"duplicates"`
		DeliveredNotAcked uint64            `json:"delivered_not_acked"`
	}
	b, err := os.ReadFile(report)
	require.NoError(t, err, "the replay wrote no report (exit %d)", code)
	require.NoError(t, json.Unmarshal(b, &rep))

	// Goroutines: back near the idle value once the clients are gone.
	var g1, rss1 uint64
	settled := time.Now().Add(15 * time.Second)
	for {
		g1, rss1 = scrape()
		if g1 <= g0+10 || time.Now().After(settled) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	warm, peak, gmax := rssWarm, max(rssPeak, rss1), gPeak
	mu.Unlock()
	if warm == 0 {
		warm = rss0
	}
	t.Logf("soak %v, %d games at %dx: %d requests, %d events acked, %d delivered, statuses %v; "+
		"goroutines %d idle, %d peak, %d after; RSS %d MiB idle, %d MiB after warm-up, %d MiB peak, %d MiB after",
		dur, games, speed, rep.Requests, rep.EventsAcked, rep.EventsDelivered, rep.Status,
		g0, gmax, g1, rss0>>20, warm>>20, peak>>20, rss1>>20)

	// Stop the bus as the service manager would.
	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("jimbus did not exit 20 s after SIGTERM")
	}

	require.Equal(t, 0, code, "loadtest replay exit status (3: loss or duplicates)")
	require.Positive(t, rep.Requests)
	require.Positive(t, rep.EventsDelivered)
	require.Zero(t, rep.Lost, "events answered 2xx, never delivered")
	require.Zero(t, rep.Duplicates, "events delivered twice")
	require.Zero(t, rep.DeliveredNotAcked, "events delivered, never answered 2xx")
	require.Zero(t, rep.TransportErrors, "requests without an answer: %s", rep.FirstError)
	for s, n := range rep.Status {
		require.True(t, strings.HasPrefix(s, "2"), "unexpected status %s (%d times)", s, n)
	}
	require.LessOrEqual(t, g1, g0+10, "goroutines grew from %d to %d", g0, g1)
	require.LessOrEqual(t, rss1, warm+rssGrowth, "RSS grew from %d MiB after warm-up to %d MiB", warm>>20, rss1>>20)
	require.LessOrEqual(t, peak, rssMax, "RSS peaked at %d MiB", peak>>20)
	require.NoError(t, err, "jimbus exit status after SIGTERM")
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
