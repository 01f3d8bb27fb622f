package loadtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Paths the generator uses (BalatroMCP's defaults).
const (
	PathEvent = "/api/v1/events"
	PathBatch = "/api/v1/events/batch"
	PathPoll  = "/api/v1/commands/poll"
)

// HTTP client backends of lua-https, which decide the headers beyond the two
// the mod sets (balatromcp-client.md section 1.2).
const (
	// BackendWinINet (Windows, the real deployment): keep-alive, no
	// Connection header; the poll carries no User-Agent.
	BackendWinINet = "wininet"
	// BackendSocket: lua-https's plain-socket code: Connection: Close on
	// every request.
	BackendSocket = "socket"
	// BackendCurl (Linux builds): Expect: 100-continue on POST bodies over
	// 1 KiB.
	BackendCurl = "curl"
)

// GenOptions configures Generate. The zero value works; every field
// documents its default.
type GenOptions struct {
	// Seed makes the session: equal options give byte-identical records.
	// Default 1.
	Seed uint64
	// Duration is the length of the session. Default 60s.
	Duration time.Duration
	// Start is the wall-clock time of the session's first frame. Default
	// 2025-07-01T06:52:41Z (the real capture's day) plus Seed minutes.
	Start time.Time
	// Outage adds a bus outage and the burst that follows it: no request
	// arrives during the outage, then the mod's local buffer (up to 1,000
	// events, mostly copies of the same few) arrives as ~100 POSTs of 10
	// events in one frame, followed by the aggregator's own resends.
	Outage bool
	// OutageAt is when the outage starts. Default 2/5 of Duration.
	OutageAt time.Duration
	// OutageFor is how long it lasts. Default min(15s, Duration/4).
	OutageFor time.Duration
	// Backend is the lua-https backend whose headers the requests carry:
	// BackendWinINet (default), BackendSocket or BackendCurl.
	Backend string
	// Activity is the probability that a 500 ms state sample sees the game
	// change (an AI playing at 4x: nearly always). Default 0.9.
	Activity float64
	// KeyOrder is the order of the keys in every object of every body:
	// KeyOrderHash (default), the session's own Lua hash order (it follows
	// from Seed), or KeyOrderCaptures, the reference captures' order.
	KeyOrder string
}

func (o *GenOptions) withDefaults() (GenOptions, error) {
	g := *o
	if g.Seed == 0 {
		g.Seed = 1
	}
	if g.Duration == 0 {
		g.Duration = 60 * time.Second
	}
	if g.Duration < 0 {
		return g, fmt.Errorf("loadtest: Duration %v is negative", g.Duration)
	}
	if g.Start.IsZero() {
		g.Start = time.Date(2025, 7, 1, 6, 52, 41, 0, time.UTC).Add(time.Duration(g.Seed) * time.Minute)
	}
	if g.OutageAt == 0 {
		g.OutageAt = g.Duration * 2 / 5
	}
	if g.OutageFor == 0 {
		g.OutageFor = min(15*time.Second, g.Duration/4)
	}
	switch g.Backend {
	case "":
		g.Backend = BackendWinINet
	case BackendWinINet, BackendSocket, BackendCurl:
	default:
		return g, fmt.Errorf("loadtest: unknown Backend %q (want wininet, socket or curl)", g.Backend)
	}
	if g.Activity == 0 {
		g.Activity = 0.9
	}
	if g.Activity < 0 || g.Activity > 1 {
		return g, fmt.Errorf("loadtest: Activity %v is outside [0, 1]", g.Activity)
	}
	switch g.KeyOrder {
	case "":
		g.KeyOrder = KeyOrderHash
	case KeyOrderHash, KeyOrderCaptures:
	default:
		return g, fmt.Errorf("loadtest: unknown KeyOrder %q (want hash or captures)", g.KeyOrder)
	}
	return g, nil
}

// The mod's timers (balatromcp-client.md section 4).
const (
	genFPS          = 60.0
	heartbeatMs     = 5000.0
	sampleSec       = 0.5
	pollSec         = 0.5
	flushMs         = 100.0
	maxBatchEvents  = 50
	queueCap        = 100 // the aggregator drops its 10 oldest at this many
	localBufferCap  = 1000
	bufferChunk     = 10
	reqSpacingNs    = 300_000 // between two synchronous requests of one frame
	burstSpacingNs  = 40_000  // between the POSTs of an outage burst
	eventSpacingMs  = 0.0213  // between events created in one sample
	sdkVersion      = "0.1.0"
	connectionTestB = `{"type":"connection_test","data":{"message":"Testing event bus connection"},"source":"BalatroMCP","timestamp":`
)

// Generate synthesises one BalatroMCP session as the bus would capture it:
// every request in arrival order (see the package documentation for what is
// modelled). It is deterministic in opts.
func Generate(opts GenOptions) ([]Record, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &gen{
		o:     o,
		rng:   rand.New(rand.NewPCG(o.Seed, 0x6a696d627573)), // "jimbus"
		start: o.Start.UnixNano(),
	}
	g.love0 = 20_000 + g.rng.Float64()*400_000
	g.initGame()
	g.run()
	if g.err != nil {
		return nil, g.err
	}
	if len(g.recs) == 0 {
		return nil, errors.New("loadtest: session too short to send anything")
	}
	return g.recs, nil
}

// genEvent is one event object, encoded once: resends carry the same bytes.
type genEvent struct {
	ts      float64
	isState bool
	raw     []byte
}

type gen struct {
	o     GenOptions
	rng   *rand.Rand
	start int64   // wall clock of frame 0, Unix ns
	love0 float64 // love.timer ms at frame 0
	recs  []Record

	queue      []*genEvent
	buffer     []*genEvent // the client's local buffer (outage)
	lastHB     float64
	lastFlush  float64
	connTested bool
	firstState bool

	g          game
	prev       snapshot
	overflowAt float64 // seconds: the hand whose score overflows to inf
	reqAt      int64   // arrival time of the frame's next request
	err        error   // the first body hashOrder could not reorder (a bug)
}

var (
	hdrPostWinINet = [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "BalatroMCP/1.0"}}
	hdrPostSocket  = [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "BalatroMCP/1.0"}, {"Connection", "Close"}}
	hdrPostCurlBig = [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "BalatroMCP/1.0"}, {"Expect", "100-continue"}}
	hdrPollWinINet = [][2]string{{"Content-Type", "text/plain"}}
	hdrPollSocket  = [][2]string{{"Content-Type", "text/plain"}, {"Connection", "Close"}}
)

