//go:build !race

package loadtest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllocsRecord(t *testing.T) {
	rec, err := NewRecorder(RecorderOptions{Path: filepath.Join(t.TempDir(), "cap.jsonl"), MaxBytes: 1 << 20, Keep: 1})
	require.NoError(t, err)
	defer rec.Close()
	body := []byte("{\"events\":[{\"type\":\"HEARTBEAT\",\"x\":nan,\"bad\":\"\x01\"}]}")
	r := Record{At: 1751439161000000000, Method: "POST", Path: PathBatch, Header: hdrPostWinINet, Body: body}
	for range 100 { // warm the buffer up
		require.NoError(t, rec.Record(r))
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := rec.Record(r); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

func TestAllocsHistogramRecord(t *testing.T) {
	var h Histogram
	allocs := testing.AllocsPerRun(1000, func() { h.Record(123456) })
	require.Zero(t, allocs)
}

func TestAllocsRewriteIDs(t *testing.T) {
	body := []byte(`{"batch_id":"7d2e4950-591c-42af-8c85-01eabc65d571","events":[{"event_id":"0fd03a77-57ba-42aa-ad83-6e6db9234c16"}]}`)
	offs := UUIDOffsets(body)
	allocs := testing.AllocsPerRun(1000, func() { RewriteIDs(body, offs, RewriteMask(7, 3)) })
	require.Zero(t, allocs)
}
