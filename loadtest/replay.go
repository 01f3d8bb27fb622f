package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// ReplayOptions configures Replay. The zero value of every field but
// Sessions works; every field documents its default.
type ReplayOptions struct {
	// Target is the bus's HTTP base URL. Default "http://127.0.0.1:8080".
	Target string
	// GRPC is the bus's gRPC address (host:port). Replay subscribes there
	// with the pattern ">" and accounts for every event it sent. Empty:
	// no subscription and no delivery figures.
	GRPC string
	// Sessions are the captures to play (one session each, see Generate
	// and ReadFile); game i plays Sessions[i%len(Sessions)]. Required.
	Sessions [][]Record
	// Games is the number of concurrent simulated games. Default 1.
	Games int
	// Speed plays each session at this many times real time, each game a
	// sequential client that waits for every answer as the mod does (a
	// closed loop; latency is measured from when the request was sent).
	// Default 1. Ignored when Rate is set.
	Speed float64
	// Rate, when positive, plays open-loop at this many requests per
	// second in total: a scheduler issues request k at start+k/Rate to
	// game k%Games (which takes its next request in session order),
	// whether or not earlier answers came back, and latency is measured
	// from that scheduled time, so a slow bus cannot hide behind a
	// waiting client. Session timing is ignored.
	Rate float64
	// Conns bounds the requests in flight in Rate mode (and so the
	// connections). Default max(Games, 64).
	Conns int
	// Duration bounds the sending: no request is sent after it. Default 30s.
	Duration time.Duration
	// Grace is how long after the sending Replay waits for deliveries
	// still on their way; it stops earlier once every event answered ok has
	// been delivered. Default 3s.
	Grace time.Duration
	// Stagger spreads the games' start (Speed mode): game i starts
	// i*Stagger/Games after the first. Default min(5s, Duration/4).
	Stagger time.Duration
	// RequestTimeout bounds one request. Default 5s.
	RequestTimeout time.Duration
	// AllowRemote permits a Target or GRPC that is not loopback.
	AllowRemote bool
	// PayloadView is the subscription's payload view, as HTTPOptions'.
	PayloadView jimbotpb.PayloadView
	// Salt makes this run's rewritten ids differ from other runs' (see
	// RewriteMask). Default: random.
	Salt uint32
	// Progress receives a live progress line every ProgressEvery. nil: none.
	Progress io.Writer
	// ProgressEvery is the progress interval. Default 1s.
	ProgressEvery time.Duration
	// NoProbe skips the probe event that Replay sends, and waits to see
	// delivered, before it starts (so that the subscription is known to be
	// live). Default: probe, for up to 5s.
	NoProbe bool
}

