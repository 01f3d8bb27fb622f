// Package loadtest provides capture and replay of BalatroMCP traffic for
// JimBus: a Recorder that writes the requests the bus receives to capture
// files, a Reader of them, Generate, which synthesises realistic game
// sessions in the same format, Replay, which plays captures against a
// running bus as many concurrent games and accounts for every event through
// a gRPC subscription, LoadHTTP, which posts one body as fast as the bus
// answers, and Histogram, the latency histogram they report with.
//
// # Capture format, version 1
//
// A capture is a text file with one request per line, in arrival order
// (JSON Lines). Each line is a JSON object, keys written in this order:
//
//	{"v":1,"at":1751439161116581332,"method":"POST","path":"/api/v1/events/batch",
//	 "header":[["Content-Type","application/json"],["User-Agent","BalatroMCP/1.0"]],
//	 "body":"{\"source\":\"BalatroMCP\",\"timestamp\":1751439161000,...}"}
//
// (one line in the file; wrapped here). The fields:
//
//	v         the format version, 1. A reader refuses any other.
//	at        arrival time at the bus, Unix nanoseconds (integer).
//	method    the HTTP method.
//	path      the request path as sent: query string, doubled or trailing
//	          slashes kept.
//	header    the headers that matter, as [name, value] pairs in the order
//	          received: Content-Type, Content-Encoding, Connection, Expect,
//	          User-Agent. A header that was absent is not listed (the mod's
//	          poll has no User-Agent at all). Omitted when none.
//	body      the body, when it is non-empty and valid UTF-8, as a JSON
//	          string: \" \\ \n \r \t and \u00XX for other bytes below 0x20
//	          are escaped, every other byte is written as is. Decoding it
//	          gives back the exact bytes, raw control bytes and the mod's
//	          invalid JSON (bare nan, unescaped quotes) included.
//	body_b64  instead of body when the body is not valid UTF-8: standard
//	          padded base64 (RFC 4648 section 4) of the exact bytes.
//
// A line with neither body nor body_b64 had an empty body. A Content-Encoding
// is recorded, not undone: the body is the bytes on the wire. Readers accept
// the keys in any order and ignore unknown keys, so version 1 can gain
// optional fields; anything that changes the meaning of a field is version
// 2. A capture may be gzip-compressed (Reader recognises the magic bytes),
// as the generated sessions in testdata are.
//
// # Recording
//
// Recorder writes captures with size-based rotation: when the next record
// would take Path over MaxBytes, Path becomes Path.1 (Path.1 becomes Path.2,
// and so on up to Path.Keep, the oldest, which is removed) and a new Path is
// started; an existing Path is rotated away when the Recorder opens.
// RotatedFiles lists the files oldest first. Record, Flush and Close are
// safe for concurrent use (one mutex); Record encodes the record into a
// buffer before it returns, so it copies what it keeps and the caller may
// reuse the body at once (a fasthttp handler can pass ctx.PostBody()); it
// does not allocate in steady state. The buffer is written out when full,
// when FlushInterval has passed, and on Flush and Close.
//
// # Generated sessions
//
// Generate models one BalatroMCP game session against a bus that always
// answers 2xx, from ../shared/reference/balatromcp-client.md: a 60 fps
// frame loop drives the mod's own timers. What it reproduces:
//
//   - connection_test once, lowercase, with data instead of payload and an
//     epoch-ms timestamp, POST /api/v1/events, in the frame of the first
//     batch (about 117 ms after start);
//   - a heartbeat pair (HEARTBEAT + GAME_STATE debug:true; the first one
//     initial:true with changes {}) every 5.00-5.02 s;
//   - a state sample every 0.5 s (31 frames, about 0.517 s) that advances a
//     small Balatro model with probability Activity (0.9) and emits one
//     MONEY/SCORE/HAND_PLAYED/CARDS_DISCARDED/JOKERS/ROUND/PHASE_CHANGED
//     event per watched field that changed, then a GAME_STATE with them
//     nested in changes;
//   - the aggregator: a flush at most every 100 ms, one GAME_STATE per
//     batch (the latest), events sorted by timestamp, at most 50; so about
//     2 POSTs/s while playing, 9-11 KB each;
//   - GAME_STATE of 7.8-10 KB (about 8.9 KB selecting a hand with 8 cards,
//     5 jokers, 2 consumables and the 52-card deck; about 8 KB in the shop,
//     hand {}), float card ids (1-ID/1603301), UNKNOWN_STATE_n phases,
//     epoch-second payload timestamp;
//   - batch envelope {source, timestamp (epoch ms ending 000), batch_id,
//     events}, event timestamps in love.timer float ms, UUID-v4 ids, {} for
//     every empty list, numbers as Lua's %.14g;
//   - the keys of every object (envelopes, payloads, cards, ...) in the
//     session's own order, as Lua's hash order writes the mod's tables: the
//     same for every object with the same keys within the session,
//     different from one Seed to another (KeyOrder; KeyOrderCaptures keeps
//     the reference captures' order instead);
//   - once per session a score overflow: chips inf and blind chips nan for
//     one round (bare tokens, invalid JSON);
//   - a command poll, GET /api/v1/commands/poll with Content-Type text/plain
//     and no User-Agent, every 0.517 s (1.94/s);
//   - the headers of a lua-https backend: WinINet (default), the plain
//     socket (Connection: Close) or curl (Expect: 100-continue over 1 KiB);
//   - with Outage, an outage: no request arrives for OutageFor; meanwhile
//     the aggregator queue (100 events, drops the 10 oldest) is copied into
//     the local buffer (1,000 events, drops the oldest) at every failed
//     flush and put back; at recovery the whole buffer arrives in one frame
//     as about 100 POSTs of 10 events each with new batch_ids but the same
//     event_ids and timestamps (a few dozen distinct events, each many
//     times), then the aggregator sends the queue again.
//
// Simplified: the game never ends (no GAME_OVER or MENU), there are no
// retries (the bus always answers), the breaker is open for the whole outage
// and its 60 s half-open wait is not modelled, no hooked events (SCORING,
// ROUND_COMPLETE), a session's key order is a hash of each key (Lua's also
// depends on the table's size and insertion order) and strings carry no raw
// control bytes.
//
// # Replay
//
// Replay plays sessions as Games concurrent games, game i playing session
// i%len(Sessions) and looping it (each loop counts as a new game). With
// Speed, every game is a sequential client that waits for each answer, as the
// mod does; with Rate, an open-loop scheduler issues requests at a fixed total
// rate and latency counts from the scheduled time. Before sending, every
// UUID-shaped string in a body (event_id and batch_id, and the event_ids
// repeated in GAME_STATE changes) has its last 12 hex digits xored with
// RewriteMask(salt, lane): the bytes stay the same otherwise, the length
// included, so every simulated game is distinct, the copies inside a body
// stay consistent and resends within a session stay resends.
//
// Accounting is per event id: ids are registered before each request,
// marked when the answer is 2xx, and counted on every delivery the ">"
// subscription sees. Lost = answered 2xx but never delivered by the end of
// Grace; Duplicates = deliveries beyond the first of one id (the outage
// burst's resends therefore count once when the bus deduplicates them);
// connection_test, which has no event_id, is matched by count. Before it
// starts, Replay posts a probe event (source "jimbus-loadtest") and waits
// until it is delivered, so that the subscription is known to be live.
//
// Replay and LoadHTTP talk only to loopback addresses (every address a name
// resolves to must be loopback) unless AllowRemote is set, and stop by
// themselves after Duration (plus Grace and one RequestTimeout at most).
package loadtest
