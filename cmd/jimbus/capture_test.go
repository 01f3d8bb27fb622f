package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jimbot/jimbus/loadtest"
)

// TestCaptureAndReplay records real traffic with --capture, byte-exact
// (invalid JSON included), then replays the capture against a second bus
// with the load tester: every event delivered once.
func TestCaptureAndReplay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "capture.jsonl")
	b := startBus(t, "--capture", file)
	bodies := []struct{ path, body string }{
		{"/api/v1/events", string(readExample(t, "request_connection_test_body.json"))},
		{"/api/v1/events/batch", string(readExample(t, "request_batch_first_heartbeat.json"))},
		{"/api/v1/events/batch", string(readExample(t, "request_batch_state_change.json"))},
		// The mod's encoder quirks: a bare nan and a raw control byte.
		{"/api/v1/events/batch", "{\"events\":[{\"type\":\"ERROR\",\"source\":\"BalatroMCP\",\"payload\":{\"message\":\"a\x01b\",\"x\":nan},\"event_id\":\"q-1\",\"timestamp\":1.5}]}"},
	}
	for _, r := range bodies {
		b.ok(r.path, r.body)
	}
	code, _ := b.do("GET", "/api/v1/commands/poll", "text/plain", "")
	require.Equal(t, 200, code)
	b.do("GET", "/health", "", "") // not an event endpoint: not captured
	b.stop()

	recs, err := loadtest.ReadFile(file)
	require.NoError(t, err)
	require.Len(t, recs, len(bodies)+1)
	for i, r := range bodies {
		require.Equal(t, "POST", recs[i].Method)
		require.Equal(t, r.path, recs[i].Path)
		require.True(t, bytes.Equal([]byte(r.body), recs[i].Body), "body %d byte-exact", i)
		require.Contains(t, recs[i].Header, [2]string{"Content-Type", "application/json"})
		require.NotZero(t, recs[i].At)
	}
	require.Equal(t, "GET", recs[len(bodies)].Method)
	require.Equal(t, "/api/v1/commands/poll", recs[len(bodies)].Path)

	// Replay what was captured against a fresh bus.
	b2 := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := loadtest.Replay(ctx, loadtest.ReplayOptions{
		Target: b2.httpURL, GRPC: b2.grpc, Sessions: [][]loadtest.Record{recs},
		Games: 3, Speed: 50, Duration: 5 * time.Second, Grace: 2 * time.Second,
	})
	require.NoError(t, err)
	require.Zero(t, rep.Lost, "lost %v", rep.LostIDs)
	require.Zero(t, rep.Duplicates)
	require.Equal(t, rep.EventsAcked, rep.EventsDelivered)
	require.NotZero(t, rep.EventsDelivered)
}
