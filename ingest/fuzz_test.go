package ingest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseCommands: parseCommands never panics; it gives lines or an
// error, never both; every line is one the game can read (non-empty, no
// line break, at most MaxCommandLine bytes); errors wrap ErrBadCommand; a
// text body gives exactly its non-blank lines.
func FuzzParseCommands(f *testing.F) {
	for _, s := range []string{
		`{"type":"select_card","payload":{"index":0}}`, `{"line":"play_hand"}`,
		`[{"type":"select_card","payload":{"position":"3"}},{"type":"discard"}]`,
		`{"type":"select_card","payload":{"index":-1}}`, `{"type":"a\nb"}`, `[]`, `{}`, `null`, `[null]`,
		`{"type":"x","payload":{"index":2.0}}`, `{"type":"x","payload":{"index":1e3}}`, `{"type":"x","payload":[1]}`,
		"play_hand\nselect_card:1\r\n\r\n", "\n\n", "  \n\t", "a\rb\n", strings.Repeat("x", MaxCommandLine+1),
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		lines, err := parseCommands(body, asJSON)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) || lines != nil {
				t.Fatalf("error %v (ErrBadCommand %v) with %d lines", err, errors.Is(err, ErrBadCommand), len(lines))
			}
			return
		}
		if len(lines) == 0 {
			t.Fatal("no lines and no error")
		}
		for i, l := range lines {
			if err := validateLine(l); err != nil {
				t.Fatalf("line %d %q: %v", i, l, err)
			}
		}
		if !asJSON {
			var want []string
			for _, l := range bytes.Split(body, []byte("\n")) {
				l = bytes.TrimSuffix(l, []byte("\r"))
				if len(bytes.TrimSpace(l)) > 0 {
					want = append(want, string(l))
				}
			}
			if strings.Join(want, "\n") != strings.Join(lines, "\n") || len(want) != len(lines) {
				t.Fatalf("text body %q gave %q", body, lines)
			}
		}
		// Whatever was parsed can be queued, or is refused as too many.
		c := NewCommands(4)
		if err := c.enqueue(lines...); err != nil && (len(lines) <= 4 || !errors.Is(err, ErrBadCommand)) {
			t.Fatalf("enqueue %d lines: %v", len(lines), err)
		}
	})
}