func (g *gen) postHeader(n int) [][2]string {
	switch g.o.Backend {
	case BackendSocket:
		return hdrPostSocket
	case BackendCurl:
		if n > 1024 {
			return hdrPostCurlBig
		}
	}
	return hdrPostWinINet
}

func (g *gen) pollHeader() [][2]string {
	if g.o.Backend == BackendSocket {
		return hdrPollSocket
	}
	return hdrPollWinINet
}

func (g *gen) run() {
	dur := g.o.Duration.Seconds()
	oStart, oEnd := math.Inf(1), math.Inf(1)
	if g.o.Outage {
		oStart, oEnd = g.o.OutageAt.Seconds(), (g.o.OutageAt + g.o.OutageFor).Seconds()
	}
	g.overflowAt = dur * (0.15 + 0.35*g.rng.Float64())
	var pollAcc, sampleAcc float64
	g.lastHB = math.Inf(-1)
	g.lastFlush = g.love0
	recovered := false
	for t, first := 0.0, true; t < dur; first = false {
		var dt float64
		if !first {
			dt = (1 + (g.rng.Float64()-0.5)*0.06) / genFPS
			t += dt
			if t >= dur {
				break
			}
		}
		love := g.love0 + t*1000
		wall := g.start + int64(t*1e9)
		down := t >= oStart && t < oEnd
		g.reqAt = wall

		if g.o.Outage && !down && t >= oEnd && !recovered {
			recovered = true
			g.flushBuffer(wall)
		}
		if love-g.lastHB > heartbeatMs {
			g.lastHB = love
			g.heartbeat(love, wall)
		}
		sampleAcc += dt
		if sampleAcc >= sampleSec {
			sampleAcc = 0
			g.sample(t, love, wall)
		}
		if len(g.queue) > 0 && love-g.lastFlush >= flushMs {
			g.lastFlush = love
			g.flush(wall, down)
		}
		pollAcc += dt
		if pollAcc >= pollSec {
			pollAcc = 0
			if !down {
				g.emit(Record{Method: "GET", Path: PathPoll, Header: g.pollHeader()})
			}
		}
	}
}

// emit appends a request at the frame's next request time.
func (g *gen) emit(r Record) {
	if g.o.KeyOrder == KeyOrderHash && len(r.Body) > 0 {
		b, err := hashOrder(r.Body, g.o.Seed)
		if err != nil && g.err == nil {
			g.err = fmt.Errorf("loadtest: BUG: cannot reorder a generated body: %w", err)
		}
		r.Body = b
	}
	r.At = g.reqAt
	g.reqAt += reqSpacingNs
	g.recs = append(g.recs, r)
}

