package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// SyntheticBatch returns a batch body of n events in BalatroMCP's shapes
// that carry no event_id: the bus assigns one to each, so the same body can
// be posted again and again without being deduplicated. Of every five
// events two are JOKERS_CHANGED with 6 jokers (about 990 bytes), one
// SCORE_CHANGED, one MONEY_CHANGED and one HEARTBEAT, HAND_PLAYED or
// PHASE_CHANGED in turn: about 510 bytes an event, so 50 events make about
// 25 KB, the reference batch.
func SyntheticBatch(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	gm := &game{nextID: 200}
	for range 6 {
		gm.jokers = append(gm.jokers, gm.newJoker(rng))
	}
	b := []byte(`{"source":"BalatroMCP","timestamp":1751439161000,"batch_id":"` + newUUID(rng) + `","events":[`)
	ts := 248379.3748
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		ts += 17.0213
		b = append(b, `{"type":"`...)
		var p []byte
		switch i % 5 {
		case 0, 2:
			b = append(b, "JOKERS_CHANGED"...)
			p = append(gm.appendJokers(append(p, `{"jokers":`...)), `,"old_count":5,"new_count":6}`...)
		case 1:
			b = append(b, "SCORE_CHANGED"...)
			p = append(strconv.AppendInt(append(p, `{"new_chips":`...), int64(i*37), 10), `,"old_mult":0,"new_mult":0,"old_chips":0}`...)
		case 3:
			b = append(b, "MONEY_CHANGED"...)
			p = append(strconv.AppendInt(append(p, `{"difference":4,"old_value":10,"new_value":`...), int64(14+i), 10), '}')
		default:
			switch (i / 5) % 3 {
			case 0:
				b = append(b, "HEARTBEAT"...)
				p = append(appendLuaNum(append(p, `{"version":"0.1.0","game_state":"1","uptime":`...), ts-0.0213), `,"headless":false}`...)
			case 1:
				b = append(b, "HAND_PLAYED"...)
				p = append(p, `{"hand_number":1,"hands_remaining":3}`...)
			default:
				b = append(b, "PHASE_CHANGED"...)
				p = append(p, `{"old_phase":"UNKNOWN_STATE_1","new_phase":"UNKNOWN_STATE_2"}`...)
			}
		}
		b = append(b, `","version":1,"source":"BalatroMCP","payload":`...)
		b = append(b, p...)
		b = append(b, `,"timestamp":`...)
		b = appendLuaNum(b, ts)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// HTTPOptions configures LoadHTTP. The zero value of every field but Body
// works; every field documents its default.
type HTTPOptions struct {
	// URL is where Body is posted. Default
	// "http://127.0.0.1:8080/api/v1/events/batch".
	URL string
	// Method is the HTTP method. Default "POST".
	Method string
	// Body is posted as is, every time. Required. Events with an event_id
	// are deduplicated by the bus after the first post; use bodies without
	// (SyntheticBatch) for ceiling figures.
	Body []byte
	// Header is sent with every request. Default Content-Type
	// application/json and User-Agent BalatroMCP/1.0.
	Header [][2]string
	// Conns is the number of keep-alive connections, each driven by one
	// goroutine that posts again as soon as an answer arrives. Default 16.
	Conns int
	// Duration bounds the run. Default 10s.
	Duration time.Duration
	// RequestTimeout bounds one request. Default 5s.
	RequestTimeout time.Duration
	// GRPC, when set, is subscribed to (">") and every event delivered
	// during the run is counted.
	GRPC string
	// AllowRemote permits a URL or GRPC that is not loopback.
	AllowRemote bool
	// PayloadView is the subscription's payload view (UNSPECIFIED: the
	// bus's default). With PAYLOAD_VIEW_JSON, and no other subscriber
	// wanting them, the bus builds no typed views.
	PayloadView jimbotpb.PayloadView
	// Progress receives a progress line every second. nil: none.
	Progress io.Writer
}

// HTTPReport is the outcome of LoadHTTP.
type HTTPReport struct {
	URL             string            `json:"url"`
	Conns           int               `json:"conns"`
	BodyBytes       int               `json:"body_bytes"`
	EventsPerReq    int               `json:"events_per_request"`
	DurationS       float64           `json:"duration_s"`
	Requests        uint64            `json:"requests"`
	RequestsPerSec  float64           `json:"requests_per_s"`
	EventsPerSec    float64           `json:"events_per_s"`
	MBytesPerSec    float64           `json:"mbytes_per_s"`
	Status          map[string]uint64 `json:"status"`
	TransportErrors uint64            `json:"transport_errors"`
	FirstError      string            `json:"first_error,omitempty"`
	Latency         Latency           `json:"latency"`
	// Delivered counts events the subscription received (with GRPC).
	Delivered       uint64  `json:"delivered,omitempty"`
	DeliveredPerSec float64 `json:"delivered_per_s,omitempty"`
}

// LoadHTTP posts one body at the highest rate Conns connections allow, for
// Duration, and reports requests/s, events/s and latency.
func LoadHTTP(ctx context.Context, opts HTTPOptions) (*HTTPReport, error) {
	o := opts
	if o.URL == "" {
		o.URL = "http://127.0.0.1:8080" + PathBatch
	}
	if o.Method == "" {
		o.Method = "POST"
	}
	if len(o.Body) == 0 && o.Method == "POST" {
		return nil, errors.New("loadtest: HTTPOptions.Body is empty")
	}
	if o.Header == nil {
		o.Header = hdrPostWinINet
	}
	if o.Conns == 0 {
		o.Conns = 16
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Conns < 0 || o.Duration < 0 {
		return nil, errors.New("loadtest: Conns and Duration must not be negative")
	}
	tgt, err := parseHTTPTarget(o.URL, o.AllowRemote)
	if err != nil {
		return nil, err
	}
	if o.GRPC != "" {
		if err := checkGRPCAddr(o.GRPC, o.AllowRemote); err != nil {
			return nil, err
		}
	}
	path := tgt.path
	if path == "" {
		path = "/"
	}
	events := ScanEvents(KindOf(o.Method, path), o.Body).Events

	hc := &fasthttp.HostClient{
		Addr:                     tgt.addr,
		MaxConns:                 o.Conns,
		MaxConnWaitTimeout:       o.RequestTimeout,
		ReadTimeout:              o.RequestTimeout,
		WriteTimeout:             o.RequestTimeout,
		MaxIdleConnDuration:      2 * time.Second,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		MaxResponseBodySize:      1 << 20,
		Dial:                     dialTCP,
	}
	defer hc.CloseIdleConnections()

	var delivered atomic.Uint64
	subCtx, subCancel := context.WithCancel(ctx)
	defer subCancel()
	var subWG sync.WaitGroup
	if o.GRPC != "" {
		conn, stream, err := openSubscription(subCtx, o.GRPC, "loadtest-http", o.PayloadView)
		if err != nil {
			return nil, err
		}
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			defer conn.Close()
			var msg rawBatch
			var ev jimbotpb.Event
			for {
				if stream.Recv(&msg) != nil {
					return
				}
				n, _ := eachEvent(msg.b, &ev, nil)
				delivered.Add(uint64(n))
			}
		}()
	}

	var (
		lat           Histogram
		reqs, errs    atomic.Uint64
		status        [600]atomic.Uint64
		firstErr      atomic.Pointer[string]
		wg            sync.WaitGroup
		t0            = time.Now()
		end           = t0.Add(o.Duration)
		uri           = tgt.base + path
		progStop      = make(chan struct{})
		progWG        sync.WaitGroup
		runCtx, rstop = context.WithDeadline(ctx, end)
	)
	defer rstop()
	if o.Progress != nil {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			var last uint64
			for {
				select {
				case <-progStop:
					return
				case now := <-t.C:
					n := reqs.Load()
					fmt.Fprintf(o.Progress, "[%5.1fs] %8d req/s  %9d ev/s  p50 %s  p99 %s  err %d\n",
						now.Sub(t0).Seconds(), n-last, (n-last)*uint64(events),
						fmtMs(lat.Quantile(0.5)), fmtMs(lat.Quantile(0.99)), errs.Load())
					last = n
				}
			}
		}()
	}
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(uri)
			req.URI().DisablePathNormalizing = true
			req.Header.SetMethod(o.Method)
			setHeaders(req, o.Header)
			if len(o.Body) > 0 {
				req.SetBodyRaw(o.Body)
			}
			for runCtx.Err() == nil {
				start := time.Now()
				deadline := start.Add(o.RequestTimeout)
				if hard := end.Add(o.RequestTimeout); deadline.After(hard) {
					deadline = hard
				}
				err := hc.DoDeadline(req, resp, deadline)
				lat.RecordDuration(time.Since(start))
				reqs.Add(1)
				if err != nil {
					errs.Add(1)
					if firstErr.Load() == nil {
						msg := err.Error()
						firstErr.CompareAndSwap(nil, &msg)
					}
					if errors.Is(err, fasthttp.ErrNoFreeConns) || strings.Contains(err.Error(), "connection refused") {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if c := resp.StatusCode(); c >= 0 && c < len(status) {
					status[c].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0).Seconds()
	if o.GRPC != "" {
		time.Sleep(200 * time.Millisecond) // deliveries still on their way
		subCancel()
		subWG.Wait()
	}
	close(progStop)
	progWG.Wait()

	rep := &HTTPReport{URL: uri, Conns: o.Conns, BodyBytes: len(o.Body), EventsPerReq: events, DurationS: d,
		Requests: reqs.Load(), Status: map[string]uint64{}, TransportErrors: errs.Load(), Latency: lat.Summary()}
	var ok uint64
	for c := range status {
		if n := status[c].Load(); n > 0 {
			rep.Status[strconv.Itoa(c)] = n
			if c >= 200 && c < 300 {
				ok += n
			}
		}
	}
	if e := firstErr.Load(); e != nil {
		rep.FirstError = *e
	}
	if d > 0 {
		rep.RequestsPerSec = float64(rep.Requests) / d
		rep.EventsPerSec = float64(ok*uint64(events)) / d
		rep.MBytesPerSec = float64(rep.Requests) * float64(len(o.Body)) / d / 1e6
	}
	if o.GRPC != "" {
		rep.Delivered = delivered.Load()
		rep.DeliveredPerSec = float64(rep.Delivered) / d
	}
	return rep, nil
}

// WriteTable writes the report as a human-readable table.
func (r *HTTPReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "http\t%s, %d conns, body %d bytes (%d events), %.1fs\n", r.URL, r.Conns, r.BodyBytes, r.EventsPerReq, r.DurationS)
	fmt.Fprintf(tw, "requests\t%d\t%.0f/s\n", r.Requests, r.RequestsPerSec)
	fmt.Fprintf(tw, "events (2xx)\t\t%.0f/s\n", r.EventsPerSec)
	fmt.Fprintf(tw, "bytes\t\t%.1f MB/s\n", r.MBytesPerSec)
	fmt.Fprintf(tw, "HTTP status\t%s\n", fmtStatus(r.Status))
	fmt.Fprintf(tw, "transport errors\t%d\t\t%s\n", r.TransportErrors, r.FirstError)
	fmt.Fprintf(tw, "latency ms\t%s\n", fmtLatency(r.Latency, true))
	if r.Delivered > 0 {
		fmt.Fprintf(tw, "delivered\t%d\t%.0f/s\n", r.Delivered, r.DeliveredPerSec)
	}
	return tw.Flush()
}
