package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// probeSource is the source of the probe event Replay sends before it starts.
const probeSource = "jimbus-loadtest"

// openSubscription dials addr and subscribes to every topic (">") with
// the payload view view; the stream's messages are read raw (eachEvent).
func openSubscription(ctx context.Context, addr, id string, view jimbotpb.PayloadView) (*grpc.ClientConn, *rawStream, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot dial gRPC %s: %w", addr, err)
	}
	// Wait for the connection first so that a missing bus fails here,
	// with a clear error, rather than as a dead stream later.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(dctx, st) {
			conn.Close()
			return nil, nil, fmt.Errorf("cannot connect to gRPC %s within 5s (state %v)", addr, st)
		}
	}
	stream, err := openRaw(ctx, conn,
		&jimbotpb.SubscribeRequest{TopicPatterns: []string{">"}, SubscriberId: id, PayloadView: view})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("cannot subscribe to %s: %w", addr, err)
	}
	return conn, stream, nil
}

// subscribe receives every event until ctx ends, accounting for the
// replay's own. It reports on ready once the stream is open (or failed).
func (r *runner) subscribe(ctx context.Context, ready chan<- error) error {
	conn, stream, err := openSubscription(ctx, r.o.GRPC, "loadtest-replay", r.o.PayloadView)
	ready <- err
	if err != nil {
		return nil
	}
	defer conn.Close()
	var (
		msg rawBatch
		ev  jimbotpb.Event
		now int64
	)
	on := func(ev *jimbotpb.Event) { r.onEvent(ev, now) }
	for {
		err := stream.Recv(&msg)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				if ctx.Err() == nil {
					return errors.New("subscription ended by the bus before the replay did")
				}
				return nil
			}
			return fmt.Errorf("subscription failed: %w", err)
		}
		now = time.Now().UnixNano()
		r.lastDelivery.Store(now)
		if _, err := eachEvent(msg.b, &ev, on); err != nil {
			return fmt.Errorf("subscription: %w", err)
		}
	}
}

func (r *runner) onEvent(ev *jimbotpb.Event, now int64) {
	if ev.Topic == "system.deadletter" {
		r.deadletter.Add(1)
	}
	if k, ok := parseUUIDKey(ev.EventId); ok && r.tr.deliver(k) {
		r.delivered.Add(1)
		if ev.ReceivedAtNs > 0 {
			r.delivLat.Record(now - ev.ReceivedAtNs)
		}
		return
	}
	if ev.Source == probeSource {
		if p := r.probeID.Load(); p != nil && *p == ev.EventId {
			r.probeOnce.Do(func() { close(r.probeSeen) })
		}
		return
	}
	if ev.TypeName == "connection_test" && ev.Source == "BalatroMCP" {
		r.noIDDelivered.Add(1)
		r.delivered.Add(1)
		if ev.ReceivedAtNs > 0 {
			r.delivLat.Record(now - ev.ReceivedAtNs)
		}
		return
	}
	r.foreign.Add(1)
}

// probe posts a probe event (source jimbus-loadtest, a fresh id each try)
// until the subscription sees one, for up to wait.
func (r *runner) probe(ctx context.Context, base string, wait time.Duration) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	deadline := time.Now().Add(wait)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var lastErr error
	for time.Now().Before(deadline) {
		id := newUUID(rng)
		r.probeID.Store(&id)
		body := []byte(`{"type":"HEARTBEAT","source":"` + probeSource + `","version":1,"event_id":"` + id +
			`","timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"payload":{"probe":true}}`)
		req.Reset()
		req.SetRequestURI(base + PathEvent)
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
		lastErr = r.hc.DoDeadline(req, resp, time.Now().Add(time.Second))
		if lastErr == nil && resp.StatusCode()/100 != 2 {
			lastErr = fmt.Errorf("status %d", resp.StatusCode())
		}
		select {
		case <-r.probeSeen:
			return nil
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if lastErr != nil {
		return fmt.Errorf("probe event not delivered within %v (last POST: %v); delivery figures may count early events as lost", wait, lastErr)
	}
	return fmt.Errorf("probe event not delivered within %v; delivery figures may count early events as lost", wait)
}