// enqueue adds events to the aggregator queue, dropping the 10 oldest
// whenever it holds 100.
func (g *gen) enqueue(evs ...*genEvent) {
	for _, e := range evs {
		if len(g.queue) >= queueCap {
			g.queue = append(g.queue[:0], g.queue[10:]...)
		}
		g.queue = append(g.queue, e)
	}
}

// collapse keeps the latest GAME_STATE only (frame_count is always 0) and
// sorts by timestamp, as the aggregator does.
func collapse(evs []*genEvent) []*genEvent {
	last := -1
	for i, e := range evs {
		if e.isState {
			last = i
		}
	}
	out := make([]*genEvent, 0, len(evs))
	for i, e := range evs {
		if !e.isState || i == last {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b *genEvent) int {
		switch {
		case a.ts < b.ts:
			return -1
		case a.ts > b.ts:
			return 1
		}
		return 0
	})
	return out
}

func (g *gen) flush(wall int64, down bool) {
	n := min(len(g.queue), maxBatchEvents)
	batch := collapse(g.queue[:n])
	rest := g.queue[n:]
	if down {
		// send_batch copies the events into the local buffer and fails;
		// the aggregator puts them back at the front of its queue.
		for _, e := range batch {
			if len(g.buffer) >= localBufferCap {
				g.buffer = append(g.buffer[:0], g.buffer[1:]...)
			}
			g.buffer = append(g.buffer, e)
		}
		g.queue = append(batch, rest...)
		return
	}
	if !g.connTested {
		g.connTested = true
		body := strconv.AppendInt([]byte(connectionTestB), wall/1e9*1000, 10)
		body = append(body, '}')
		g.emit(Record{Method: "POST", Path: PathEvent, Header: g.postHeader(len(body)), Body: body})
	}
	g.emitBatch(wall, batch)
	g.queue = append(g.queue[:0], rest...)
}

// flushBuffer sends the whole local buffer in chunks of 10, in one frame.
func (g *gen) flushBuffer(wall int64) {
	for i := 0; i < len(g.buffer); i += bufferChunk {
		g.emitBatch(wall, g.buffer[i:min(i+bufferChunk, len(g.buffer))])
		g.reqAt += burstSpacingNs - reqSpacingNs
	}
	g.buffer = nil
}

