//go:build !race

package grpcout

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/jimbot/jimbus/route"
)

// TestAllocs: the hot path from Publish to the writer's packing does not
// allocate: Publish, the dispatcher's Drain and dispatch to one and to four
// subscriber queues, and each writer's pack and post-Send step; the
// subscribers of odd index want the JSON view (copies without the typed
// view, which every third event has). With wire set (gRPC streams), four
// subscribers share each view's encodings: the encoding, once a batch, and
// the parts do not allocate either once the batch's buffers have grown.
// With deferred set, the batch comes without its typed views, which the
// first writer builds (route.Batch.FillOnRead, EnsureTyped).
func TestAllocs(t *testing.T) {
	for _, tc := range []struct {
		nsubs    int
		wire     bool
		deferred bool
	}{{1, false, false}, {2, false, false}, {4, false, false}, {4, true, false}, {2, false, true}, {4, true, true}} {
		nsubs := tc.nsubs
		t.Run(fmt.Sprintf("subscribers=%d/wire=%v/deferred=%v", nsubs, tc.wire, tc.deferred), func(t *testing.T) {
			b, err := New(Options{Logger: discard})
			require.NoError(t, err)
			set, err := route.Compile(">")
			require.NoError(t, err)
			subs := make([]*subscriber, nsubs)
			for i := range subs {
				subs[i], err = b.subscribe(fmt.Sprint(i), set, 0, i%2 == 0)
				require.NoError(t, err)
				subs[i].wire = tc.wire
			}
			bt := route.NewBatch(nil)
			for i := range 50 {
				typ := jimbotpb.EventType_EVENT_TYPE_GAME_STATE
				if i%3 == 0 {
					typ = jimbotpb.EventType_EVENT_TYPE_HEARTBEAT
				}
				id, _ := route.TopicOf(typ, "")
				ev := newEvent(typ, "", fmt.Sprint(i))
				if typ == jimbotpb.EventType_EVENT_TYPE_HEARTBEAT {
					ev.Payload = &jimbotpb.Event_Heartbeat{Heartbeat: &jimbotpb.HeartbeatEvent{Uptime: 1}}
				}
				bt.Add(ev, id)
			}
			// fill sets the views again (the test's own, made once).
			views := make([]jimbotpb.Event_Heartbeat, len(bt.Events))
			hbs := make([]jimbotpb.HeartbeatEvent, len(bt.Events))
			fill := func(b *route.Batch) {
				for i, ev := range b.Events {
					if ev.Type == jimbotpb.EventType_EVENT_TYPE_HEARTBEAT {
						views[i].Heartbeat = &hbs[i]
						ev.Payload = &views[i]
					}
				}
			}
			buf := make([]*route.Batch, 0, dispatchChunk)
			// The test goroutine plays the dispatcher (the bus is not
			// started) and each writer in turn.
			n := testing.AllocsPerRun(1000, func() {
				bt.Retain(1) // the reference Publish hands over
				if tc.deferred {
					bt.DeferTyped(fill)
				}
				if err := b.Publish(7, bt); err != nil {
					t.Fatal(err)
				}
				buf = b.ring.Drain(buf[:0], dispatchChunk)
				for i, x := range buf {
					b.dispatch(x)
					buf[i] = nil
				}
				for _, s := range subs {
					for s.pack() > 0 {
						if tc.wire && s.nshared != len(s.out.Events) {
							t.Fatalf("%d of %d events shared", s.nshared, len(s.out.Events))
						}
						s.sentDone(true)
					}
				}
			})
			require.Zero(t, n)
			require.False(t, bt.TypedDeferred(), "a writer built the views")
			for _, s := range subs {
				s.leave(nil)
			}
			require.NoError(t, b.Stop(context.Background()))
			bt.Release() // the test's own reference, the last
		})
	}
}
