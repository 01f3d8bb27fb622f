package loadtest

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// strictJSON makes a BalatroMCP body decodable by encoding/json: the bare
// nan/inf/-nan/-inf tokens outside strings become null. The second result
// says whether there were any.
func strictJSON(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b))
	inStr, found := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			out = append(out, c)
			if c == '\\' && i+1 < len(b) {
				i++
				out = append(out, b[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		case c == '"':
			inStr = true
		case c == 'n' || c == 'i' || c == '-':
			rest := b[i:]
			if c == '-' {
				rest = rest[1:]
			}
			if bytes.HasPrefix(rest, []byte("nan")) || bytes.HasPrefix(rest, []byte("inf")) {
				out = append(out, "null"...)
				i += len(b[i:]) - len(rest) + 2
				found = true
				continue
			}
		}
		out = append(out, c)
	}
	return out, found
}

// connTest is what a connection_test body says.
type connTest struct{ typ, message, source string }

var (
	reEpochMs  = regexp.MustCompile(`^\d{10}000$`)
	reCardID   = regexp.MustCompile(`^0\.999\d{8,11}$`)
	reConnTest = regexp.MustCompile(`^\{"type":"connection_test","data":\{"message":"Testing event bus connection"\},"source":"BalatroMCP","timestamp":\d{10}000\}$`)
	reDigits   = regexp.MustCompile(`^\d+$`)
)

type genEnvelope struct {
	Source    string            `json:"source"`
	Timestamp json.Number       `json:"timestamp"`
	BatchID   string            `json:"batch_id"`
	Events    []json.RawMessage `json:"events"`
}