func (g *gen) emitBatch(wall int64, evs []*genEvent) {
	size := 110
	for _, e := range evs {
		size += len(e.raw) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"source":"BalatroMCP","timestamp":`...)
	b = strconv.AppendInt(b, wall/1e9*1000, 10)
	b = append(b, `,"batch_id":"`...)
	b = append(b, newUUID(g.rng)...)
	b = append(b, `","events":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.raw...)
	}
	b = append(b, "]}"...)
	g.emit(Record{Method: "POST", Path: PathBatch, Header: g.postHeader(len(b)), Body: b})
}

// heartbeat queues a HEARTBEAT and a GAME_STATE marked debug (the first
// one marked initial, with changes {}).
func (g *gen) heartbeat(love float64, wall int64) {
	ts := love + g.rng.Float64()*0.03
	b := []byte(`{"type":"HEARTBEAT","version":1,"source":"BalatroMCP","payload":{"version":"` + sdkVersion + `","game_state":"`)
	b = strconv.AppendInt(b, int64(g.g.phase.state), 10)
	b = append(b, `","uptime":`...)
	b = appendLuaNum(b, love-0.0213)
	b = append(b, `,"headless":false},"event_id":"`...)
	b = append(b, newUUID(g.rng)...)
	b = append(b, `","timestamp":`...)
	b = appendLuaNum(b, ts)
	b = append(b, '}')
	hb := &genEvent{ts: ts, raw: b}
	extra := `"debug":true,`
	if !g.firstState {
		g.firstState = true
		extra = `"initial":true,`
		g.prev = g.g.snapshot()
	}
	g.enqueue(hb, g.gameState(ts+eventSpacingMs, wall, extra, nil))
}

// sample is the 500 ms change detector: maybe advance the game, then emit
// one event per watched field that changed and a GAME_STATE with them.
func (g *gen) sample(t, love float64, wall int64) {
	if g.rng.Float64() < g.o.Activity {
		g.g.step(g.rng, t >= g.overflowAt)
	}
	cur := g.g.snapshot()
	changes := g.changeEvents(g.prev, cur, love)
	g.prev = cur
	if len(changes) == 0 {
		return
	}
	ts := changes[len(changes)-1].ts + eventSpacingMs
	g.enqueue(changes...)
	g.enqueue(g.gameState(ts, wall, "", changes))
}

func (g *gen) changeEvent(typ string, ts float64, payload []byte) *genEvent {
	b := make([]byte, 0, 96+len(payload))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","version":1,"source":"BalatroMCP","payload":`...)
	b = append(b, payload...)
	b = append(b, `,"event_id":"`...)
	b = append(b, newUUID(g.rng)...)
	b = append(b, `","timestamp":`...)
	b = appendLuaNum(b, ts)
	b = append(b, '}')
	return &genEvent{ts: ts, raw: b}
}

// changeEvents compares two samples in the detector's order: money,
// chips/mult, hands, discards, joker count, ante/round, phase.
func (g *gen) changeEvents(a, b snapshot, love float64) []*genEvent {
	var out []*genEvent
	ts := love
	next := func() float64 {
		ts += eventSpacingMs + g.rng.Float64()*1e-5
		return ts
	}
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	var p []byte
	if !eq(a.money, b.money) {
		p = append(p[:0], `{"difference":`...)
		p = appendLuaNum(p, b.money-a.money)
		p = append(p, `,"old_value":`...)
		p = appendLuaNum(p, a.money)
		p = append(p, `,"new_value":`...)
		p = appendLuaNum(p, b.money)
		out = append(out, g.changeEvent("MONEY_CHANGED", next(), append(p, '}')))
	}
	if !eq(a.chips, b.chips) {
		p = append(p[:0], `{"new_chips":`...)
		p = appendLuaNum(p, b.chips)
		p = append(p, `,"old_mult":0,"new_mult":0,"old_chips":`...)
		p = appendLuaNum(p, a.chips)
		out = append(out, g.changeEvent("SCORE_CHANGED", next(), append(p, '}')))
	}
	if a.hands != b.hands {
		p = append(p[:0], `{"hand_number":`...)
		p = strconv.AppendInt(p, int64(b.handNumber), 10)
		p = append(p, `,"hands_remaining":`...)
		p = strconv.AppendInt(p, int64(b.hands), 10)
		out = append(out, g.changeEvent("HAND_PLAYED", next(), append(p, '}')))
	}
	if a.discards != b.discards {
		p = append(p[:0], `{"discards_remaining":`...)
		p = strconv.AppendInt(p, int64(b.discards), 10)
		out = append(out, g.changeEvent("CARDS_DISCARDED", next(), append(p, '}')))
	}
	if a.jokers != b.jokers {
		p = append(p[:0], `{"jokers":`...)
		p = g.g.appendJokers(p)
		p = append(p, `,"old_count":`...)
		p = strconv.AppendInt(p, int64(a.jokers), 10)
		p = append(p, `,"new_count":`...)
		p = strconv.AppendInt(p, int64(b.jokers), 10)
		out = append(out, g.changeEvent("JOKERS_CHANGED", next(), append(p, '}')))
	}
	if a.ante != b.ante || a.round != b.round {
		p = append(p[:0], `{"ante":`...)
		p = strconv.AppendInt(p, int64(b.ante), 10)
		p = append(p, `,"round":`...)
		p = strconv.AppendInt(p, int64(b.round), 10)
		out = append(out, g.changeEvent("ROUND_CHANGED", next(), append(p, '}')))
	}
	if a.phase != b.phase {
		p = append(p[:0], `{"old_phase":`...)
		p = appendLuaStr(p, a.phase)
		p = append(p, `,"new_phase":`...)
		p = appendLuaStr(p, b.phase)
		out = append(out, g.changeEvent("PHASE_CHANGED", next(), append(p, '}')))
	}
	return out
}

// gameState encodes a GAME_STATE event; extra is "" or a `"key":value,`
// marker (debug, initial); changes are nested (changes {} when initial).
func (g *gen) gameState(ts float64, wall int64, extra string, changes []*genEvent) *genEvent {
	b := make([]byte, 0, 10<<10)
	b = append(b, `{"type":"GAME_STATE",`...)
	b = append(b, extra...)
	b = append(b, `"version":1,`...)
	switch {
	case extra == `"initial":true,`:
		b = append(b, `"changes":{},`...)
	case len(changes) > 0:
		b = append(b, `"changes":[`...)
		for i, c := range changes {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, c.raw...)
		}
		b = append(b, `],`...)
	}
	b = append(b, `"source":"BalatroMCP","payload":`...)
	b = g.g.appendPayload(b, wall/1e9)
	b = append(b, `,"event_id":"`...)
	b = append(b, newUUID(g.rng)...)
	b = append(b, `","timestamp":`...)
	b = appendLuaNum(b, ts)
	b = append(b, '}')
	return &genEvent{ts: ts, isState: true, raw: b}
}
