package loadtest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testSessions are three short sessions: one with an outage burst, one with
// curl's headers (Expect: 100-continue), one with the plain-socket backend's
// (Connection: Close).
func testSessions(t *testing.T) [][]Record {
	t.Helper()
	var out [][]Record
	for _, o := range []GenOptions{
		{Seed: 11, Duration: 8 * time.Second, Outage: true, OutageAt: 3 * time.Second, OutageFor: 2 * time.Second},
		{Seed: 12, Duration: 8 * time.Second, Backend: BackendCurl},
		{Seed: 13, Duration: 8 * time.Second, Backend: BackendSocket},
	} {
		recs, err := Generate(o)
		require.NoError(t, err)
		out = append(out, recs)
	}
	return out
}

func requireOrderedLatency(t *testing.T, l Latency) {
	t.Helper()
	require.Positive(t, l.Count)
	require.Positive(t, l.P50)
	require.LessOrEqual(t, l.P50, l.P90)
	require.LessOrEqual(t, l.P90, l.P99)
	require.LessOrEqual(t, l.P99, l.P999)
	require.LessOrEqual(t, l.P999, l.Max)
}

// TestReplayAccounting replays against a real fasthttp server and a real
// gRPC EventBus that deliver every event once, and checks the report against
// what the server itself counted.
func TestReplayAccounting(t *testing.T) {
	fb := startFakeBus(t, &fakeBus{})
	var progress bytes.Buffer
	rep, err := Replay(context.Background(), ReplayOptions{
		Target:        "http://" + fb.httpAddr,
		GRPC:          fb.grpcAddr,
		Sessions:      testSessions(t),
		Games:         4,
		Speed:         20,
		Duration:      1500 * time.Millisecond,
		Grace:         3 * time.Second,
		Salt:          77,
		Progress:      &progress,
		ProgressEvery: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	requests, eventsIn, accepted, resends, dropped, duped, noID, bad := fb.stats()
	require.Zero(t, bad, "every body decodes (after nan/inf)")
	require.Zero(t, dropped+duped)
	require.Empty(t, rep.Warnings)

	require.Equal(t, "speed", rep.Mode)
	require.True(t, rep.Subscribed)
	require.Equal(t, uint64(requests), rep.Requests)
	require.Equal(t, map[string]uint64{"200": rep.Requests}, rep.Status)
	require.Zero(t, rep.TransportErrors)
	require.Equal(t, uint64(eventsIn), rep.EventsSent)
	require.Positive(t, resends, "the outage burst's resends reached the bus")
	require.Equal(t, uint64(eventsIn-resends), rep.EventsDistinct, "resends count once")
	require.Equal(t, uint64(accepted), rep.EventsAcked)
	require.Equal(t, uint64(accepted), rep.EventsDelivered)
	require.Positive(t, noID, "connection_test events")
	// Zero loss also proves the rewritten ids of the games are distinct:
	// the bus would have dropped a colliding id as a resend.
	require.Zero(t, rep.Lost)
	require.Zero(t, rep.Duplicates)
	require.Zero(t, rep.DeliveredNotAcked)
	require.Zero(t, rep.Foreign)
	require.Zero(t, rep.Untracked)
	require.False(t, rep.Failed())

	requireOrderedLatency(t, rep.HTTPLatency)
	require.Equal(t, rep.Requests, rep.HTTPLatency.Count)
	requireOrderedLatency(t, rep.DeliveryLatency)
	require.Equal(t, rep.EventsDelivered, rep.DeliveryLatency.Count)
	require.Positive(t, rep.RequestsPerSec)
	require.Positive(t, rep.EventsDeliveredPerSec)

	fb.mu.Lock()
	require.Positive(t, fb.headers["Expect: 100-continue"])
	require.Positive(t, fb.headers["User-Agent: BalatroMCP/1.0"])
	fb.mu.Unlock()
	require.Contains(t, progress.String(), "req/s")

	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "lost")
}

// TestReplayLossAndDuplicates injects faults in the bus: the report must
// count exactly the events it dropped and the deliveries it doubled.
func TestReplayLossAndDuplicates(t *testing.T) {
	fb := startFakeBus(t, &fakeBus{dropEvery: 7, dupEvery: 5})
	rep, err := Replay(context.Background(), ReplayOptions{
		Target:   "http://" + fb.httpAddr,
		GRPC:     fb.grpcAddr,
		Sessions: testSessions(t),
		Games:    3,
		Speed:    20,
		Duration: time.Second,
		Grace:    500 * time.Millisecond,
	})
	require.NoError(t, err)
	_, _, accepted, _, dropped, duped, _, _ := fb.stats()
	require.Positive(t, dropped)
	require.Positive(t, duped)
	require.Equal(t, uint64(dropped), rep.Lost)
	require.Equal(t, uint64(duped), rep.Duplicates)
	require.Equal(t, uint64(accepted-dropped), rep.EventsDelivered)
	require.Len(t, rep.LostIDs, min(dropped, 20))
	require.Len(t, rep.DuplicateIDs, min(duped, 20))
	require.True(t, rep.Failed())
}

// TestReplayOpenLoopLatency: against a bus that takes 20ms per request, one
// connection and an open-loop rate of 200 req/s, latency measured from the
// scheduled time grows with the queue; a closed loop would hide it.
func TestReplayOpenLoopLatency(t *testing.T) {
	const delay = 20 * time.Millisecond
	fb := startFakeBus(t, &fakeBus{delay: delay})
	base := ReplayOptions{
		Target:   "http://" + fb.httpAddr,
		Sessions: testSessions(t)[1:2],
		Games:    2,
		Duration: 600 * time.Millisecond,
	}
	open := base
	open.Rate, open.Conns = 200, 1
	rep, err := Replay(context.Background(), open)
	require.NoError(t, err)
	require.Equal(t, "rate", rep.Mode)
	require.Positive(t, rep.Backlog, "requests left unsent at the end")
	require.LessOrEqual(t, rep.Requests, uint64(31))
	require.Equal(t, rep.Requests+rep.Backlog, uint64(120), "every scheduled request is sent or in the backlog")
	// Request j (from 0) is scheduled at 5j ms and cannot be answered
	// before 20(j+1) ms: its latency is at least 15j+20 ms.
	require.Greater(t, rep.HTTPLatency.P50, 4*delay.Seconds()*1e3)
	require.Greater(t, rep.HTTPLatency.Max, 10*delay.Seconds()*1e3)

	closed := base
	closed.Speed = 50
	crep, err := Replay(context.Background(), closed)
	require.NoError(t, err)
	require.Less(t, crep.HTTPLatency.P50, rep.HTTPLatency.P50/2)
}

// TestOpenLoopSchedule checks the scheduler alone: jobs carry their
// scheduled time, a busy worker does not delay the schedule, and latency
// from the schedule includes the wait.
func TestOpenLoopSchedule(t *testing.T) {
	type done struct {
		k            int64
		sched, begin time.Time
		lat          time.Duration
	}
	run := func(rate float64, workers int, work time.Duration, dur time.Duration) (time.Time, []done, int64, int64) {
		var mu sync.Mutex
		var got []done
		start := time.Now()
		sent, unsent := openLoop(context.Background(), rate, start, start.Add(dur), workers,
			func(_ *workerState, k int64, sched time.Time) {
				begin := time.Now()
				time.Sleep(work)
				mu.Lock()
				got = append(got, done{k, sched, begin, time.Since(sched)})
				mu.Unlock()
			})
		return start, got, sent, unsent
	}

	// Fast work: everything is sent, at (not before) its time. A job a
	// worker takes only after the end counts as unsent: on a loaded machine
	// (make test under -race on 2 cores) the last one or two can be.
	start, got, sent, unsent := run(500, 4, 0, 200*time.Millisecond)
	require.Equal(t, int64(100), sent+unsent, "every job counted once")
	require.GreaterOrEqual(t, sent, int64(95))
	for _, d := range got {
		require.Equal(t, start.Add(time.Duration(d.k)*2*time.Millisecond), d.sched)
		require.False(t, d.begin.Before(d.sched.Add(-time.Millisecond)), "job %d started early", d.k)
	}

	// Slow work: 2 workers x 10ms = 200/s against 1000/s scheduled.
	_, got, sent, unsent = run(1000, 2, 10*time.Millisecond, 200*time.Millisecond)
	require.InDelta(t, 200, sent+unsent, 2)
	require.Positive(t, unsent)
	require.LessOrEqual(t, sent, int64(42))
	var maxLat time.Duration
	for _, d := range got {
		require.GreaterOrEqual(t, d.lat, 10*time.Millisecond)
		maxLat = max(maxLat, d.lat)
	}
	// The last jobs sent waited ~4x longer than their service time.
	require.Greater(t, maxLat, 50*time.Millisecond)
}

func TestReplayRefusesRemote(t *testing.T) {
	sess := [][]Record{{{Method: "GET", Path: PathPoll}}}
	_, err := Replay(context.Background(), ReplayOptions{Target: "http://192.0.2.1:8080", Sessions: sess})
	require.ErrorContains(t, err, "non-loopback")
	_, err = Replay(context.Background(), ReplayOptions{GRPC: "192.0.2.1:50051", Sessions: sess})
	require.ErrorContains(t, err, "non-loopback")
	_, err = LoadHTTP(context.Background(), HTTPOptions{URL: "http://192.0.2.1/api/v1/events/batch", Body: []byte("{}")})
	require.ErrorContains(t, err, "non-loopback")
	_, err = Replay(context.Background(), ReplayOptions{Target: "http://127.0.0.1:1/api", Sessions: sess})
	require.ErrorContains(t, err, "base URL")
	_, err = Replay(context.Background(), ReplayOptions{})
	require.ErrorContains(t, err, "no sessions")
	require.NoError(t, checkLoopback("localhost", false))
	require.NoError(t, checkLoopback("::1", false))
	require.NoError(t, checkLoopback("192.0.2.1", true))
}

func TestLoadHTTP(t *testing.T) {
	fb := startFakeBus(t, &fakeBus{})
	body := SyntheticBatch(50)
	require.InDelta(t, 25_000, len(body), 3000)
	rep, err := LoadHTTP(context.Background(), HTTPOptions{
		URL:      "http://" + fb.httpAddr + PathBatch,
		Body:     body,
		Conns:    4,
		Duration: 300 * time.Millisecond,
		GRPC:     fb.grpcAddr,
	})
	require.NoError(t, err)
	requests, eventsIn, accepted, resends, _, _, noID, bad := fb.stats()
	require.Zero(t, bad)
	require.Equal(t, 50, rep.EventsPerReq)
	require.Positive(t, rep.Requests)
	require.Equal(t, uint64(requests), rep.Requests)
	require.Equal(t, map[string]uint64{"200": rep.Requests}, rep.Status)
	require.Equal(t, requests*50, eventsIn)
	require.Zero(t, resends, "events without event_id are never deduplicated")
	require.Equal(t, eventsIn, accepted)
	require.Equal(t, eventsIn, noID)
	require.Positive(t, rep.Delivered)
	require.LessOrEqual(t, rep.Delivered, uint64(accepted))
	requireOrderedLatency(t, rep.Latency)
	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "req")
}