type genEv struct {
	Type      string          `json:"type"`
	Source    string          `json:"source"`
	EventID   string          `json:"event_id"`
	Version   json.Number     `json:"version"`
	Timestamp json.Number     `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
	Debug     bool            `json:"debug"`
	Initial   bool            `json:"initial"`
	Changes   json.RawMessage `json:"changes"`
}

func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	fixed, _ := strictJSON(b)
	dec := json.NewDecoder(bytes.NewReader(fixed))
	dec.UseNumber()
	require.NoError(t, dec.Decode(v), "%.300s", b)
}

func num(t *testing.T, n json.Number) float64 {
	t.Helper()
	f, err := n.Float64()
	require.NoError(t, err)
	return f
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestGenerateDeterministic(t *testing.T) {
	a, err := Generate(GenOptions{Seed: 5, Duration: 20 * time.Second, Outage: true})
	require.NoError(t, err)
	b, err := Generate(GenOptions{Seed: 5, Duration: 20 * time.Second, Outage: true})
	require.NoError(t, err)
	requireSameRecords(t, a, b)
	c, err := Generate(GenOptions{Seed: 6, Duration: 20 * time.Second, Outage: true})
	require.NoError(t, err)
	require.NotEqual(t, a[1].Body, c[1].Body)

	_, err = Generate(GenOptions{Backend: "lynx"})
	require.ErrorContains(t, err, "Backend")
	_, err = Generate(GenOptions{Duration: -time.Second})
	require.Error(t, err)
	_, err = Generate(GenOptions{Duration: time.Millisecond})
	require.Error(t, err, "nothing sent in 1ms")
}

// TestGenerateSession checks a 60 s session against the documented rates,
// sizes and shapes (see the package documentation).
func TestGenerateSession(t *testing.T) {
	for _, o := range []GenOptions{{Seed: 1}, {Seed: 2}, {Seed: 3}, {Seed: 1, KeyOrder: KeyOrderCaptures}} {
		recs, err := Generate(o)
		require.NoError(t, err)
		checkSession(t, recs, 60*time.Second, o)
	}
}

// checkSession checks the records that Generate(o) made for dur.
func checkSession(t *testing.T, recs []Record, dur time.Duration, o GenOptions) {
	t.Helper()
	o, err := o.withDefaults()
	require.NoError(t, err)
	// inOrder checks that body has every object's keys in the session's
	// hash order (nothing to check for a captures session, whose exact
	// bytes the checks below match).
	inOrder := func(body []byte) {
		t.Helper()
		if o.KeyOrder == KeyOrderCaptures {
			return
		}
		again, err := hashOrder(body, o.Seed)
		require.NoError(t, err)
		require.Equal(t, string(body), string(again), "keys in the session's hash order")
	}
	require.True(t, slices.IsSortedFunc(recs, func(a, b Record) int { return int(a.At - b.At) }), "arrival order")
	secs := dur.Seconds()

	var (
		batches, polls, connTests, nonFiniteBodies int
		batchBytes                                 int
		stateSizes                                 []int
		hbTimes, pollTimes                         []float64
		types                                      = map[string]int{}
		phases                                     = map[string]bool{}
		emptyLists                                 = map[string]bool{}
	)
	vanilla := map[string]bool{"HEARTBEAT": true, "GAME_STATE": true, "MONEY_CHANGED": true, "SCORE_CHANGED": true,
		"HAND_PLAYED": true, "CARDS_DISCARDED": true, "JOKERS_CHANGED": true, "ROUND_CHANGED": true, "PHASE_CHANGED": true}
	for i, r := range recs {
		ct, _ := r.HeaderValue("Content-Type")
		switch {
		case r.Method == "GET":
			require.Equal(t, PathPoll, r.Path)
			require.Equal(t, "text/plain", ct)
			_, hasUA := r.HeaderValue("User-Agent")
			require.False(t, hasUA, "WinINet sends the poll without User-Agent")
			require.Empty(t, r.Body)
			polls++
			pollTimes = append(pollTimes, float64(r.At)/1e9)
			continue
		case r.Path == PathEvent:
			connTests++
			require.Equal(t, 0, batches, "connection_test comes before the first batch")
			inOrder(r.Body)
			var ct struct {
				Type      string
				Data      struct{ Message string }
				Source    string
				Timestamp json.Number
			}
			decodeStrict(t, r.Body, &ct)
			require.Equal(t, connTest{"connection_test", "Testing event bus connection", "BalatroMCP"}, connTest{ct.Type, ct.Data.Message, ct.Source})
			require.Regexp(t, reEpochMs, ct.Timestamp.String())
			if o.KeyOrder == KeyOrderCaptures {
				require.Regexp(t, reConnTest, string(r.Body))
			}
			require.Len(t, r.Body, 124)
			require.Equal(t, recs[i+1].Path, PathBatch, "in the same frame as the first batch")
			continue
		}
		require.Equal(t, PathBatch, r.Path)
		require.Equal(t, "application/json", ct)
		ua, _ := r.HeaderValue("User-Agent")
		require.Equal(t, "BalatroMCP/1.0", ua)
		batches++
		batchBytes += len(r.Body)
		if _, found := strictJSON(r.Body); found {
			nonFiniteBodies++
		}
		inOrder(r.Body)
		if o.KeyOrder == KeyOrderCaptures {
			require.True(t, bytes.HasPrefix(r.Body, []byte(`{"source":"BalatroMCP","timestamp":`)), "envelope key order")
		}
		var env genEnvelope
		decodeStrict(t, r.Body, &env)
		require.Equal(t, "BalatroMCP", env.Source)
		require.Regexp(t, reEpochMs, env.Timestamp.String(), "epoch ms at 1 s resolution")
		require.InDelta(t, float64(r.At)/1e6, num(t, env.Timestamp), 1000)
		require.Regexp(t, uuidV4, env.BatchID)
		require.NotEmpty(t, env.Events)
		require.LessOrEqual(t, len(env.Events), 50)
		states, lastTS := 0, 0.0
		for _, raw := range env.Events {
			var ev genEv
			decodeStrict(t, raw, &ev)
			require.True(t, vanilla[ev.Type], ev.Type)
			types[ev.Type]++
			require.Equal(t, "BalatroMCP", ev.Source)
			require.Equal(t, "1", ev.Version.String())
			require.Regexp(t, uuidV4, ev.EventID)
			ts := num(t, ev.Timestamp)
			require.Less(t, ts, 1e11, "love.timer ms, not epoch")
			require.GreaterOrEqual(t, ts, lastTS, "sorted by timestamp")
			lastTS = ts
			switch ev.Type {
			case "HEARTBEAT":
				hbTimes = append(hbTimes, ts)
				var p struct {
					Version   string      `json:"version"`
					GameState string      `json:"game_state"`
					Uptime    json.Number `json:"uptime"`
					Headless  *bool       `json:"headless"`
				}
				decodeStrict(t, ev.Payload, &p)
				require.Equal(t, "0.1.0", p.Version)
				require.Regexp(t, reDigits, p.GameState, "tostring(G.STATE)")
				require.InDelta(t, ts, num(t, p.Uptime), 1)
				require.NotNil(t, p.Headless)
			case "GAME_STATE":
				states++
				stateSizes = append(stateSizes, len(raw))
				var p struct {
					Timestamp json.Number     `json:"timestamp"`
					GameState string          `json:"game_state"`
					Hand      json.RawMessage `json:"hand"`
					Deck      struct {
						FullDeck []struct {
							ID json.Number `json:"id"`
						} `json:"full_deck"`
					} `json:"deck"`
				}
				decodeStrict(t, ev.Payload, &p)
				require.Len(t, p.Deck.FullDeck, 52)
				require.Regexp(t, reCardID, p.Deck.FullDeck[0].ID.String(), "float card ids")
				require.InDelta(t, float64(r.At)/1e9, num(t, p.Timestamp), 1.5, "epoch seconds")
				phases[p.GameState] = true
				if string(p.Hand) == "{}" {
					emptyLists["hand"] = true
				}
				if string(ev.Changes) == "{}" {
					require.True(t, ev.Initial)
					emptyLists["changes"] = true
				}
			}
		}
		require.LessOrEqual(t, states, 1, "at most one GAME_STATE per batch")
	}
	require.Equal(t, 1, connTests)

	// Rates.
	require.InDelta(t, 1.95, float64(batches)/secs, 0.3, "batches/s")
	require.InDelta(t, 1.94, float64(polls)/secs, 0.06, "polls/s")
	for i := 1; i < len(pollTimes); i++ {
		require.InDelta(t, 0.517, pollTimes[i]-pollTimes[i-1], 0.02, "poll interval")
	}
	require.InDelta(t, secs/5, float64(len(hbTimes)), 1)
	for i := 1; i < len(hbTimes); i++ {
		d := hbTimes[i] - hbTimes[i-1]
		require.True(t, d > 5000 && d < 5050, "heartbeat interval %v ms", d)
	}
	// Sizes.
	mean := 0
	for _, n := range stateSizes {
		require.True(t, n >= 7500 && n <= 10240, "GAME_STATE of %d bytes", n)
		mean += n
	}
	mean /= len(stateSizes)
	require.InDelta(t, 8900, mean, 500, "GAME_STATE mean size")
	require.InDelta(t, 10000, batchBytes/batches, 2000, "batch mean size")
	// Shapes and quirks.
	for _, typ := range []string{"MONEY_CHANGED", "SCORE_CHANGED", "HAND_PLAYED", "CARDS_DISCARDED", "JOKERS_CHANGED", "ROUND_CHANGED", "PHASE_CHANGED"} {
		require.Positive(t, types[typ], typ)
	}
	require.True(t, phases["UNKNOWN_STATE_1"])
	require.True(t, phases["SHOP"])
	require.True(t, emptyLists["hand"] && emptyLists["changes"], "{} for empty lists")
	require.Positive(t, nonFiniteBodies, "occasional nan/inf")
	require.Less(t, nonFiniteBodies, batches/6, "only occasional nan/inf")
}

func TestGenerateOutage(t *testing.T) {
	o := GenOptions{Seed: 2, Outage: true, OutageAt: 20 * time.Second, OutageFor: 15 * time.Second}
	recs, err := Generate(o)
	require.NoError(t, err)
	start := recs[0].At

	// No request arrives during the outage.
	var gapAt int
	for i := 1; i < len(recs); i++ {
		if recs[i].At-recs[i-1].At > int64(10*time.Second) {
			gapAt = i
			require.InDelta(t, o.OutageFor.Seconds(), float64(recs[i].At-recs[i-1].At)/1e9, 0.6)
			require.InDelta(t, (o.OutageAt + o.OutageFor).Seconds(), float64(recs[i].At-start)/1e9, 0.2)
		}
	}
	require.Positive(t, gapAt, "outage gap")

	// Then the burst: ~100 POSTs within one frame.
	burstEnd := gapAt
	for burstEnd < len(recs) && recs[burstEnd].At-recs[gapAt].At < int64(16*time.Millisecond) {
		burstEnd++
	}
	burst := recs[gapAt:burstEnd]
	posts := 0
	batchIDs := map[string]bool{}
	idCount := map[string]int{}
	idBytes := map[string]string{}
	total := 0
	for _, r := range burst {
		if r.Method != "POST" {
			continue
		}
		posts++
		var env genEnvelope
		decodeStrict(t, r.Body, &env)
		require.False(t, batchIDs[env.BatchID], "every resend chunk gets a new batch_id")
		batchIDs[env.BatchID] = true
		for _, raw := range env.Events {
			var ev genEv
			decodeStrict(t, raw, &ev)
			idCount[ev.EventID]++
			total++
			if prev, ok := idBytes[ev.EventID]; ok {
				require.Equal(t, prev, string(raw), "a resend is the same event: same id, same timestamp")
			}
			idBytes[ev.EventID] = string(raw)
		}
	}
	require.GreaterOrEqual(t, posts, 80)
	require.LessOrEqual(t, posts, 110)
	require.GreaterOrEqual(t, total, 800, "about 1,000 buffered events")
	require.Less(t, len(idCount), total/5, "mostly copies of a few distinct events")
	maxCopies := 0
	for _, n := range idCount {
		maxCopies = max(maxCopies, n)
	}
	require.Greater(t, maxCopies, 10)
}

func TestGenerateBackends(t *testing.T) {
	sock, err := Generate(GenOptions{Seed: 1, Duration: 10 * time.Second, Backend: BackendSocket})
	require.NoError(t, err)
	for _, r := range sock {
		v, ok := r.HeaderValue("Connection")
		require.True(t, ok && v == "Close", "%s %s", r.Method, r.Path)
	}
	curl, err := Generate(GenOptions{Seed: 1, Duration: 10 * time.Second, Backend: BackendCurl})
	require.NoError(t, err)
	expects := 0
	for _, r := range curl {
		_, ok := r.HeaderValue("Expect")
		require.Equal(t, r.Method == "POST" && len(r.Body) > 1024, ok, "%s %s %d", r.Method, r.Path, len(r.Body))
		if ok {
			expects++
		}
	}
	require.Positive(t, expects)
	// Same session, different headers only.
	win, err := Generate(GenOptions{Seed: 1, Duration: 10 * time.Second})
	require.NoError(t, err)
	require.Len(t, curl, len(win))
	for i := range win {
		require.Equal(t, win[i].Body, curl[i].Body)
		require.False(t, strings.Contains(string(win[i].Body), "\n"))
	}
}
