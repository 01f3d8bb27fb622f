// Package grpcout provides the in-memory fan-out backend of JimBus (Bus, a
// route.Publisher) and the EventBus gRPC service (Service) that streams its
// events to subscribers by topic pattern.
//
// # Data path
//
//	ingest handlers --Publish(hint, *route.Batch)--> ring.Sharded (shards, many producers)
//	    --> one dispatcher goroutine: numbers events (bus_sequence), looks up the
//	        subscribers of each topic of the batch (per-topic lists, O(1) per topic)
//	    --> one ring.Ring per subscriber (SPSC: dispatcher -> stream)
//	    --> the subscriber's stream handler goroutine (Bus.Serve, called by
//	        Service.Subscribe / SubscribeAck): packs the matching events of
//	        consecutive batches into one reused EventBatch (up to MaxBatchEvents), Send
//
// Publish never blocks: it answers route.ErrFull when the ring has no room
// (ingest then answers 503 with Retry-After) and route.ErrClosed once Stop
// has begun.
//
// Subscriptions compile their patterns once into a route.Set. The bus keeps,
// per TopicID, the list of subscribers whose set holds it; the lists are
// rebuilt copy-on-write on every subscribe and unsubscribe and read by the
// dispatcher through an atomic pointer, so routing a batch costs one bit per
// event plus one visit per (topic of the batch, subscriber of that topic),
// never a walk over every subscription.
//
// # Ownership
//
// A route.Batch is reference counted (see package route):
//
//   - The publisher's reference passes to the bus when Publish returns nil;
//     on an error the publisher keeps it.
//   - While the batch is in the ring, that reference belongs to the ring;
//     Drain hands it to the dispatcher.
//   - The dispatcher is the only goroutine that writes to the events: it sets
//     Event.bus_sequence (and Event.topic when empty), and builds the typed
//     views that the decoder deferred when one of the batch's subscribers
//     wants them (see Payload views), before any subscriber can see them.
//     From then on nobody changes them; several writers may marshal one
//     event at once.
//   - The dispatcher Retains the batch once per subscriber that gets at least
//     one of its events, pushes it to that subscriber's queue, and Releases
//     its own reference. A queued reference belongs to the queue.
//   - A writer owns the references it popped until the Send that carries
//     their last events returns; then it Releases them. A batch whose events
//     do not fit one message stays with the writer across Sends.
//   - Dropped deliveries (DropOldest), the queue of a disconnected or departed
//     subscriber, and what Stop abandons at its deadline are Released by
//     whoever removes them. The last Release hands the batch to the free
//     function of its creator (ingest's pool).
//
// Each subscriber queue has one producer, the dispatcher, and one consumer
// side guarded by a per-subscriber mutex: the writer pops under it, and the
// dispatcher takes it only to drop the oldest delivery or to release the
// queue of a subscriber it disconnects. The bus mutex (subscriptions) and a
// subscriber's queue mutex are never held together.
//
// # Ordering
//
// Each subscriber receives the events it matches in bus order: the events of
// one Publish in the order of the batch, and the batches of Publish calls
// that follow one another (the second starting after the first returned,
// e.g. a client that waits for each answer) in that order, whatever shards
// they used: the ring hands batches to the one dispatcher in global sequence
// order, each subscriber queue is FIFO, and one goroutine sends. bus_sequence
// is strictly increasing in that order; a subscriber sees gaps for the
// events it does not match or that were dropped for it.
//
// # Payload views
//
// A subscription's payload_view says whether its events carry the typed
// oneof view beside payload_json (ResolveView: UNSPECIFIED is TYPED unless
// Options.NoTypedView). WantsTypedView reports whether a routed subscriber
// wants it; the decoder asks once per request (decode.Options.TypedWanted)
// and, while none does, leaves the view out and marks the batch
// (route.Batch.DeferTyped). It leaves it out of small requests anyway
// (decode.Options.DeferBelow). A subscriber that wants the view is counted
// before it is routed, so a batch it can receive was either decoded with the
// view or is marked. When the dispatcher queues a marked batch to a
// subscriber that wants the view, it hands the building to the writers
// (route.Batch.FillOnRead): the first writer to pop the batch builds the
// views, the others wait for it (route.Batch.EnsureTyped). A writer that
// packs many single-event deliveries into one message walks their views one
// after the other, and the requests are answered without waiting for them.
// The writer of a
// PAYLOAD_VIEW_JSON subscriber sends reused copies of the events' envelopes
// without the view, since other writers read the shared events.
//
// # Encoding
//
// ServerOption installs Codec, which encodes EventBatch messages with the
// code protoc-gen-go-vtproto generated for balatro_events.proto. Where two
// or more subscribers of one view take every event of a batch (e.g. several
// services on ">"), the dispatcher counts them (route.Batch.Receivers) and
// the first of their writers to send the batch encodes its events once
// (route.Batch.Encoded); the others, and any other subscriber of that view,
// copy those bytes into their messages (sharedBatch) instead of encoding the
// events again; a writer that comes while the batch is being encoded waits
// for it, parked. jimbus_grpc_events_sent_shared_total counts the events
// sent so; the bytes are the same.
//
// # Slow subscribers
//
// A subscriber whose client stops reading first fills gRPC's flow-control
// window, then its queue (QueueSize batches). What happens next is
// Options.SlowPolicy, fixed for the bus (--slow-subscriber):
//
//   - Block (default): the dispatcher waits for room, at most BlockTimeout;
//     every subscriber waits with it and the ring fills, so ingest answers 503
//     and nothing is lost for a subscriber that keeps reading. After
//     BlockTimeout the slow subscriber is disconnected with
//     codes.ResourceExhausted and what it missed is counted as dropped.
//   - DropOldest: the oldest queued batch is dropped for that subscriber and
//     its matching events counted as dropped; nobody else waits.
//   - Disconnect: the subscriber is disconnected at once with
//     codes.ResourceExhausted, its queue counted as dropped; nobody else
//     waits.
//
// A disconnected subscriber leaves the routing table and its queue is
// released at once. gRPC gives a server no way to abort a Send blocked on a
// client that reads nothing, so the status reaches the client when its Send
// returns: when the client reads again (it first receives what gRPC had
// buffered) or its connection closes. Until then the writer holds only the
// batches of that one message (at most MaxBatchEvents events).
//
// A subscriber whose client goes away (context cancelled) is removed, its
// queue released; it may reconnect at any time, with the same id.
//
// # Shutdown
//
// The order, driven by cmd: stop ingest (no new Publish), then Bus.Stop, then
// the gRPC server (health NOT_SERVING, GracefulStop with a deadline, Stop).
// Bus.Stop refuses new Publish calls (route.ErrClosed) and new subscribers,
// waits for Publish calls in flight, lets the dispatcher queue everything in
// the ring to the connected subscribers, lets each writer send its queue and
// end its stream with status OK (the client's Recv returns io.EOF), and waits
// for the dispatcher and those writers. An event published while a matching
// subscriber was connected reaches it (Block policy) unless that subscriber
// leaves or the Stop deadline passes; at the deadline Stop releases what is
// left, ends the remaining streams with codes.Unavailable and returns an
// error. Stop is idempotent.
//
// # Metrics
//
// With Options.Registerer set: jimbus_fanout_ring_batches,
// jimbus_fanout_ring_capacity_batches, jimbus_fanout_ring_full_total,
// jimbus_fanout_events_total, jimbus_fanout_deliveries_total,
// jimbus_grpc_subscribers, jimbus_grpc_subscriber_events_sent_total and
// jimbus_grpc_subscriber_events_dropped_total (label subscriber: the
// subscriber id, bounded by MaxSubscriberLabels, beyond which ids share
// "other"), jimbus_grpc_subscriber_disconnects_total (label reason:
// queue_full, block_timeout) and the histogram jimbus_ingest_to_send_seconds.
package grpcout
