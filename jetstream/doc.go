// Package jetstream provides the NATS JetStream fan-out backend of JimBus
// (Bus): a route.Publisher that stores every event in a JetStream stream
// before ingest answers ok, and the grpcout.Subscriptions that serve the
// EventBus Subscribe and SubscribeAck streams from JetStream consumers, so
// that events survive restarts and several jimbus instances on one NATS
// cluster form one bus.
//
// # Data path
//
//	ingest handler --Publish(hint, *route.Batch)--> one NATS message per event,
//	    subject <prefix>.<topic> (default jimbus.game.state.update), body the
//	    marshalled Event, header Nats-Msg-Id (a hash of source, event_id and
//	    client timestamp) --> stream (default JIMBUS, subjects <prefix>.>)
//	    --> per subscriber stream: a JetStream pull consumer filtered to the
//	        subjects of the topics its patterns match --> the stream's handler
//	        goroutine packs the fetched events into one EventBatch (up to
//	        MaxBatchEvents), Send, acknowledge
//
// Publish sends the events of the batch asynchronously and waits until
// JetStream has acknowledged every one: nil means every event is stored
// (on a majority of the stream's replicas, and synced to disk as the servers
// are configured: see EmbeddedOptions.SyncInterval). At most
// Options.MaxPending events are in flight for all callers together; beyond
// it Publish answers route.ErrFull at once (ingest answers 503). When an
// acknowledgement fails or does not come within Options.AckTimeout, Publish
// answers an error wrapping ErrNotAcknowledged (ingest answers 503 and the
// client resends); events of that batch that were stored are recognised by
// their message id within Options.DuplicateWindow and stored once. Publish
// blocks for the round trip, unlike the memory bus; it does not modify the
// events (bus_sequence and an empty topic are filled in on delivery).
//
// # Ownership
//
// The caller's reference to the batch passes to the bus when Publish
// returns nil, and the bus releases it before returning: the events were
// marshalled and stored, nothing keeps them. On an error the caller keeps
// its reference. Delivered events are decoded into Event messages owned by
// the subscriber's stream, reused after each Send.
//
// # Subscriptions and the delivery guarantee
//
// Without subscriber_id a subscription is an ordered ephemeral consumer:
// it starts at SubscribeRequest.start_position (UNSPECIFIED and NEW: the
// events stored after it is active, i.e. once the response headers are sent;
// FIRST, SEQUENCE, TIME: from there) and delivers every event in stream
// order exactly once while the stream lasts; nothing is kept for it after.
//
// With subscriber_id it is a durable consumer (named after the id): a
// stream that comes back with the same id, on any instance, continues after
// the events acknowledged, and receives every later event at least once.
// On Subscribe an event counts as acknowledged once the Send that carried it
// returned (events in gRPC's buffers when the connection breaks are lost to
// that subscriber); on SubscribeAck once the client acknowledged its
// bus_sequence (cumulative). When a stream ends, the events delivered to it
// and not acknowledged are handed back (negative acknowledgement) and come
// again at once to the next stream of that id; events not acknowledged
// within Options.AckWait come again on the same stream; after a restart of
// the NATS server itself, events delivered and not acknowledged come again
// after AckWait. Redelivered events keep their bus_sequence and may arrive
// after newer events. A start position other than UNSPECIFIED restarts the
// durable there. Several streams with the same id share one consumer (each
// event goes to one of them). A durable unused for Options.ConsumerInactive
// is removed by JetStream.
//
// bus_sequence is the event's sequence in the stream: the same on every
// instance, increasing in stream order, with gaps for the events a
// subscription does not match.
//
// # Lifecycle
//
// New validates and starts nothing. Start connects (in-process to an
// Embedded server, or to Options.URL), creates or updates the stream, and
// starts a health check that looks the stream up every HealthInterval;
// Healthy reports the result. Stop refuses new Publish calls and
// subscribers, waits for the Publish calls in flight, ends the subscriber
// streams with status OK (handing back what they had not acknowledged),
// waits for them, flushes the acknowledgements and closes the connection.
// cmd stops ingest first, then the Bus, then the Embedded server. Stop is
// idempotent.
//
// # Metrics
//
// With Options.Registerer set, all named jimbus_jetstream_*:
// published_events_total, publish_seconds (histogram per Publish),
// publish_failures_total, publish_full_total, pending_acks,
// pending_acks_limit, duplicate_events_total, oversize_events_total,
// acknowledged_events_total, undecodable_events_total, subscribers,
// ingest_to_send_seconds, connected, healthy, reconnects_total, and by
// subscriber id (bounded by MaxSubscriberLabels, beyond which ids share
// "other"): subscriber_events_sent_total,
// subscriber_redelivered_events_total, consumer_lag_events (events matching
// the subscription not yet delivered, as of its last delivery) and
// subscriber_unacknowledged_events.
package jetstream
