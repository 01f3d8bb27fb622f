// Package decode provides the pure part of HTTP ingest: it turns a
// BalatroMCP request body (one event, or a batch {"events":[...]}) into a
// route.Batch of pooled protobuf events, with a deadletter event for every
// rejected one, and the answer's error text.
//
// # Ownership
//
// Decode copies the body once into an arena owned by the batch; it never
// keeps the caller's slice (fasthttp reuses it), so body may be reused as
// soon as Decode returns. DecodeSwap takes the body instead (ingest passes
// fasthttp's Request.SwapBody): the caller gets the batch state's spare
// buffer in exchange and never touches the body again. Every string and []byte of the events (event_id,
// source, payload_json, extra_json, raw, typed view strings, metadata) aliases
// that arena, and the events, their typed payloads (with their oneof wrapper
// values) and the arena come from a per-batch pool: when the batch's last
// reference is released (route.Batch.Release), all of it goes back to the
// pool and is overwritten by a later request. So a subscriber that keeps a
// value past its Release must copy it (proto.Clone, strings.Clone).
//
// Result comes from a pool too; give it back with ReleaseResult once the
// answer is written. It does not share memory with the batch, so the batch
// may be published (and released by the fan-out) before the answer is
// written. A Decoder is safe for concurrent use; a Result and its batch
// belong to the goroutine that decoded them until handed on.
//
// # Pipeline
//
//  1. Strict parse of the arena copy by a hand-written scanner (RFC 8259
//     grammar, UTF-8 not checked: invalid UTF-8 is accepted and replaced by
//     U+FFFD only where it lands in a proto string field, which must be
//     valid UTF-8 for the subscribers' marshalling). It validates and
//     extracts in one pass: member positions, never copies. The typed view
//     is read in that same pass (see below), but for a tiny body
//     (Options.DeferBelow), whose views the fan-out's writers build.
//  2. Only if that fails: the tolerant pre-pass (Prepass), which knows string
//     state and rewrites BalatroMCP's bare nan/inf/-inf (and the glibc/MSVC
//     spellings) outside strings to null and raw control bytes inside strings
//     to \u00XX, into a second pooled buffer; then the strict parse again.
//     Valid JSON passes the pre-pass byte for byte unchanged.
//  3. If the batch is still not valid JSON, its envelope is read loosely and
//     each "events" element parsed on its own: good events are accepted, the
//     broken ones deadlettered with their raw bytes.
//  4. Otherwise the whole body is Fatal, deadlettered with its raw bytes.
//
// An NDJSON body (KindNDJSON) takes the same steps line by line: one strict
// pass over all lines; if a line is not valid JSON, the pre-pass is applied
// to each line on its own (string state never crosses a line) and each line
// is parsed on its own, a broken one deadlettered with its bytes.
//
// # Limits
//
// Options bound what one body may cost: MaxEvents (events per body, else
// Fatal), MaxDepth (nesting: the scanner stops at the first level too deep,
// so 10,000 levels are refused after reading 256), MaxStringLen (the
// envelope strings of an event, else that event is deadlettered with
// "string too long: ..."). The body size is the caller's limit
// (ingest.Options.MaxBody).
//
// The typed oneof view (Options.NoTypedView turns it off) never rejects an
// event: numbers are parsed as float64 or exact int64 and saturated into
// their field, numeric strings are numbers, {} is an empty list, card ids
// keep their printed text, a value of the wrong JSON type is ignored. It is
// read in the scanner's pass: when an event's "type" comes before its
// payload, the payload is validated by the typed walker of that type instead
// of the plain scanner; when it comes after (the envelope is a Lua table
// too), by the walker of the type last seen with a payload that began with
// the same key. The walkers check exactly what the scanner checks, with the
// same errors at the same offsets, so a body is accepted or refused alike
// with the view on or off, whichever walker read it. Otherwise (nothing to
// guess from, a wrong guess, a later duplicate "type", LEARNING_DECISION,
// whose subtype decides) the validated payload is walked again. The walkers
// predict each object's next key, compare it as one token ("key": in one to
// three words), and walk the members that come as predicted (string or
// number values, no whitespace) in a straight line; anything else takes the
// general path, which gives the same result. On that line a joker's
// properties and the envelope's version, when an integer of one or two
// digits before ',' or '}' (the mod's costs, counts and versions), are
// valued in the few compares that find its end (smallInt), straight into
// their fields; and a number kept as printed (a card's or joker's id) is
// validated, not valued. The mod writes keys in Lua's hash order, the same for every object
// of a kind within one game process but different between processes, so the
// prediction is the order the batch state last met (it starts from the
// reference captures' order): a game whose order differs pays the general
// path for the first object of each kind, not for all of them.

