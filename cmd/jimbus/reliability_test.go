package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// The tests of this file start the whole binary's wiring (or the binary
// itself) on loopback, push it into overload and faults, and count every
// event by id: what was answered ok must reach the connected subscribers
// exactly once. Each is bounded in events and time.

// counter counts deliveries per event id, from a subscriber that may read
// slowly.
type counter struct {
	mu     sync.Mutex
	seen   map[string]int
	total  int
	lastAt time.Time
}

func newCounter() *counter { return &counter{seen: map[string]int{}} }

func (c *counter) add(evs []*jimbotpb.Event) {
	c.mu.Lock()
	for _, ev := range evs {
		c.seen[ev.GetEventId()]++
		c.total++
	}
	c.lastAt = time.Now()
	c.mu.Unlock()
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// exactlyOnce checks that every id in acked was delivered exactly once, and
// nothing else was delivered.
func (c *counter) exactlyOnce(t *testing.T, acked map[string]bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	lost, dup, foreign := 0, 0, 0
	for id := range acked {
		switch n := c.seen[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	for id := range c.seen {
		if !acked[id] {
			foreign++
		}
	}
	require.Zero(t, lost, "answered ok, never delivered (of %d)", len(acked))
	require.Zero(t, dup, "delivered more than once")
	require.Zero(t, foreign, "delivered, never answered ok")
}

// subscribeCounting subscribes on its own connection and counts what it
// receives; pause is slept after each message; stall makes it stop reading.
// A slow reader (pause or stall) gets fixed 64 KiB flow-control windows, so
// that it pushes back at once. done receives the stream's final error.
func subscribeCounting(t *testing.T, b *testBus, id string, pause time.Duration, stall *atomic.Bool) (*counter, chan error, context.CancelFunc, *grpc.ClientConn) {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if pause > 0 || stall != nil {
		opts = append(opts, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	}
	conn, err := grpc.NewClient(b.grpc, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := jimbotpb.NewEventBusClient(conn).Subscribe(ctx, &jimbotpb.SubscribeRequest{
		TopicPatterns: []string{">"}, SubscriberId: id,
	})
	require.NoError(t, err)
	_, err = stream.Header() // the subscription is active
	require.NoError(t, err)
	c := newCounter()
	done := make(chan error, 1)
	go func() {
		for {
			for stall != nil && stall.Load() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			batch, err := stream.Recv()
			if err != nil {
				done <- err
				return
			}
			c.add(batch.GetEvents())
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	}()
	return c, done, cancel, conn
}

// producer posts batches of unique ids; on 503 it checks Retry-After and
// resends the same body, as BalatroMCP does (after a short pause here,
// not the mod's 1 s and 3 s, to keep the test short).
type producer struct {
	mu       sync.Mutex
	acked    map[string]bool
	status   map[int]int
	noRetry  int // 503 without Retry-After
	connErrs int
}

func newProducer() *producer { return &producer{acked: map[string]bool{}, status: map[int]int{}} }

// post sends one batch until it is answered 200 ok, or until stop says
// so; it returns whether it was acknowledged.
func (p *producer) post(client *http.Client, url, prefix string, from, n, pad int, stop func() bool) bool {
	body := idBatch(prefix, from, n, pad)
	for {
		code, retryAfter, out, err := postEvents(client, url, body)
		p.mu.Lock()
		switch {
		case err != nil:
			p.connErrs++
		default:
			p.status[code]++
			if code == 503 && retryAfter == "" {
				p.noRetry++
			}
		}
		if err == nil && code == 200 && strings.Contains(out, `"ok"`) {
			for i := from; i < from+n; i++ {
				p.acked[fmt.Sprintf("%s%d", prefix, i)] = true
			}
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		if stop != nil && stop() {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *producer) snapshot() (acked map[string]bool, status map[int]int, noRetry, connErrs int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acked = make(map[string]bool, len(p.acked))
	for k := range p.acked {
		acked[k] = true
	}
	status = make(map[int]int, len(p.status))
	for k, v := range p.status {
		status[k] = v
	}
	return acked, status, p.noRetry, p.connErrs
}

// TestOverloadBlock: producers faster than a deliberately slow subscriber
// fill the rings; the bus answers 503 with Retry-After, memory stays
// bounded, and every event answered ok reaches the subscriber exactly
// once (--slow-subscriber=block).
func TestOverloadBlock(t *testing.T) {
	checkLeaks(t)
	b := startBusWith(t, busOpts{}, "--ring-shards", "1", "--ring-size", "4", "--subscriber-queue", "2", "--send-batch", "10",
		"--slow-subscriber", "block", "--slow-block-timeout", "60s", "--publish-wait", "5ms")
	sub, done, _, _ := subscribeCounting(t, b, "slow", 3*time.Millisecond, nil)
	other, otherDone, _, _ := subscribeCounting(t, b, "other", 0, nil) // held back by the slow one, never skipped

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()

	const producers, requests, perRequest, pad = 4, 30, 25, 400
	p := newProducer()
	var wg sync.WaitGroup
	for g := 0; g < producers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < requests; r++ {
				p.post(b.client, b.httpURL, fmt.Sprintf("o%d-", g), r*perRequest, perRequest, pad, nil)
			}
		}()
	}
	wg.Wait()
	acked, status, noRetry, connErrs := p.snapshot()
	require.Len(t, acked, producers*requests*perRequest, "every request is eventually answered ok")
	eventually(t, 30*time.Second, func() bool { return sub.count() >= len(acked) && other.count() >= len(acked) },
		"delivered %d and %d of %d", sub.count(), other.count(), len(acked))
	close(stopSampling)
	<-sampled
	time.Sleep(50 * time.Millisecond) // anything extra would show now
	sub.exactlyOnce(t, acked)
	other.exactlyOnce(t, acked)

	t.Logf("statuses %v, heap in use %d MiB at start, peak %d MiB", status, base>>20, peak.Load()>>20)
	require.Greater(t, status[503], 0, "the producers outran the subscriber: some answers are 503")
	require.Zero(t, noRetry, "every 503 carries Retry-After")
	require.Zero(t, connErrs)
	require.Equal(t, producers*requests, status[200])
	require.Len(t, status, 2, "only 200 and 503")
	require.Less(t, peak.Load(), base+128<<20, "heap in use stays bounded")
	require.Positive(t, metricSum(t, b.srv.reg, "jimbus_fanout_ring_full_total"))
	require.Zero(t, metricSum(t, b.srv.reg, "jimbus_grpc_subscriber_events_dropped_total"))
	b.stop()
	require.ErrorIs(t, <-done, io.EOF)
	require.ErrorIs(t, <-otherDone, io.EOF)
}

// TestStalledSubscriber: with --slow-subscriber=drop-oldest, a subscriber
// that stops reading loses events (counted) but does not slow the producer
// or another subscriber, which gets everything, in order, exactly once.
func TestStalledSubscriber(t *testing.T) {
	checkLeaks(t)
	b := startBusWith(t, busOpts{}, "--slow-subscriber", "drop-oldest", "--subscriber-queue", "256", "--send-batch", "50")
	var stall atomic.Bool
	stall.Store(true)
	stalled, _, _, _ := subscribeCounting(t, b, "stalled", 0, &stall)
	fast, fastDone, _, _ := subscribeCounting(t, b, "fast", 0, nil)

	// 2.4 MB: beyond what the stalled stream's window (64 KiB) and queue
	// (256 batches, 1.5 MB) hold.
	const requests, perRequest, pad = 400, 10, 600
	p := newProducer()
	start := time.Now()
	for r := 0; r < requests; r++ {
		require.True(t, p.post(b.client, b.httpURL, "s-", r*perRequest, perRequest, pad, func() bool { return true }),
			"request %d not answered ok at once", r)
	}
	acked, status, _, _ := p.snapshot()
	eventually(t, 10*time.Second, func() bool { return fast.count() >= len(acked) }, "fast got %d of %d", fast.count(), len(acked))
	t.Logf("%d events posted and delivered to the fast subscriber in %v; statuses %v; the stalled one got %d",
		len(acked), time.Since(start), status, stalled.count())
	require.Equal(t, map[int]int{200: requests}, status, "never a 503: nobody waits for the stalled subscriber")
	fast.exactlyOnce(t, acked)
	dropped := metricSum(t, b.srv.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "stalled")
	require.Positive(t, dropped, "the stalled subscriber's losses are counted")
	require.Zero(t, metricSum(t, b.srv.reg, "jimbus_grpc_subscriber_events_dropped_total", "subscriber", "fast"))

	// Once it reads again it gets what was still queued, never a duplicate.
	stall.Store(false)
	eventually(t, 10*time.Second, func() bool {
		stalled.mu.Lock()
		defer stalled.mu.Unlock()
		return !stalled.lastAt.IsZero() && time.Since(stalled.lastAt) > 100*time.Millisecond
	}, "the stalled subscriber drains")
	stalled.mu.Lock()
	for id, n := range stalled.seen {
		require.Equal(t, 1, n, id)
		require.True(t, acked[id], id)
	}
	got := stalled.total
	stalled.mu.Unlock()
	t.Logf("the stalled subscriber, once reading again: %d delivered + %d counted as dropped = %d posted", got, int(dropped), len(acked))
	require.Equal(t, float64(len(acked)), float64(got)+dropped, "every event either delivered or counted as dropped")
	b.stop()
	require.ErrorIs(t, <-fastDone, io.EOF)
}

// TestSubscriberDiesMidStream: subscribers that go away mid-stream (the
// client cancels; the client's connection closes) are removed, their
// queues released and metrics updated, without a goroutine left; the
// producer never notices; the same id reconnects and receives again.
func TestSubscriberDiesMidStream(t *testing.T) {
	checkLeaks(t)
	b := startBusWith(t, busOpts{}, "--subscriber-queue", "8", "--send-batch", "10")
	keep, keepDone, _, _ := subscribeCounting(t, b, "keeper", 0, nil)
	p := newProducer()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; !stop.Load() && r < 5000; r++ {
			p.post(b.client, b.httpURL, "d-", r*10, 10, 200, nil)
		}
	}()
	gauge := func() float64 { return metricSum(t, b.srv.reg, "jimbus_grpc_subscribers") }
	for round, how := range []string{"cancel", "close", "cancel"} {
		c, done, cancel, conn := subscribeCounting(t, b, "dying", 0, nil)
		require.Equal(t, 2, b.srv.bus.Subscribers())
		eventually(t, 5*time.Second, func() bool { return c.count() >= 50 }, "round %d: receives", round)
		if how == "cancel" {
			cancel()
		} else {
			conn.Close()
		}
		<-done
		eventually(t, 5*time.Second, func() bool { return b.srv.bus.Subscribers() == 1 && gauge() == 1 },
			"round %d (%s): removed: %d subscribers, gauge %v", round, how, b.srv.bus.Subscribers(), gauge())
	}
	stop.Store(true)
	wg.Wait()
	acked, status, _, _ := p.snapshot()
	t.Logf("3 subscribers died (cancel, connection closed, cancel) and reconnected as the same id; %d events acked, statuses %v, keeper got %d",
		len(acked), status, keep.count())
	require.Equal(t, 0, status[503], "the producer never waited for the dying subscribers")
	eventually(t, 10*time.Second, func() bool { return keep.count() >= len(acked) }, "keeper got %d of %d", keep.count(), len(acked))
	keep.exactlyOnce(t, acked)
	b.stop()
	require.ErrorIs(t, <-keepDone, io.EOF)
}

// TestShutdownUnderLoad: shutdown (what SIGTERM runs) while clients post:
// requests in flight finish, later ones get 503 with Retry-After or find
// the listener closed, the rings drain, and every event answered ok reaches
// the connected subscriber exactly once; shutdown returns in time.
func TestShutdownUnderLoad(t *testing.T) {
	checkLeaks(t)
	b := startBusWith(t, busOpts{}, "--subscriber-queue", "16", "--send-batch", "32")
	sub, done, _, _ := subscribeCounting(t, b, "sd", 0, nil)
	p := newProducer()
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 10000; r++ {
				if !p.post(b.client, b.httpURL, fmt.Sprintf("sd%d-", g), r*20, 20, 100, stopping.Load) {
					return
				}
			}
		}()
	}
	eventually(t, 10*time.Second, func() bool { a, _, _, _ := p.snapshot(); return len(a) >= 3000 }, "load running")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := b.srv.shutdown(ctx)
	took := time.Since(start)
	b.stopped = true
	require.NoError(t, err)
	stopping.Store(true)
	wg.Wait()
	b.client.CloseIdleConnections()
	require.ErrorIs(t, <-done, io.EOF, "the stream ends cleanly after the rings drained")
	acked, status, noRetry, connErrs := p.snapshot()
	t.Logf("shutdown took %v; %d events acked; statuses %v; %d connection errors after the listener closed", took, len(acked), status, connErrs)
	require.Less(t, took, 5*time.Second)
	sub.exactlyOnce(t, acked)
	for code := range status {
		require.Contains(t, []int{200, 503}, code)
	}
	require.Zero(t, noRetry, "every 503 carries Retry-After")
	require.Positive(t, status[503]+connErrs, "requests after the start of shutdown are refused")
}

// buildBinary builds cmd/jimbus (with -race when the tests run with it, so
// that the compiled packages are shared with the test build) into dir.
func buildBinary(t testing.TB, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run(), "go build %s", pkg)
	return bin
}

// TestBinarySIGTERM builds the real binary, runs it on free loopback
// ports, loads it, sends SIGTERM and expects exit 0 with every acknowledged
// event delivered to the connected subscriber.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	checkLeaks(t)
	bin := buildBinary(t, t.TempDir(), "github.com/jimbot/jimbus/cmd/jimbus", "jimbus")
	httpAddr, grpcAddr := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve", "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--nvml=false", "--log-format", "json")
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	var logs strings.Builder
	logsDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
		}
		close(logsDone)
	}()
	go func() { <-logsDone; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	url := "http://" + httpAddr
	eventually(t, 20*time.Second, func() bool {
		resp, err := client.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the binary serves")

	b := &testBus{t: t, grpc: grpcAddr}
	sub, done, _, _ := subscribeCounting(t, b, "bin", 0, nil)
	p := newProducer()
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 10000; r++ {
				if !p.post(client, url, fmt.Sprintf("bin%d-", g), r*10, 10, 100, stopping.Load) {
					return
				}
			}
		}()
	}
	eventually(t, 10*time.Second, func() bool { a, _, _, _ := p.snapshot(); return len(a) >= 500 }, "load running")
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err = <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15 s after SIGTERM; log:\n%s", logs.String())
	}
	stopping.Store(true)
	wg.Wait()
	require.NoError(t, err, "exit status 0; log:\n%s", logs.String())
	require.Zero(t, cmd.ProcessState.ExitCode())
	require.ErrorIs(t, <-done, io.EOF)
	acked, status, noRetry, connErrs := p.snapshot()
	t.Logf("exit 0 %v after SIGTERM; %d events acked; statuses %v; %d connection errors", time.Since(start), len(acked), status, connErrs)
	sub.exactlyOnce(t, acked)
	require.Zero(t, noRetry)
	require.Contains(t, logs.String(), `"msg":"stopped"`)
	require.NotContains(t, logs.String(), "DATA RACE")
}
