// Package bench provides the cross-package benchmarks of JimBus and the
// servers they compare it with: JimBus wired as cmd/jimbus wires it
// (StartJimBus), a bare fasthttp + sonic decode-and-discard server and a
// read-and-discard HTTP ceiling (StartFastSonic, package fastsonic), and a
// minimal net/http + encoding/json bus with the same gRPC Subscribe
// (StartNetHTTPBus, package nethttpbus). Every server listens on 127.0.0.1
// only, on a port the kernel picks, and Stop ends it; cmd/fastsonic and
// cmd/nethttpbus run the baselines as programs (for loadtest), and
// cmd/benchtable turns `go test -bench` output into the comparison table.
//
// # Benchmarks (bench_timing_test.go)
//
// Each runs the servers side by side in one benchmark function, one
// sub-benchmark per server (server=jimbus, jimbus_json, fastsonic,
// nethttp, discard), with the same load generator: a fasthttp client in this
// process with -conc requests in flight (default 32, rounded up to a
// multiple of GOMAXPROCS; one keep-alive connection per RunParallel
// goroutine), so the client, the servers and the subscriber share the
// machine's cores. Each reports events/s, B/op and allocs/op (an op is one
// request; the allocations are those of the whole process), cpu-ns/event
// (the CPU time of the process per event, the figure least disturbed by
// other work on a shared machine) and cpus (the cores it used). A 503 (the
// pipeline stayed full) is retried after 1 ms and counted in retries/op.
// jimbus_json is the same JimBus with subscribers that ask for
// PAYLOAD_VIEW_JSON (payload_json only): no subscriber wants the typed oneof
// view, so the decoder does not build it and the writers send none; it shows
// what the view costs. (startServer also knows jimbus_notyped, JimBus run with
// decode.Options.NoTypedView, which is the same work.)
//
//   - BenchmarkIngestBatch50: POST /api/v1/events/batch of a 50-event batch
//     (one 8.9 KB GAME_STATE and 49 small events, 23 KB) whose event ids
//     are fresh on every request, into JimBus's fan-out with one subscriber
//     drained in process (the EventBus service's own Subscribe handler with a
//     stream that counts; no marshalling, no network). The nethttp bus's
//     subscriber is drained the same way; fastsonic and discard have none.
//     The benchmark waits until the subscriber has every event.
//   - BenchmarkSingleEvent: POST /api/v1/events of one small event.
//   - BenchmarkEndToEnd: the same batches through the real HTTP listener to
//     a real gRPC subscriber on ">" over loopback; events/s are counted at
//     the subscriber, and the benchmark ends when it has received them all.
//   - BenchmarkPaired (paired_timing_test.go): JimBus and fastsonic on the
//     IngestBatch50 and SingleEvent bodies in alternating slices of
//     -pair-slice (100 ms) each, one pair an iteration (-benchtime 50x: 50
//     pairs), reporting the medians over the pairs of the per-CPU and the
//     events/s ratios. The other benchmarks run each server for the whole
//     -benchtime in turn, and on a shared machine the other tenants' load
//     changes between the two; in slices a fraction of a second apart both
//     meet the same load, and the ratio varies much less from run to run.
//     -pair-with jimbus_json pairs the JSON-view JimBus instead.
//   - BenchmarkDecoders (decoders_timing_test.go): the paired benchmark's
//     two decoders alone on its two bodies, no HTTP: JimBus's (with and
//     without the typed view) and fastsonic's, in ns/event.
//
// The decoder, routing, the ring and the fan-out without the network are
// benchmarked in their own packages; RESULTS.md quotes them.
//
// # CI
//
// TestBenchCI (run by `make bench-ci` with -ci.min-events) runs the
// end-to-end benchmark once and fails below the design's 10,000 events/s;
// without the flag it is skipped, so `go test ./...` stays fast.
package bench
