package route

import (
	"errors"
	"strings"
	"testing"
)

// refMatch is Match written from the contract (CONTRACT section 3), by
// splitting: equal strings match; "*" is exactly one segment; ">" as the
// last segment is one or more (what is left of the topic is not empty).
func refMatch(pattern, topic string) bool {
	if pattern == topic {
		return true
	}
	ps, ts := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, s := range ps {
		if s == ">" && i == len(ps)-1 {
			return i < len(ts) && strings.Join(ts[i:], ".") != ""
		}
		if i >= len(ts) || s != "*" && s != ts[i] {
			return false
		}
	}
	return len(ps) == len(ts)
}

// refValid is ValidatePattern written from its doc.
func refValid(p string) bool {
	if p == "" || len(p) > MaxPatternLen {
		return false
	}
	segs := strings.Split(p, ".")
	for i, s := range segs {
		switch {
		case s == "":
			return false
		case s == ">":
			if i != len(segs)-1 {
				return false
			}
		case s == "*":
		case strings.ContainsAny(s, "*> \t\r\n"):
			return false
		}
	}
	return true
}

var fuzzPatternSeeds = []string{
	"game.state.update", "game.*.*", "game.state", "*.*.*", "*.*", ">", "game.>", "*.>", "*", "", ".", "..",
	"game..state", ".game", "game.", ">.game", "game.>.x", "ga*me", "game.st>", "a b", "game.*.update",
	"system.deadletter", "metrics.>", "*.*.*.*", strings.Repeat("a.", 130) + "a", "\xff.\x00", "game.\t",
}

// FuzzMatch: Match never panics and agrees with refMatch; a pattern
// matches itself; a pattern without wildcards matches only itself.
func FuzzMatch(f *testing.F) {
	for _, p := range fuzzPatternSeeds {
		for _, topic := range []string{"game.state.update", "system.heartbeat", "game", "", "game.x", p} {
			f.Add(p, topic)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		got := Match(pattern, topic)
		if want := refMatch(pattern, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", pattern, topic, got, want)
		}
		if !Match(pattern, pattern) {
			t.Fatalf("%q does not match itself", pattern)
		}
		if got && pattern != topic && !strings.ContainsAny(pattern, "*>") {
			t.Fatalf("literal %q matches %q", pattern, topic)
		}
		if (ValidatePattern(pattern) == nil) != refValid(pattern) {
			t.Fatalf("ValidatePattern(%q) = %v", pattern, ValidatePattern(pattern))
		}
	})
}

// FuzzCompile: Compile (subscription parsing: the patterns of one
// subscription, one per line here) never panics; it fails, with
// ErrBadPattern, exactly when a pattern is invalid or there are more than
// MaxPatterns; otherwise the set holds exactly the topics that some pattern
// matches.
func FuzzCompile(f *testing.F) {
	f.Add("")
	f.Add(strings.Join(fuzzPatternSeeds, "\n"))
	f.Add("game.>\nsystem.heartbeat")
	f.Add("game.*.*\n*.*")
	f.Add(">")
	f.Add("system.deadletter\nsystem.deadletter")
	f.Add(strings.Repeat("game.>\n", MaxPatterns-1) + "game.>")
	f.Add(strings.Repeat("game.>\n", MaxPatterns) + "game.>")
	f.Fuzz(func(t *testing.T, list string) {
		var patterns []string
		if list != "" {
			patterns = strings.Split(list, "\n")
		}
		set, err := Compile(patterns...)
		wantErr := len(patterns) > MaxPatterns
		for _, p := range patterns {
			wantErr = wantErr || !refValid(p)
		}
		if (err != nil) != wantErr {
			t.Fatalf("Compile(%q): %v, want error %v", patterns, err, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("error %v is not ErrBadPattern", err)
			}
			return
		}
		if len(patterns) == 0 {
			patterns = []string{">"}
		}
		for i := range table {
			want := false
			for _, p := range patterns {
				want = want || refMatch(p, table[i].topic)
			}
			if set.Has(TopicID(i)) != want {
				t.Fatalf("Compile(%q): topic %q in set %v, want %v", patterns, table[i].topic, set.Has(TopicID(i)), want)
			}
		}
	})
}
