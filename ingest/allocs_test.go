//go:build !race

package ingest

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAllocsIngest(t *testing.T) {
	body, err := os.ReadFile("../testdata/balatromcp/request_batch_state_change.json")
	require.NoError(t, err)

	pub := &releaser{}
	run := func(t *testing.T, s *Server, req *benchReq, wantBody string) {
		t.Helper()
		h := s.Handler()
		for range 20 { // warm the pools and the window's maps
			req.serve(h)
		}
		n := testing.AllocsPerRun(500, func() {
			req.serve(h)
		})
		require.Equal(t, 200, req.ctx.Response.StatusCode())
		require.Equal(t, wantBody, string(req.ctx.Response.Body()))
		require.Zero(t, n, "allocations per request")
	}

	t.Run("batch/new-events", func(t *testing.T) {
		s, err := New(Options{}, pub)
		require.NoError(t, err)
		// Each request comes a window after the last, so its events are new:
		// the full path (check-and-mark, publish, release) every time.
		clock := time.Now()
		s.now = func() time.Time {
			clock = clock.Add(6 * time.Minute)
			return clock
		}
		before := pub.events.Load()
		run(t, s, newBenchReq("POST", "/api/v1/events/batch", "application/json", body), okBody)
		require.Equal(t, int64(6*(20+501)), pub.events.Load()-before, "every request published")
	})
	t.Run("batch/resends", func(t *testing.T) {
		s, err := New(Options{}, pub)
		require.NoError(t, err)
		before := pub.events.Load()
		run(t, s, newBenchReq("POST", "/api/v1/events//batch", "application/json", body), okBody)
		require.Equal(t, int64(6), pub.events.Load()-before, "only the first request published")
	})
	t.Run("batch/no-dedup", func(t *testing.T) {
		s, err := New(Options{DedupWindow: -1}, pub)
		require.NoError(t, err)
		run(t, s, newBenchReq("POST", "/api/v1/events/batch", "", body), okBody)
	})
	t.Run("batch/rejected-event", func(t *testing.T) {
		s, err := New(Options{DedupWindow: -1}, pub)
		require.NoError(t, err)
		run(t, s, newBenchReq("POST", "/api/v1/events/batch", "application/json",
			[]byte(`{"events":[{"type":"HEARTBEAT","source":"x","payload":{}},{"type":"NOPE","source":"x","payload":{}}]}`)),
			`{"status":"error","error":"Processed 1/2 events. Errors: Event 1: Invalid format - Unknown event type: NOPE"}`)
	})
	t.Run("poll/empty", func(t *testing.T) {
		s, err := New(Options{}, pub)
		require.NoError(t, err)
		run(t, s, newBenchReq("GET", "/api/v1/commands/poll", "", nil), "")
	})
	t.Run("poll/command", func(t *testing.T) {
		s, err := New(Options{}, pub)
		require.NoError(t, err)
		req := newBenchReq("GET", "/api/v1/commands/poll", "", nil)
		h := s.Handler()
		n := testing.AllocsPerRun(500, func() {
			if err := s.Commands().EnqueueLine("play_hand"); err != nil {
				t.Fatal(err)
			}
			req.serve(h)
		})
		require.Equal(t, "play_hand\n", string(req.ctx.Response.Body()))
		require.Zero(t, n)
	})
	t.Run("health", func(t *testing.T) {
		s, err := New(Options{}, pub)
		require.NoError(t, err)
		req := newBenchReq("GET", "/health", "", nil)
		req.serve(s.Handler())
		n := testing.AllocsPerRun(500, func() { req.serve(s.Handler()) })
		require.Contains(t, string(req.ctx.Response.Body()), `"status":"healthy"`)
		require.Zero(t, n)
	})
}