// # Allocation
//
// Once the pools are warm, decoding allocates nothing, whatever the body:
// real BalatroMCP batches with their typed views, repaired bodies, rejected
// events, fatal bodies (TestAllocsDecode, TestAllocsDecodeBadInput). The
// exceptions are rare by design: an event with headers/metadata gets a new
// map, FromProto allocates (its events are not pooled), and a reason that
// quotes a type longer than 200 bytes. A batch state grown by an exceptional
// request (over 4 MiB of buffers or 4096 events) is not pooled again. The
// pools are sync.Pools (per P: the state freed last, warm in cache, is used
// next) that also keep their first 64 batch states and results out of the
// garbage collector's reach: after a GC empties the sync.Pool, decoding
// takes those again instead of growing new ones (TestPoolSurvivesGC).
//
// # Why a hand-written scanner, and where sonic fits
//
// The project chose github.com/bytedance/sonic. It was measured on the places
// where it could earn its keep (decode_timing_test.go; AMD EPYC, 2 cores
// shared with other work, Go 1.26.8, medians of 5 runs of
// go test -run '^$' -bench . -count 5 ./ingest/decode/, 2026-11-27):
//
//	validity check alone, synthetic 50-event batch (23 KB):
//	  this scanner 22.1 us (1.05 GB/s); sonic.Valid 18.5 us (1.26 GB/s); a
//	  trusting walk of the same bytes 17.1 us; encoding/json.Valid 78 us
//	whole decode of that batch (one core):
//	  this package 34.9 us = 1.43 M events/s with typed views, 28.4 us =
//	  1.76 M events/s without, 0 allocs; sonic.Unmarshal into a plain struct
//	  (type, source, event_id, timestamp, NoCopyRawMessage payload: no
//	  validation of the events, no extras, no protobuf) 40.4 us = 1.24 M/s,
//	  24.2 KB in 2 allocs; encoding/json into the same struct 190 us, 158
//	  allocs
//	real batch request_batch_state_change.json (11 KB, 6 events):
//	  11.5 us with typed views, 11.1 us without; sonic struct 16.8 us;
//	  encoding/json 79.8 us
//	typed view of one GAME_STATE payload (8.6 KB, 65 cards):
//	  this walker, which validates the payload as it goes, 8.1 us, 0 allocs;
//	  sonic into a plain struct 28.7 us, 9.3 KB in 2 allocs; encoding/json
//	  99 us, 338 allocs
//
// So sonic.Valid is not much faster than the scanner at validating, while
// the decoder needs the position of every member anyway (payload
// byte-exact, extra_json, raw bytes of rejected events) and reads the typed
// view in the same pass: sonic.Valid plus a second pass would cost more
// than the single validating pass. sonic's struct decoding cannot keep
// unknown keys byte-exact, gives up on the mod's invalid tokens and on {}
// where a list is declared, allocates, and for the typed view is 3.5 times
// slower than the walker here. So the decoder does not use sonic at all; the
// benchmarks keep it as the baseline, so that the choice can be revisited
// with each sonic release.
package decode
