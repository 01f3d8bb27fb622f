package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite loadtest/testdata from the generator and ../testdata/balatromcp")

// testdataSessions are the committed generated sessions and the options
// that made them; `go test ./loadtest -run Testdata -update` rewrites them.
var testdataSessions = []struct {
	file string
	opts GenOptions
}{
	{"session_seed1_60s.cap.jsonl.gz", GenOptions{Seed: 1, Duration: 60 * time.Second}},
	{"session_seed2_60s_outage.cap.jsonl.gz", GenOptions{Seed: 2, Duration: 60 * time.Second, Outage: true}},
	{"session_seed3_60s_curl.cap.jsonl.gz", GenOptions{Seed: 3, Duration: 60 * time.Second, Backend: BackendCurl}},
	// Plain, to be read: a short session with the plain-socket backend.
	{"session_seed4_10s_socket.cap.jsonl", GenOptions{Seed: 4, Duration: 10 * time.Second, Backend: BackendSocket}},
}

// TestTestdataSessions keeps the committed sessions equal to what the
// generator makes (so a generator change is a visible testdata change).
func TestTestdataSessions(t *testing.T) {
	for _, s := range testdataSessions {
		want, err := Generate(s.opts)
		require.NoError(t, err)
		path := filepath.Join("testdata", s.file)
		if *update {
			require.NoError(t, WriteFile(path, want))
		}
		got, err := ReadFile(path)
		require.NoError(t, err, "run go test ./loadtest -run Testdata -update")
		requireSameRecords(t, want, got)
		if !s.opts.Outage && s.opts.Backend != BackendSocket {
			checkSession(t, got, s.opts.Duration, s.opts)
		}
	}
}

const realCapture = "real_capture_2025-07-01.cap.jsonl"

// convertRealCapture turns the real capture (one batch body per line) into
// capture records: arrival at the batch's epoch-ms timestamp plus the
// offset of its first event on the mod's love.timer clock (the batch clock
// has 1 s resolution), the mod's two headers, path /api/v1/events/batch.
func convertRealCapture(t *testing.T, src []byte) []Record {
	t.Helper()
	var recs []Record
	var t0ms, love0 float64
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		var b struct {
			Timestamp float64
			Events    []struct{ Timestamp float64 }
		}
		require.NoError(t, json.Unmarshal(line, &b))
		love := b.Events[0].Timestamp
		if recs == nil {
			t0ms, love0 = b.Timestamp, love
		}
		at := int64(t0ms*1e6) + int64((love-love0)*1e6)
		recs = append(recs, Record{At: at, Method: "POST", Path: PathBatch, Header: hdrPostWinINet, Body: line})
	}
	require.NoError(t, sc.Err())
	return recs
}

// TestTestdataRealCapture checks the converted real capture: same bodies,
// byte for byte, as ../testdata/balatromcp.
func TestTestdataRealCapture(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "testdata", "balatromcp", "captured_heartbeat_batches_2025-07-01.jsonl"))
	require.NoError(t, err)
	want := convertRealCapture(t, src)
	require.Len(t, want, 10)
	path := filepath.Join("testdata", realCapture)
	if *update {
		require.NoError(t, WriteFile(path, want))
	}
	got, err := ReadFile(path)
	require.NoError(t, err)
	requireSameRecords(t, want, got)
	var joined []byte
	for _, r := range got {
		joined = append(append(joined, r.Body...), '\n')
	}
	require.Equal(t, src, joined)
	// Heartbeats 5.0-5.02 s apart.
	for i := 1; i < len(got); i++ {
		d := time.Duration(got[i].At - got[i-1].At)
		require.True(t, d >= 5*time.Second && d < 5050*time.Millisecond, d)
	}
}
