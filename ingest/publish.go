package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/ingest/decode"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// dedupNow is the clock of the resend window: monotonic ns since New (wall
// clock steps do not shorten the window).
func (s *Server) dedupNow(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// ingest removes resends from res.Batch and publishes what is left. It
// consumes the caller's reference to res.Batch whatever happens; res stays
// the caller's. On a publish error the keys this request marked are
// unmarked, so that the client's retry is delivered. It returns the number
// of resends removed.
func (s *Server) ingest(ctx context.Context, hint uint32, res *decode.Result, now int64, accepted prometheus.Counter) (int, error) {
	b := res.Batch
	dups := 0
	if s.dd != nil {
		dups = s.removeResends(res, now)
	}
	n := b.Len()
	if n == 0 {
		b.Release()
		if dups > 0 {
			s.m.deduplicated.Add(float64(dups))
		}
		return dups, nil
	}
	// Read what is counted about the events now: once published, the batch
	// is the fan-out's and may be recycled at any moment.
	var repaired [len(repairKinds)]int
	if res.Repairs != 0 {
		for _, ev := range b.Events {
			r := ev.GetRepairs()
			for i, k := range repairKinds {
				if r&k.bit != 0 {
					repaired[i]++
				}
			}
		}
	}
	if err := s.publish(ctx, hint, b); err != nil {
		b.Release()
		if s.dd != nil {
			for _, k := range res.Keys[:min(n, len(res.Keys))] {
				if k != 0 {
					s.dd.forget(k, now)
				}
			}
		}
		if errors.Is(err, route.ErrFull) {
			s.m.publishFull.Inc()
		}
		return dups, err
	}
	if dups > 0 {
		s.m.deduplicated.Add(float64(dups))
	}
	if a := res.Accepted - dups; a > 0 {
		accepted.Add(float64(a))
	}
	for i := range res.Errors {
		s.m.rejected[reasonClass(res.Errors[i].Reason)].Inc()
	}
	if res.Fatal != "" && len(res.Errors) == 0 {
		s.m.rejected[reasonClass(res.Fatal)].Inc()
	}
	for i, c := range repaired {
		if c > 0 {
			s.m.repairedEvents[i].Add(float64(c))
		}
	}
	if res.RepairCount > 0 {
		s.m.repairs.Add(float64(res.RepairCount))
	}
	return dups, nil
}

// removeResends checks and marks the key of every keyed event and removes
// the duplicates from the batch, keeping the order of the others; res.Keys
// is compacted alongside. The removed events are moved behind the new end of
// the batch's slices (still in their backing arrays).
func (s *Server) removeResends(res *decode.Result, now int64) int {
	b, keys := res.Batch, res.Keys
	evs, topics := b.Events, b.Topics
	if len(keys) < len(evs) {
		panic("BUG: ingest: decoder returned fewer keys than events")
	}
	// The decoder started loading each key's bucket as it read the event
	// (decode.Options.KeyHint: dedup.prefetchKey).
	n := 0
	var dup [seenBatchMax]bool
	for off := 0; off < len(evs); off += seenBatchMax {
		// Checked before the loop below moves anything: it moves only
		// events before i.
		end := min(off+seenBatchMax, len(evs))
		s.dd.seenBatch(keys[off:end], now, &dup)
		for i := off; i < end; i++ {
			if dup[i-off] {
				continue
			}
			if i != n {
				evs[n], evs[i] = evs[i], evs[n]
				topics[n], topics[i] = topics[i], topics[n]
				keys[n], keys[i] = keys[i], keys[n]
			}
			n++
		}
	}
	dups := len(evs) - n
	if dups > 0 {
		b.Events, b.Topics = evs[:n], topics[:n]
		res.Keys = keys[:n]
	}
	return dups
}

// publish hands b to the fan-out; while it is full, it retries with short
// sleeps for up to PublishWait.
func (s *Server) publish(ctx context.Context, hint uint32, b *route.Batch) error {
	err := s.tryPublish(hint, b)
	if !errors.Is(err, route.ErrFull) || s.opts.PublishWait <= 0 {
		return err
	}
	deadline := time.Now().Add(s.opts.PublishWait)
	pause := 50 * time.Microsecond
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return route.ErrFull
		}
		time.Sleep(min(pause, left))
		if err = s.tryPublish(hint, b); !errors.Is(err, route.ErrFull) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// tryPublish charges b to the queued-bytes budget and publishes it; a
// budget without room counts as a full fan-out.
func (s *Server) tryPublish(hint uint32, b *route.Batch) error {
	if !b.Charge(s.budget) {
		return route.ErrFull
	}
	err := s.pub.Publish(hint, b)
	if err != nil {
		b.Uncharge()
	}
	return err
}

// PublishEvents is the gRPC publish path (EventBus.PublishEvent and
// PublishBatch): the events are normalised by the decoder (it takes
// ownership of evs), deduplicated and published as one batch like an HTTP
// request. A fan-out that stays full for PublishWait, or a server that is
// stopping, gives codes.Unavailable; rejected events are not an error (they
// go to system.deadletter) but make Success false.
func (s *Server) PublishEvents(ctx context.Context, batchID string, evs []*jimbotpb.Event) (*jimbotpb.PublishResponse, error) {
	start := s.now()
	s.inflight.Add(1)
	if s.stopping.Load() {
		s.inflight.Add(-1)
		return nil, status.Error(codes.Unavailable, "jimbus is shutting down; retry later")
	}
	defer s.inflight.Add(-1)
	res := s.dec.FromProto(batchID, evs, start.UnixNano())
	defer s.dec.ReleaseResult(res)
	dups, err := s.ingest(ctx, s.grpcHint.Add(1), res, s.dedupNow(start), s.m.acceptedGRPC)
	switch {
	case err == nil:
	case errors.Is(err, route.ErrFull):
		return nil, status.Error(codes.Unavailable, s.fullMessage)
	case errors.Is(err, route.ErrClosed):
		return nil, status.Error(codes.Unavailable, "event pipeline closed; retry later")
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	default:
		return nil, status.Errorf(codes.Unavailable, "cannot publish: %v", err)
	}
	resp := &jimbotpb.PublishResponse{
		Success:    !rejectedAny(res),
		Message:    "ok",
		Accepted:   int32(res.Accepted),
		Duplicates: int32(dups),
		Rejected:   int32(res.Rejected),
	}
	if !resp.Success {
		resp.Message = string(res.AppendError(nil))
		if resp.Message == "" {
			resp.Message = res.Fatal
		}
	}
	return resp, nil
}
