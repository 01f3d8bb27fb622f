package loadtest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// awkwardBodies are bodies a capture must keep byte for byte.
var awkwardBodies = [][]byte{
	nil,
	[]byte("{}"),
	[]byte(`{"chips":nan,"x":inf,"y":-inf}`),
	[]byte("{\"message\":\"bad \"thing\" happened\tat\x01frame\x00\x1b\x7f\"}"),
	[]byte("\xff\xfe\xfd invalid utf-8 \xc3\x28"),
	[]byte("line1\nline2\r\n\u2028\u2029 <>&"),
	[]byte(`\\\"\u0041 "quoted" \n literal backslashes`),
	bytes.Repeat([]byte("é€𝄞"), 5000),
	append([]byte(`{"ok":"`), append(bytes.Repeat([]byte{0x80}, 3), '"', '}')...),
}

func awkwardRecords() []Record {
	var recs []Record
	for i, b := range awkwardBodies {
		recs = append(recs, Record{
			At:     1751439161000000000 + int64(i)*1e6,
			Method: "POST",
			Path:   "/api/v1/events//batch?x=1",
			Header: [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "Balatro\"MCP\"/1.0\x01"}},
			Body:   b,
		})
	}
	recs = append(recs, Record{At: 1, Method: "GET", Path: PathPoll})
	return recs
}

func requireSameRecords(t *testing.T, want, got []Record) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.At, g.At, "record %d", i)
		require.Equal(t, w.Method, g.Method, "record %d", i)
		require.Equal(t, w.Path, g.Path, "record %d", i)
		require.Equal(t, len(w.Header), len(g.Header), "record %d", i)
		for j := range w.Header {
			require.Equal(t, w.Header[j], g.Header[j], "record %d", i)
		}
		require.True(t, bytes.Equal(w.Body, g.Body), "record %d: body %q != %q", i, w.Body, g.Body)
	}
}

func TestRecorderRoundTripInvalidBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.jsonl")
	rec, err := NewRecorder(RecorderOptions{Path: path})
	require.NoError(t, err)
	want := awkwardRecords()
	for _, r := range want {
		body := append([]byte(nil), r.Body...)
		r.Body = body
		require.NoError(t, rec.Record(r))
		// Record copies: scribbling over the caller's buffer afterwards
		// must not change what was captured.
		for i := range body {
			body[i] = 'X'
		}
	}
	require.NoError(t, rec.Close())
	require.NoError(t, rec.Close(), "Close is idempotent")
	require.ErrorIs(t, rec.Record(Record{}), ErrClosed)

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, len(want), bytes.Count(raw, []byte("\n")), "one record per line")
	require.Contains(t, string(raw), `"body_b64":`, "invalid UTF-8 goes to base64")

	got, err := ReadFile(path)
	require.NoError(t, err)
	requireSameRecords(t, want, got)

	// The same through WriteFile, plain and gzip.
	for _, name := range []string{"w.jsonl", "w.jsonl.gz"} {
		p := filepath.Join(t.TempDir(), name)
		require.NoError(t, WriteFile(p, want))
		got, err := ReadFile(p)
		require.NoError(t, err)
		requireSameRecords(t, want, got)
	}
}

func TestReaderErrors(t *testing.T) {
	f := func(in, wantErr string) {
		t.Helper()
		_, err := NewReader(strings.NewReader(in)).ReadAll()
		require.ErrorContains(t, err, wantErr)
	}
	f(`{"v":2,"at":1,"method":"GET","path":"/"}`+"\n", "format version 2")
	f(`{"v":1,"at":1,"method":"GET","path":"/"`+"\n", "line 1")
	f(`{"v":1,"at":1,"method":"GET","path":"/"}`, "truncated")
	f(`{"v":1,"at":1,"method":"POST","path":"/","body":"a","body_b64":"YQ=="}`+"\n", "both")

	// Blank lines and unknown keys are fine; body absent means empty.
	recs, err := NewReader(strings.NewReader("\n" + `{"path":"/p","v":1,"new":[1],"at":5,"method":"GET"}` + "\n\n")).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []Record{{At: 5, Method: "GET", Path: "/p"}}, recs)

	// A gzip stream is recognised.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(AppendRecord(nil, &Record{At: 7, Method: "POST", Path: "/x", Body: []byte("\x00")}))
	require.NoError(t, zw.Close())
	rd := NewReader(&buf)
	r, err := rd.Next()
	require.NoError(t, err)
	require.Equal(t, []byte("\x00"), r.Body)
	_, err = rd.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestRecorderRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.jsonl")
	// An existing capture is rotated away on open.
	require.NoError(t, os.WriteFile(path, AppendRecord(nil, &Record{At: -1, Method: "GET", Path: "/old"}), 0o644))

	const maxBytes = 2000
	rec, err := NewRecorder(RecorderOptions{Path: path, MaxBytes: maxBytes, Keep: 3, BufferSize: 512})
	require.NoError(t, err)
	old, err := ReadFile(path + ".1")
	require.NoError(t, err)
	require.Equal(t, "/old", old[0].Path)

	var all []Record
	for i := range 100 {
		r := Record{At: int64(i), Method: "POST", Path: PathBatch, Header: hdrPostWinINet,
			Body: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%50)))}
		all = append(all, r)
		require.NoError(t, rec.Record(r))
	}
	// A record bigger than MaxBytes gets a file of its own.
	big := Record{At: 100, Method: "POST", Path: PathBatch, Body: bytes.Repeat([]byte("y"), 3*maxBytes)}
	all = append(all, big)
	require.NoError(t, rec.Record(big))
	require.NoError(t, rec.Close())

	files, err := RotatedFiles(path)
	require.NoError(t, err)
	require.Equal(t, []string{path + ".3", path + ".2", path + ".1", path}, files, "Keep=3 rotated files plus the current one")
	_, err = os.Stat(path + ".4")
	require.True(t, os.IsNotExist(err))

	var got []Record
	for _, f := range files {
		st, err := os.Stat(f)
		require.NoError(t, err)
		recs, err := ReadFile(f)
		require.NoError(t, err)
		if len(recs) > 1 {
			require.LessOrEqual(t, st.Size(), int64(maxBytes), f)
		}
		got = append(got, recs...)
	}
	// The newest records survive, in order, with nothing missing between.
	require.NotEmpty(t, got)
	requireSameRecords(t, all[len(all)-len(got):], got)
	require.Equal(t, []byte(big.Body), got[len(got)-1].Body)
}

func TestRecorderConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.jsonl")
	rec, err := NewRecorder(RecorderOptions{Path: path, MaxBytes: 64 << 10, Keep: 100, FlushInterval: -1})
	require.NoError(t, err)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 0, 64)
			for i := range each {
				body = fmt.Appendf(body[:0], `{"w":%d,"i":%d}`, w, i)
				if err := rec.Record(Record{At: int64(w*each + i), Method: "POST", Path: PathEvent, Body: body}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, rec.Close())
	files, err := RotatedFiles(path)
	require.NoError(t, err)
	seen := map[int64]bool{}
	for _, f := range files {
		recs, err := ReadFile(f)
		require.NoError(t, err)
		for _, r := range recs {
			w, i := r.At/each, r.At%each
			require.Equal(t, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i), string(r.Body))
			seen[r.At] = true
		}
	}
	require.Len(t, seen, writers*each)
}