// Report is the outcome of a Replay.
type Report struct {
	Mode     string  `json:"mode"` // "speed" or "rate"
	Games    int     `json:"games"`
	Sessions int     `json:"sessions"`
	Speed    float64 `json:"speed,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	// Seconds spent sending.
	DurationS float64 `json:"duration_s"`

	Requests       uint64  `json:"requests"`
	RequestsPerSec float64 `json:"requests_per_s"`
	// Events in the bodies sent, resends included.
	EventsSent       uint64  `json:"events_sent"`
	EventsSentPerSec float64 `json:"events_sent_per_s"`
	// Distinct events sent (by event_id, plus events without one) and of
	// those, the ones in a request answered 2xx.
	EventsDistinct uint64 `json:"events_distinct"`
	EventsAcked    uint64 `json:"events_acked"`
	// Distinct events of this run delivered to the subscriber.
	EventsDelivered       uint64  `json:"events_delivered"`
	EventsDeliveredPerSec float64 `json:"events_delivered_per_s"`

	// Status counts answers by HTTP status ("200", "503", ...).
	Status map[string]uint64 `json:"status"`
	// TransportErrors counts requests that got no answer.
	TransportErrors uint64 `json:"transport_errors"`
	FirstError      string `json:"first_error,omitempty"`

	HTTPLatency Latency `json:"http_latency"`
	// DeliveryLatency is subscriber receive time - Event.ReceivedAtNs.
	DeliveryLatency Latency `json:"delivery_latency"`

	Subscribed bool `json:"subscribed"`
	// Lost: events answered 2xx but not delivered by the end of Grace
	// (events without event_id count by number).
	Lost uint64 `json:"lost"`
	// Duplicates: deliveries of an event id beyond its first.
	Duplicates uint64 `json:"duplicates"`
	// DeliveredNotAcked: delivered although no request carrying it was
	// answered 2xx.
	DeliveredNotAcked uint64 `json:"delivered_not_acked"`
	// Foreign: delivered events this run did not send.
	Foreign uint64 `json:"foreign"`
	// Deadletter: events delivered on system.deadletter.
	Deadletter   uint64   `json:"deadletter"`
	LostIDs      []string `json:"lost_ids,omitempty"`
	DuplicateIDs []string `json:"duplicate_ids,omitempty"`

	// Backlog: requests scheduled (Rate mode) but not sent by the end.
	Backlog uint64 `json:"backlog"`
	// LateSends: requests sent over 10ms after their time (Speed mode).
	LateSends uint64 `json:"late_sends"`
	// Untracked: events whose event_id is not UUID-shaped (not rewritten,
	// not accounted for delivery).
	Untracked uint64   `json:"untracked"`
	Warnings  []string `json:"warnings,omitempty"`
}

// preq is one request of a session, prepared for replay.
type preq struct {
	at        int64 // ns after the session's first request
	method    string
	url       string
	header    [][2]string
	body      []byte
	uuids     []int // UUIDs to rewrite
	ids       []int // offsets of tracked top-level event ids
	events    int
	noID      int
	untracked int
}

func prepareSession(recs []Record, base string) []preq {
	out := make([]preq, 0, len(recs))
	t0 := recs[0].At
	for _, r := range recs {
		q := preq{at: r.At - t0, method: r.Method, url: base + r.Path, header: r.Header, body: r.Body}
		if q.at < 0 {
			q.at = 0
		}
		q.uuids = UUIDOffsets(r.Body)
		sc := ScanEvents(KindOf(r.Method, r.Path), r.Body)
		q.events, q.noID = sc.Events, sc.NoID
		for _, id := range sc.IDs {
			if id[1] == uuidLen && isUUIDAt(r.Body, id[0]) {
				q.ids = append(q.ids, id[0])
			} else {
				q.untracked++
			}
		}
		out = append(out, q)
	}
	return out
}

type runner struct {
	o        ReplayOptions
	sessions [][]preq
	hc       *fasthttp.HostClient
	tr       *tracker
	t0       time.Time
	hardStop time.Time

	httpLat, delivLat Histogram

	requests, events, errs, untracked  atomic.Uint64
	noIDSent, noIDAcked, noIDDelivered atomic.Uint64
	delivered, foreign, deadletter     atomic.Uint64 // delivered: ours, all deliveries
	late, backlog                      atomic.Uint64
	status                             [600]atomic.Uint64
	lastDelivery                       atomic.Int64
	firstErr                           atomic.Pointer[string]
	probeID                            atomic.Pointer[string]
	probeSeen                          chan struct{}
	probeOnce                          sync.Once
}

// workerState is what one sending goroutine reuses.
type workerState struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	buf  []byte
	keys []idKey
}

func newWorkerState() *workerState {
	return &workerState{req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
}

func (w *workerState) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

// Replay plays opts.Sessions against a running bus and reports what came
// back; see ReplayOptions. It stops by itself after Duration plus Grace (plus
// at most RequestTimeout for requests in flight), or when ctx ends.
func Replay(ctx context.Context, opts ReplayOptions) (*Report, error) {
	o := opts
	if o.Target == "" {
		o.Target = "http://127.0.0.1:8080"
	}
	if len(o.Sessions) == 0 {
		return nil, errors.New("loadtest: no sessions to replay")
	}
	for i, s := range o.Sessions {
		if len(s) == 0 {
			return nil, fmt.Errorf("loadtest: session %d is empty", i)
		}
	}
	if o.Games == 0 {
		o.Games = 1
	}
	if o.Games < 0 || o.Speed < 0 || o.Rate < 0 || o.Duration < 0 || o.Conns < 0 {
		return nil, errors.New("loadtest: Games, Speed, Rate, Duration and Conns must not be negative")
	}
	if o.Speed == 0 {
		o.Speed = 1
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 3 * time.Second
	}
	if o.Stagger == 0 {
		o.Stagger = min(5*time.Second, o.Duration/4)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Conns == 0 {
		o.Conns = max(o.Games, 64)
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
	if o.Salt == 0 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Salt = binary.LittleEndian.Uint32(b[:]) | 1
	}
	tgt, err := parseHTTPTarget(o.Target, o.AllowRemote)
	if err != nil {
		return nil, err
	}
	if tgt.path != "" && tgt.path != "/" {
		return nil, fmt.Errorf("target %q: give the base URL only (the paths come from the capture)", o.Target)
	}
	if o.GRPC != "" {
		if err := checkGRPCAddr(o.GRPC, o.AllowRemote); err != nil {
			return nil, err
		}
	}

	r := &runner{o: o, tr: newTracker(), probeSeen: make(chan struct{})}
	for _, s := range o.Sessions {
		r.sessions = append(r.sessions, prepareSession(s, tgt.base))
	}
	conns := o.Games + 1
	if o.Rate > 0 {
		conns = o.Conns + 1
	}
	r.hc = &fasthttp.HostClient{
		Addr:                     tgt.addr,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       o.RequestTimeout,
		ReadTimeout:              o.RequestTimeout,
		WriteTimeout:             o.RequestTimeout,
		MaxIdleConnDuration:      2 * time.Second,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		MaxResponseBodySize:      1 << 20,
		Dial:                     dialTCP,
	}
	defer r.hc.CloseIdleConnections()

	rep := &Report{Games: o.Games, Sessions: len(o.Sessions), Status: map[string]uint64{}}
	if o.Rate > 0 {
		rep.Mode, rep.Rate = "rate", o.Rate
	} else {
		rep.Mode, rep.Speed = "speed", o.Speed
	}

	subCtx, subCancel := context.WithCancel(ctx)
	defer subCancel()
	var subDone chan error
	if o.GRPC != "" {
		subDone = make(chan error, 1)
		ready := make(chan error, 1)
		go func() { subDone <- r.subscribe(subCtx, ready) }()
		select {
		case err := <-ready:
			if err != nil {
				subCancel()
				<-subDone
				return nil, err
			}
		case <-ctx.Done():
			subCancel()
			<-subDone
			return nil, ctx.Err()
		}
		rep.Subscribed = true
		if !o.NoProbe {
			if err := r.probe(ctx, tgt.base, 5*time.Second); err != nil {
				rep.Warnings = append(rep.Warnings, err.Error())
			}
		}
	}

	r.t0 = time.Now()
	end := r.t0.Add(o.Duration)
	r.hardStop = end.Add(o.RequestTimeout)
	runCtx, runCancel := context.WithDeadline(ctx, end)
	defer runCancel()

	progStop := make(chan struct{})
	var progWG sync.WaitGroup
	if o.Progress != nil {
		progWG.Add(1)
		go func() { defer progWG.Done(); r.progress(progStop) }()
	}

	if o.Rate > 0 {
		_, unsent := openLoop(runCtx, o.Rate, r.t0, end, o.Conns, r.rateJob)
		r.backlog.Add(uint64(unsent))
	} else {
		var wg sync.WaitGroup
		for g := 0; g < o.Games; g++ {
			wg.Add(1)
			go func() { defer wg.Done(); r.playGame(runCtx, g, end) }()
		}
		wg.Wait()
	}
	sendEnd := time.Now()

	if subDone != nil {
		graceEnd := time.NewTimer(o.Grace)
		tick := time.NewTicker(10 * time.Millisecond)
	wait:
		for {
			select {
			case <-graceEnd.C:
				break wait
			case <-ctx.Done():
				break wait
			case err := <-subDone:
				subDone = nil
				if err != nil {
					rep.Warnings = append(rep.Warnings, err.Error())
				}
				break wait
			case <-tick.C:
				if r.tr.complete() && r.noIDDelivered.Load() >= r.noIDAcked.Load() {
					break wait
				}
			}
		}
		graceEnd.Stop()
		tick.Stop()
		subCancel()
		if subDone != nil {
			if err := <-subDone; err != nil {
				rep.Warnings = append(rep.Warnings, err.Error())
			}
		}
	}
	close(progStop)
	progWG.Wait()

	r.fill(rep, sendEnd)
	return rep, nil
}

// rateJob sends the k-th request of an open-loop run: game k%Games, its
// k/Games-th request in session order (sessions loop, each loop a new lane).
func (r *runner) rateJob(ws *workerState, k int64, sched time.Time) {
	games := int64(r.o.Games)
	g := int(k % games)
	n := k / games
	s := r.sessions[g%len(r.sessions)]
	loop := int(n / int64(len(s)))
	q := &s[n%int64(len(s))]
	r.do(ws, q, g+loop*r.o.Games, sched)
}

// playGame replays game g's session at Speed, looping, until end.
func (r *runner) playGame(ctx context.Context, g int, end time.Time) {
	ws := newWorkerState()
	defer ws.release()
	s := r.sessions[g%len(r.sessions)]
	speed := r.o.Speed
	base := r.t0.Add(time.Duration(int64(r.o.Stagger) * int64(g) / int64(r.o.Games)))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for loop := 0; ; loop++ {
		lane := g + loop*r.o.Games
		for i := range s {
			q := &s[i]
			sched := base.Add(time.Duration(float64(q.at) / speed))
			if !sched.Before(end) {
				return
			}
			if d := time.Until(sched); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			now := time.Now()
			if now.Sub(sched) > 10*time.Millisecond {
				r.late.Add(1)
			}
			r.do(ws, q, lane, now)
			if ctx.Err() != nil {
				return
			}
		}
		// The next loop starts a second (of session time) after the last
		// request of this one.
		base = base.Add(time.Duration(float64(s[len(s)-1].at+int64(time.Second)) / speed))
	}
}

// do sends one request of game lane lane and accounts for it; latency is
// measured from from.
func (r *runner) do(ws *workerState, q *preq, lane int, from time.Time) {
	ws.buf = append(ws.buf[:0], q.body...)
	RewriteIDs(ws.buf, q.uuids, RewriteMask(r.o.Salt, lane))
	ws.keys = ws.keys[:0]
	for _, off := range q.ids {
		k, _ := parseUUIDKey(ws.buf[off : off+uuidLen])
		ws.keys = append(ws.keys, k)
	}
	if len(ws.keys) > 0 {
		r.tr.sent(ws.keys)
	}
	r.noIDSent.Add(uint64(q.noID))
	r.untracked.Add(uint64(q.untracked))

	req, resp := ws.req, ws.resp
	req.Reset()
	resp.Reset()
	req.SetRequestURI(q.url)
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(q.method)
	setHeaders(req, q.header)
	if len(ws.buf) > 0 {
		req.SetBodyRaw(ws.buf)
	}
	deadline := time.Now().Add(r.o.RequestTimeout)
	if !r.hardStop.IsZero() && deadline.After(r.hardStop) {
		deadline = r.hardStop
	}
	err := r.hc.DoDeadline(req, resp, deadline)
	r.httpLat.RecordDuration(time.Since(from))
	r.requests.Add(1)
	r.events.Add(uint64(q.events))
	if err != nil {
		r.errs.Add(1)
		if r.firstErr.Load() == nil {
			msg := err.Error()
			r.firstErr.CompareAndSwap(nil, &msg)
		}
		return
	}
	code := resp.StatusCode()
	if code >= 0 && code < len(r.status) {
		r.status[code].Add(1)
	}
	if code >= 200 && code < 300 {
		if len(ws.keys) > 0 {
			r.tr.ack(ws.keys)
		}
		r.noIDAcked.Add(uint64(q.noID))
	}
}

// setHeaders applies captured headers to a fasthttp request.
func setHeaders(req *fasthttp.Request, hdr [][2]string) {
	for _, h := range hdr {
		switch {
		case strings.EqualFold(h[0], "Content-Type"):
			req.Header.SetContentType(h[1])
		case strings.EqualFold(h[0], "User-Agent"):
			req.Header.SetUserAgent(h[1])
		case strings.EqualFold(h[0], "Connection"):
			if strings.EqualFold(h[1], "close") {
				req.SetConnectionClose()
			}
		default:
			req.Header.Set(h[0], h[1])
		}
	}
}

// progress writes one line per ProgressEvery until stop closes.
func (r *runner) progress(stop <-chan struct{}) {
	t := time.NewTicker(r.o.ProgressEvery)
	defer t.Stop()
	var lastReq, lastEv, lastDel uint64
	last := r.t0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			req, ev, del := r.requests.Load(), r.events.Load(), r.delivered.Load()
			dt := now.Sub(last).Seconds()
			var ok, bad uint64
			for c := range r.status {
				if n := r.status[c].Load(); n > 0 {
					if c >= 200 && c < 300 {
						ok += n
					} else {
						bad += n
					}
				}
			}
			fmt.Fprintf(r.o.Progress, "[%5.1fs] %7.0f req/s  %8.0f ev/s sent  %8.0f ev/s delivered  http p50 %s p99 %s  deliv p99 %s  2xx %d other %d err %d\n",
				now.Sub(r.t0).Seconds(), float64(req-lastReq)/dt, float64(ev-lastEv)/dt, float64(del-lastDel)/dt,
				fmtMs(r.httpLat.Quantile(0.5)), fmtMs(r.httpLat.Quantile(0.99)), fmtMs(r.delivLat.Quantile(0.99)), ok, bad, r.errs.Load())
			lastReq, lastEv, lastDel, last = req, ev, del, now
		}
	}
}

func fmtMs(ns int64) string { return fmt.Sprintf("%.2fms", float64(ns)/1e6) }

func (r *runner) fill(rep *Report, sendEnd time.Time) {
	d := sendEnd.Sub(r.t0).Seconds()
	rep.DurationS = d
	rep.Requests = r.requests.Load()
	rep.EventsSent = r.events.Load()
	if d > 0 {
		rep.RequestsPerSec = float64(rep.Requests) / d
		rep.EventsSentPerSec = float64(rep.EventsSent) / d
	}
	for c := range r.status {
		if n := r.status[c].Load(); n > 0 {
			rep.Status[fmt.Sprint(c)] = n
		}
	}
	rep.TransportErrors = r.errs.Load()
	if e := r.firstErr.Load(); e != nil {
		rep.FirstError = *e
	}
	rep.HTTPLatency = r.httpLat.Summary()
	rep.DeliveryLatency = r.delivLat.Summary()
	rep.Backlog = r.backlog.Load()
	rep.LateSends = r.late.Load()
	rep.Untracked = r.untracked.Load()

	tt := r.tr.totals(20)
	rep.EventsDistinct = tt.distinct + r.noIDSent.Load()
	rep.EventsAcked = tt.acked + r.noIDAcked.Load()
	if !rep.Subscribed {
		return
	}
	noIDDel := min(r.noIDDelivered.Load(), r.noIDAcked.Load())
	rep.EventsDelivered = tt.delivered + noIDDel
	if last := r.lastDelivery.Load(); last > 0 {
		span := max(d, float64(last-r.t0.UnixNano())/1e9)
		if span > 0 {
			rep.EventsDeliveredPerSec = float64(rep.EventsDelivered) / span
		}
	}
	rep.Lost = tt.lost + (r.noIDAcked.Load() - noIDDel)
	rep.Duplicates = tt.duplicates
	rep.DeliveredNotAcked = tt.notAcked
	rep.Foreign = r.foreign.Load()
	rep.Deadletter = r.deadletter.Load()
	rep.LostIDs = tt.lostIDs
	rep.DuplicateIDs = tt.dupIDs
}
