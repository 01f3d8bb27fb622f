package loadtest

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	)
}

// fakeBus is a minimal real bus for the replay tests: a fasthttp server that
// decodes BalatroMCP bodies with encoding/json (after turning nan/inf into
// null), drops resends by (source, event_id, timestamp) as JimBus does, and a
// gRPC EventBus whose Subscribe streams back every accepted event, stamped
// with its receive time. Faults can be injected to check the accounting.
type fakeBus struct {
	// Faults, set before start: drop every dropEvery-th accepted event
	// that has an event_id (never delivered), deliver every dupEvery-th
	// twice, answer every request after delay.
	dropEvery, dupEvery int
	delay               time.Duration

	httpAddr, grpcAddr string
	srv                *fasthttp.Server
	gs                 *grpc.Server
	wg                 sync.WaitGroup

	mu        sync.Mutex
	seen      map[string]bool
	subs      map[chan []*jimbotpb.Event]bool
	nextID    int
	accepted  int // distinct events accepted (after dedup), probe excluded
	resends   int // events dropped as resends
	eventsIn  int // events in bodies, probe excluded
	requests  int // requests, probe excluded
	dropped   int
	duped     int
	noID      int
	headers   map[string]int // "Name: value" of interest, counted
	badBodies int

	jimbotpb.UnimplementedEventBusServer
}

func startFakeBus(t *testing.T, fb *fakeBus) *fakeBus {
	t.Helper()
	fb.seen = map[string]bool{}
	fb.subs = map[chan []*jimbotpb.Event]bool{}
	fb.headers = map[string]int{}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fb.httpAddr, fb.grpcAddr = hl.Addr().String(), gl.Addr().String()
	fb.srv = &fasthttp.Server{Handler: fb.handle, MaxRequestBodySize: 4 << 20, MaxIdleWorkerDuration: 50 * time.Millisecond}
	fb.gs = grpc.NewServer()
	jimbotpb.RegisterEventBusServer(fb.gs, fb)
	fb.wg.Add(2)
	go func() { defer fb.wg.Done(); _ = fb.srv.Serve(hl) }()
	go func() { defer fb.wg.Done(); _ = fb.gs.Serve(gl) }()
	t.Cleanup(func() {
		_ = fb.srv.Shutdown()
		_ = hl.Close() // Serve may not have started when Shutdown ran
		fb.gs.Stop()
		fb.wg.Wait()
	})
	return fb
}

type fakeEvent struct {
	Type      string      `json:"type"`
	Source    string      `json:"source"`
	EventID   *string     `json:"event_id"`
	Timestamp json.Number `json:"timestamp"`
}

func (fb *fakeBus) handle(ctx *fasthttp.RequestCtx) {
	if fb.delay > 0 {
		time.Sleep(fb.delay)
	}
	now := time.Now().UnixNano()
	kind := KindOf(string(ctx.Method()), string(ctx.Path()))
	var evs []fakeEvent
	var err error
	switch kind {
	case KindBatch:
		var b struct{ Events []fakeEvent }
		fixed, _ := strictJSON(ctx.PostBody())
		err = json.Unmarshal(fixed, &b)
		evs = b.Events
	case KindSingle:
		var e fakeEvent
		fixed, _ := strictJSON(ctx.PostBody())
		err = json.Unmarshal(fixed, &e)
		evs = []fakeEvent{e}
	}
	probe := len(evs) == 1 && evs[0].Source == probeSource

	fb.mu.Lock()
	if err != nil {
		fb.badBodies++
	}
	if !probe {
		fb.requests++
		fb.eventsIn += len(evs)
		for _, h := range []string{"Connection", "Expect", "User-Agent"} {
			if v := ctx.Request.Header.Peek(h); v != nil {
				fb.headers[h+": "+string(v)]++
			}
		}
	}
	var out []*jimbotpb.Event
	for _, e := range evs {
		pe := &jimbotpb.Event{Source: e.Source, TypeName: e.Type, ReceivedAtNs: now, Topic: "test." + e.Type}
		if e.EventID == nil {
			fb.nextID++
			pe.EventId = fmt.Sprintf("jb-test-%d", fb.nextID)
			if !probe {
				fb.noID++
			}
		} else {
			key := e.Source + "\x00" + *e.EventID + "\x00" + e.Timestamp.String()
			if fb.seen[key] {
				fb.resends++
				continue
			}
			fb.seen[key] = true
			pe.EventId = *e.EventID
		}
		if probe {
			out = append(out, pe)
			continue
		}
		fb.accepted++
		if e.EventID != nil && fb.dropEvery > 0 && fb.accepted%fb.dropEvery == 0 {
			fb.dropped++
			continue
		}
		out = append(out, pe)
		if e.EventID != nil && fb.dupEvery > 0 && fb.accepted%fb.dupEvery == 0 {
			fb.duped++
			out = append(out, pe)
		}
	}
	if len(out) > 0 {
		for ch := range fb.subs {
			ch <- out
		}
	}
	fb.mu.Unlock()
	if kind == KindNone {
		ctx.SetContentType("text/plain")
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}`)
}

// Subscribe streams every accepted event to the subscriber, as one batch
// per request.
func (fb *fakeBus) Subscribe(req *jimbotpb.SubscribeRequest, stream grpc.ServerStreamingServer[jimbotpb.EventBatch]) error {
	ch := make(chan []*jimbotpb.Event, 1<<16)
	fb.mu.Lock()
	fb.subs[ch] = true
	fb.mu.Unlock()
	defer func() {
		fb.mu.Lock()
		delete(fb.subs, ch)
		fb.mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case evs := <-ch:
			if err := stream.Send(&jimbotpb.EventBatch{Events: evs}); err != nil {
				return err
			}
		}
	}
}

func (fb *fakeBus) stats() (requests, eventsIn, accepted, resends, dropped, duped, noID, bad int) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.requests, fb.eventsIn, fb.accepted, fb.resends, fb.dropped, fb.duped, fb.noID, fb.badBodies
}
