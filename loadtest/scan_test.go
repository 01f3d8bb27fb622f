package loadtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKindOf(t *testing.T) {
	f := func(method, path string, want BodyKind) {
		t.Helper()
		require.Equal(t, want, KindOf(method, path), "%s %s", method, path)
	}
	f("POST", "/api/v1/events", KindSingle)
	f("POST", "/api/v1/events/", KindSingle)
	f("POST", "/api/v1/events/batch", KindBatch)
	f("POST", "/api/v1/events//batch", KindBatch)
	f("POST", "/api/v1/events/batch?x=1", KindBatch)
	f("POST", "/api/v1/events/health", KindNone)
	f("GET", "/api/v1/events/batch", KindNone)
	f("GET", PathPoll, KindNone)
}

func TestScanEvents(t *testing.T) {
	f := func(kind BodyKind, body string, events int, ids []string, noID int) {
		t.Helper()
		sc := ScanEvents(kind, []byte(body))
		require.Equal(t, events, sc.Events, body)
		require.Equal(t, noID, sc.NoID, body)
		var got []string
		for _, id := range sc.IDs {
			got = append(got, body[id[0]:id[0]+id[1]])
		}
		require.Equal(t, ids, got, body)
	}
	f(KindBatch, `{"events":[{"event_id":"a"},{"type":"X"}],"batch_id":"b"}`, 2, []string{"a"}, 1)
	// Nested events (GAME_STATE changes) and payload keys named event_id
	// do not count; nan/inf and raw bytes do not disturb the scan.
	f(KindBatch, `{"source":"s","events":[{"type":"GAME_STATE","changes":[{"event_id":"n1"}],"payload":{"event_id":"p","x":nan,"s":"a\"b}]{[","y":[inf,-inf]},"event_id":"top"}],"batch_id":"b"}`,
		1, []string{"top"}, 0)
	f(KindBatch, "{\"events\":[{\"event_id\":\"\xff\x01\"}]}", 1, []string{"\xff\x01"}, 0)
	// "events" must be the top-level key holding the array.
	f(KindBatch, `{"other":[{"event_id":"x"}],"events":[]}`, 0, nil, 0)
	f(KindBatch, `{"events":{}}`, 0, nil, 0)
	f(KindSingle, `{"type":"connection_test","data":{"message":"m"},"source":"BalatroMCP","timestamp":1751439161000}`, 1, nil, 1)
	f(KindSingle, `{"event_id":"e","payload":{"event_id":"no"}}`, 1, []string{"e"}, 0)
	f(KindNone, `{"event_id":"e"}`, 0, nil, 0)
	// A non-string event_id is not an id.
	f(KindBatch, `{"events":[{"event_id":5}]}`, 1, nil, 1)
}

func TestRewriteIDs(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join("..", "testdata", "balatromcp", "request_batch_state_change.json"))
	require.NoError(t, err)
	offs := UUIDOffsets(orig)
	// batch_id, 6 top-level event ids, 5 nested copies.
	require.Len(t, offs, 12)
	sc := ScanEvents(KindBatch, orig)
	require.Equal(t, 6, sc.Events)
	require.Len(t, sc.IDs, 6)

	seen := map[string]int{}
	for lane := range 50 {
		b := bytes.Clone(orig)
		mask := RewriteMask(0xabcdef, lane)
		RewriteIDs(b, offs, mask)
		require.Len(t, b, len(orig))
		// Only the last 12 hex digits of each UUID may change.
		changed := map[int]bool{}
		for _, off := range offs {
			for j := off + uuidLen - 12; j < off+uuidLen; j++ {
				changed[j] = true
			}
		}
		for i := range b {
			if !changed[i] {
				require.Equal(t, orig[i], b[i], "byte %d changed", i)
			}
		}
		require.Equal(t, offs, UUIDOffsets(b), "still UUIDs, lowercase hex")
		// The nested copies still equal their top-level events.
		for _, c := range []string{"5137234f", "ad91be7b", "8f0cd596", "1299a991", "b148a254"} {
			i := bytes.Index(b, []byte(c))
			id := string(b[i : i+uuidLen])
			require.Equal(t, 2, bytes.Count(b, []byte(id)), id)
		}
		for _, id := range sc.IDs {
			seen[string(b[id[0]:id[0]+id[1]])]++
		}
		// Xoring again restores the original.
		RewriteIDs(b, offs, mask)
		require.Equal(t, orig, b)
	}
	require.Len(t, seen, 50*6, "every lane's ids are distinct")
	for _, n := range seen {
		require.Equal(t, 1, n)
	}
	// Distinct salts give distinct masks for the same lane.
	require.NotEqual(t, RewriteMask(1, 0), RewriteMask(2, 0))
	require.NotEqual(t, RewriteMask(1, 0), RewriteMask(1, 1))
}

func TestParseUUIDKey(t *testing.T) {
	k, ok := parseUUIDKey("0fd03a77-57ba-42aa-ad83-6e6db9234c16")
	require.True(t, ok)
	require.Equal(t, "0fd03a77-57ba-42aa-ad83-6e6db9234c16", k.String())
	k2, ok := parseUUIDKey("0FD03A77-57BA-42AA-AD83-6E6DB9234C16")
	require.True(t, ok)
	require.Equal(t, k, k2)
	for _, bad := range []string{"", "jb-123-4", "0fd03a77-57ba-42aa-ad83-6e6db9234c1", "0fd03a77x57ba-42aa-ad83-6e6db9234c16", "0fd03a77-57ba-42aa-ad83-6e6db9234c1g"} {
		_, ok := parseUUIDKey(bad)
		require.False(t, ok, bad)
	}
}
