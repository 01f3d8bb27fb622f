package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

func TestCommandLine(t *testing.T) {
	f := func(typ, line, payload, want string) {
		t.Helper()
		got, err := CommandLine(typ, line, []byte(payload))
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	f("select_card", "", `{"index":0}`, "select_card:0")
	f("select_card", "", `{"position":3}`, "select_card:3")
	f("select_card", "", `{"index":2,"position":3}`, "select_card:2")
	f("select_card", "", `{"index":"4"}`, "select_card:4")
	f("select_card", "", `{"index":1.0}`, "select_card:1")
	f("play_hand", "", ``, "play_hand")
	f("play_hand", "", `null`, "play_hand")
	f("play_hand", "", `{}`, "play_hand")
	f("buy_joker", "", `{"index":null,"deck":"Red"}`, "buy_joker")
	f("ignored", "navigate_menu:continue", `{"index":9}`, "navigate_menu:continue")

	bad := func(typ, line, payload string) {
		t.Helper()
		_, err := CommandLine(typ, line, []byte(payload))
		require.ErrorIs(t, err, ErrBadCommand, "%q %q %q", typ, line, payload)
	}
	bad("", "", `{"index":0}`)
	bad("select_card", "", `{"index":-1}`)
	bad("select_card", "", `{"index":1.5}`)
	bad("select_card", "", `{"index":true}`)
	bad("select_card", "", `[0]`)
	bad("select_card", "", `{"index":`)
	bad("play\nhand", "", ``)
	bad("", "play_hand\r\nsell_joker", ``)
	bad(strings.Repeat("x", MaxCommandLine+1), "", ``)
}

func TestCommandsQueue(t *testing.T) {
	c := NewCommands(3)
	require.Empty(t, c.Drain(nil))
	require.NoError(t, c.Enqueue(&jimbotpb.Command{Type: "select_card", PayloadJson: []byte(`{"index":0}`)}))
	require.NoError(t, c.Enqueue(&jimbotpb.Command{Line: "play_hand"}))
	require.NoError(t, c.EnqueueLine("discard"))
	err := c.EnqueueLine("one too many")
	require.ErrorIs(t, err, ErrCommandsFull)
	require.Equal(t, codes.Unavailable, status.Code(err), "SendCommand: retry later")
	require.ErrorIs(t, c.EnqueueLine(""), ErrBadCommand)
	require.Equal(t, 3, c.Len())
	require.Equal(t, "x:select_card:0\nplay_hand\ndiscard\n", string(c.Drain([]byte("x:"))))
	require.Empty(t, c.Drain(nil), "each served once")
	// Wrap around the ring.
	for i := range 10 {
		require.NoError(t, c.EnqueueLine("a"))
		require.NoError(t, c.EnqueueLine("b"))
		require.Equal(t, "a\nb\n", string(c.Drain(nil)), "round %d", i)
	}
	require.NoError(t, c.enqueue("1", "2"))
	require.ErrorIs(t, c.enqueue("3", "4"), ErrCommandsFull, "all or nothing")
	require.Equal(t, 2, c.Len())
	c.Drain(nil)
	// More than the queue can ever hold: a permanent error, not "retry".
	err = c.enqueue("1", "2", "3", "4")
	require.ErrorIs(t, err, ErrBadCommand)
	require.NotErrorIs(t, err, ErrCommandsFull)
	require.Contains(t, err.Error(), "4 commands in one request; the queue holds at most 3 (--command-queue)")
	require.Zero(t, c.Len())
}

func TestCommandsOverHTTP(t *testing.T) {
	ts := startServer(t, Options{CommandQueueSize: 4}, nil)
	poll := func() answer {
		t.Helper()
		a := ts.do(t, "GET", "/api/v1/commands/poll", "text/plain", "")
		require.Equal(t, 200, a.code)
		require.Equal(t, "text/plain; charset=utf-8", a.header.Get("Content-Type"))
		require.NotEmpty(t, a.header.Get("Content-Length"))
		return a
	}
	a := poll()
	require.Equal(t, "", a.body)
	require.Equal(t, "0", a.header.Get("Content-Length"))

	require.Equal(t, okBody, ts.post(t, "/api/v1/commands", `{"type":"select_card","payload":{"index":0}}`).body)
	a = poll()
	require.Equal(t, "select_card:0\n", a.body)
	require.Equal(t, "14", a.header.Get("Content-Length"))
	require.Equal(t, "", poll().body, "served once")

	require.Equal(t, okBody, ts.post(t, "/api/v1/commands",
		`[{"type":"select_card","payload":{"position":1}},{"type":"play_hand"}]`).body)
	require.Equal(t, okBody, ts.do(t, "POST", "/api/v1/commands", "text/plain", "select_card:2\r\n\r\nplay_hand").body)
	// HEAD does not consume.
	h := ts.do(t, "HEAD", "/api/v1/commands/poll", "", "")
	require.Equal(t, 200, h.code)
	require.Equal(t, "48", h.header.Get("Content-Length"), "the length a GET would get")
	require.Equal(t, "select_card:1\nplay_hand\nselect_card:2\nplay_hand\n", poll().body)
	// What `curl -d` sends: a form type, read by the body's look.
	form := "application/x-www-form-urlencoded"
	require.Equal(t, okBody, ts.do(t, "POST", "/api/v1/commands", form, `{"type":"skip_blind"}`).body)
	require.Equal(t, okBody, ts.do(t, "POST", "/api/v1/commands", form, "go_to_shop").body)
	require.Equal(t, "skip_blind\ngo_to_shop\n", poll().body)

	for _, tc := range []struct{ ct, body string }{
		{"application/json", `{"type":"select_card","payload":{"index":-1}}`},
		{"application/json", `{"payload":{"index":1}}`},
		{"application/json", `[]`},
		{"application/json", `{not json`},
		{"application/json", `[{"type":"ok"},{"type":"bad\nline"}]`},
		{"text/plain", "\r\n\r\n"},
		{"text/html", "play_hand"},
	} {
		a := ts.do(t, "POST", "/api/v1/commands", tc.ct, tc.body)
		require.Equal(t, 200, a.code, tc.body)
		require.Contains(t, a.body, `"status":"error"`, tc.body)
	}
	require.Equal(t, "", poll().body, "nothing of a bad request was queued")

	require.Equal(t, okBody, ts.do(t, "POST", "/api/v1/commands", "text/plain", "a\nb\nc\nd").body)
	a = ts.do(t, "POST", "/api/v1/commands", "text/plain", "e")
	require.Equal(t, 503, a.code)
	require.Equal(t, "1", a.header.Get("Retry-After"))
	require.Equal(t, "a\nb\nc\nd\n", poll().body)
	require.Equal(t, float64(11), counterValue(t, ts.reg, "jimbus_commands_served_total"))
	require.Equal(t, float64(1), counterValue(t, ts.reg, "jimbus_commands_refused_total"))
}

func TestParseCommands(t *testing.T) {
	lines, err := parseCommands([]byte("  \n select_card:0 \r\nplay_hand\n"), false)
	require.NoError(t, err)
	require.Equal(t, []string{" select_card:0 ", "play_hand"}, lines, "lines are not trimmed")
	_, err = parseCommands([]byte(`[{"type":"a"},{"type":""}]`), true)
	require.True(t, errors.Is(err, ErrBadCommand))
	require.Contains(t, err.Error(), "command 1")
}
