// Package ingest provides the BalatroMCP-compatible HTTP ingress of JimBus:
// a fasthttp server that decodes event posts (package ingest/decode),
// drops resends, and publishes each request's events as one route.Batch to a
// route.Publisher; it also queues the text commands the game polls for.
//
// # Endpoints
//
//	POST /api/v1/events          one event (the mod's connection_test)
//	POST /api/v1/events/batch    {"events":[...]}: nearly all traffic; or, with
//	                             Content-Type application/x-ndjson, one event a line
//	POST /api/v1/events/health   the mod's health probe: {"status":"ok"}
//	GET  /api/v1/commands/poll   pending commands, text/plain, one a line
//	POST /api/v1/commands        queue commands (JSON or text/plain lines)
//	GET  /health                 {"status":"healthy","version":...}
//	GET  /metrics                Prometheus text format
//
// A doubled slash (/api/v1/events//batch) and a trailing slash name the same
// path. An unknown path answers 404, a known path with the wrong method 405
// with an Allow header; HEAD works wherever GET does (without consuming
// commands) and OPTIONS answers the Allow header of every known path. Every
// answer carries Content-Length and an HTTP/1.1 status line. Bodies may come
// with Content-Encoding gzip, deflate, br or zstd (the limit applies to the
// decoded size). With Options.AuthSecret set, every path but /health needs
// it (401 otherwise).
//
// An NDJSON batch (Content-Type application/x-ndjson, application/ndjson or
// application/jsonl) holds one event object per line; each line is decoded
// on its own (decode.KindNDJSON), so a broken line is deadlettered alone and
// the others are accepted. The single-event endpoint takes JSON only.
//
// # Limits
//
// Each limit refuses cheaply and says which flag raises it: the body size
// (Options.MaxBody, 413 from Content-Length before reading, and on the
// decoded size of a compressed body), events per request, nesting depth and
// envelope string length (Options.DecodeOptions: the request, or the one
// event, is answered 200 with the reason and deadlettered), commands queued
// (Options.CommandQueueSize: 503 with Retry-After while full; a request with
// more commands than the queue can ever hold is a permanent error, 200).
//
// # Status codes
//
// BalatroMCP counts any 2xx as success and never reads the body; anything else
// makes it resend the same batch (at +1 s and +3 s, then from its local buffer,
// and it stops sending for 60 s after three failed batches). Therefore:
//
//   - A problem with the content (bad JSON, unknown type, missing field, wrong
//     Content-Type) is permanent: it answers 200 {"status":"error","error":...}.
//     A 4xx would be resent forever. The rejected bytes are not lost: the
//     decoder puts a deadletter event (topic system.deadletter, with the reason
//     and the raw bytes) into the batch, which is published like any other.
//     Only a body with a foreign Content-Type is not read at all (counted as
//     rejected, reason content_type).
//   - A transient condition answers 503 with Retry-After (Options.RetryAfter):
//     the fan-out stayed full for Options.PublishWait, or the server is
//     stopping. The client's retry then delivers the events, so nothing that
//     was answered 2xx is ever dropped and nothing answered 503 was kept.
//   - Only what HTTP itself requires is 4xx: 404, 405, 413 for a body of
//     Options.MaxBody or more (refused from Content-Length before the body
//     is read, also for Expect: 100-continue), 400/408/431 for requests that
//     are not HTTP, 401 when authentication is configured and missing.
//   - A panic in the handler (a bug) answers 500 and is logged; the server
//     keeps serving.
//
// # Resends
//
// After an outage the mod resends the same events (same event_id and
// timestamp) in new batches, dozens of times. Each event that the decoder gave
// a key (a hash of source, event_id and client timestamp; events without an
// event_id get none and are never dropped) is checked and marked in a window
// of Options.DedupWindow: a set-associative table (buckets of 4 entries, one
// cache line, each bucket its own lock in that line). The decoder starts
// loading a key's bucket as soon as it has the key, so that the cache misses
// overlap with the decoding; the request's keys are then checked in request
// order (a key twice in one request is a duplicate the second time). A
// duplicate is acknowledged (the answer is ok) but removed from the batch, so
// it is delivered once. The window holds at most Options.DedupMaxEntries
// entries; once full, a new event takes the place of the oldest entry of its
// bucket, which shortens the window for that entry rather than growing
// memory (counted). When the publish fails (503), the keys the request
// marked are unmarked again, so the client's retry is not taken for a
// duplicate. Two copies in flight at the same moment are resolved in favour
// of the first: if that one then fails with 503, its own retry delivers the
// event.
//
// # Ownership
//
// Nothing keeps the fasthttp RequestCtx, its body or its headers after the
// handler returns: the decoder copies what the events keep, and answers are
// copied into the response. The handler owns the Batch's reference until
// Publish returns nil; after that it never touches the batch again (the
// fan-out may already have recycled its events), so everything counted about
// the events is read before publishing. A batch left empty (all duplicates,
// or an empty request) is released without publishing.
//
// # Shards and order
//
// Publish gets the connection id as its shard hint, so the requests of one
// keep-alive connection stay on one shard; order never depends on the hint
// (route.Publisher), and a client that waits for each answer, as BalatroMCP
// does, sees its events in request order.
//
// # Commands
//
// Commands is a bounded FIFO of command lines (such as "select_card:0") for
// GET /api/v1/commands/poll. Every game polls the same hard-coded URL, so a
// command goes to whichever game polls first; address a single game by
// running one bus per game.
//
// # Lifecycle
//
// New validates and starts nothing. Start (or Serve) serves a listener. Stop
// is idempotent: from its first call new requests answer 503 with Retry-After
// and Connection: close, in-flight requests (including their bounded publish
// wait) finish, then the listener closes and Stop waits for the serving
// goroutine.
package ingest
