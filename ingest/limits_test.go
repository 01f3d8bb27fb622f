package ingest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jimbot/jimbus/ingest/decode"
	"github.com/jimbot/jimbus/route"
)

// TestNDJSONBatch: the batch endpoint takes one event a line with
// Content-Type application/x-ndjson; a broken line is deadlettered alone;
// resends are dropped as in a JSON batch; gzip works too.
func TestNDJSONBatch(t *testing.T) {
	ts := startServer(t, Options{}, nil)
	body := event("n1", 1) + "\n" + `{"type":"MONEY_CHANGED","source":` + "\n\n" + event("n3", 3) + "\r\n"
	a := ts.do(t, "POST", "/api/v1/events/batch", "application/x-ndjson; charset=utf-8", body)
	require.Equal(t, 200, a.code)
	require.Equal(t, `{"status":"error","error":"Processed 2/3 events. Errors: Event 1: Invalid format - unexpected end of JSON input at offset 167"}`, a.body)
	got := ts.pub.got()
	require.Len(t, got, 3)
	require.Equal(t, "n1", got[0].ID)
	require.Equal(t, route.TopicDeadletter, got[1].Topic)
	require.Equal(t, "n3", got[2].ID)

	// The same lines again (a resend), with one new: only the new one.
	a = ts.do(t, "POST", "/api/v1/events/batch", "application/x-ndjson", event("n1", 1)+"\n"+event("n4", 4))
	require.Equal(t, okBody, a.body)
	require.Equal(t, []string{"n1", got[1].ID, "n3", "n4"}, ts.pub.ids())

	var zb strings.Builder
	zw := gzipWriter(&zb)
	_, _ = io.WriteString(zw, event("n5", 5)+"\n"+event("n6", 6)+"\n")
	require.NoError(t, zw.Close())
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/events/batch", strings.NewReader(zb.String()))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/jsonl")
	r, err := ts.client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, okBody, string(b))
	require.Len(t, ts.pub.got(), 6)
	require.Equal(t, 1.0, counterValue(t, ts.reg, "jimbus_ingest_events_rejected_total"))
}

// TestLimitsOverHTTP: each decoder limit answers 200 with a clear reason
// and deadletters what it refused; a command request that can never fit
// is a permanent error.
func TestLimitsOverHTTP(t *testing.T) {
	ts := startServer(t, Options{CommandQueueSize: 2, DecodeOptions: decode.Options{MaxEvents: 3, MaxDepth: 8, MaxStringLen: 32}}, nil)
	f := func(path, body, want string) {
		t.Helper()
		a := ts.post(t, path, body)
		require.Equal(t, 200, a.code)
		require.Contains(t, a.body, want)
	}
	f("/api/v1/events/batch", batch("b", event("a", 1), event("b", 2), event("c", 3), event("d", 4)),
		"Too many events: a batch may hold at most 3")
	f("/api/v1/events/batch", batch("b", event("a", 1), `{"type":"HEARTBEAT","source":"`+strings.Repeat("s", 33)+`","payload":{}}`),
		"Processed 1/2 events. Errors: Event 1: Invalid format - string too long: field `source` has 33 bytes, at most 32")
	f("/api/v1/events", `{"type":"HEARTBEAT","source":"x","payload":`+strings.Repeat("[", 10)+strings.Repeat("]", 10)+`}`,
		"nesting too deep")
	got := ts.pub.got()
	require.Len(t, got, 4) // the fatal batch, a, its deadletter, the deep event
	require.Equal(t, route.TopicDeadletter, got[0].Topic)
	require.Equal(t, route.TopicDeadletter, got[3].Topic)

	a := ts.do(t, "POST", "/api/v1/commands", "text/plain", "a\nb\nc\n")
	require.Equal(t, 200, a.code)
	require.Contains(t, a.body, "3 commands in one request; the queue holds at most 2 (--command-queue)")
	require.Equal(t, okBody, ts.do(t, "POST", "/api/v1/commands", "text/plain", "a\nb\n").body)
	a = ts.do(t, "POST", "/api/v1/commands", "text/plain", "c\n")
	require.Equal(t, 503, a.code, "full for now: retry later")
	require.Equal(t, "1", a.header.Get("Retry-After"))
}

// TestHugeBodiesRefusedCheaply: 100 MB bodies are refused without being
// read into memory: announced by Content-Length (413 before the body),
// streamed chunked without a length (413 once MaxBody is passed, the rest
// never read), or a gzip bomb (413 once the decoded size passes MaxBody).
func TestHugeBodiesRefusedCheaply(t *testing.T) {
	ts := startServer(t, Options{}, nil) // MaxBody 10 MiB
	const huge = 100 << 20

	// Chunked, no length: the client streams until the server answers.
	c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(c, "POST /api/v1/events/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	require.NoError(t, err)
	var sent atomic.Int64
	go func() {
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10)))
		for sent.Load() < huge {
			if _, err := c.Write(chunk); err != nil {
				return
			}
			sent.Add(64 << 10)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 413, resp.StatusCode)
	c.Close()
	t.Logf("chunked: 413 after the client had written %d MiB", sent.Load()>>20)
	require.Less(t, sent.Load(), int64(40<<20), "the server stopped reading near MaxBody, not at 100 MB")

	// A gzip bomb: 100 MB of zeros in about 100 KB.
	var zb strings.Builder
	zw := gzipWriter(&zb)
	zero := make([]byte, 1<<20)
	for range huge >> 20 {
		_, _ = zw.Write(zero)
	}
	require.NoError(t, zw.Close())
	require.Less(t, zb.Len(), 1<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("POST", ts.url+"/api/v1/events/batch", strings.NewReader(zb.String()))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	r, err := ts.client.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, 413, r.StatusCode)
	runtime.ReadMemStats(&after)
	t.Logf("gzip bomb of %d KiB: 413, %d MiB allocated in the process meanwhile", zb.Len()>>10, (after.TotalAlloc-before.TotalAlloc)>>20)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "the bomb was not decoded to its end")
	require.Empty(t, ts.pub.got())
}
