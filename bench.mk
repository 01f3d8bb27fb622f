# Benchmarks of package bench; the Makefile includes this file.
#
#   make bench-ci        the design's end-to-end floor (10,000 events/s): HTTP
#                        listener -> rings -> gRPC subscriber, one short run
#                        (up to 3 on a loaded machine); fails below the floor.
#   make bench-compare   JimBus beside the bare fasthttp + sonic server, the
#                        net/http + encoding/json bus and the HTTP ceiling:
#                        the benchmark binary runs BENCH_COUNT times, each
#                        time every server once, in turn (so that the ratios
#                        pair runs made under the same load), then the table
#                        of events/s, CPU per event, allocations and ratios
#                        (bench/cmd/benchtable). BENCH_OUT=FILE keeps the raw
#                        `go test -bench` output; bench/RESULTS.md has the last.
#   make bench-paired    the two ratio targets (batches, single events: JimBus
#                        over fastsonic) in alternating 100 ms slices,
#                        BENCH_PAIRS pairs each: the steadiest ratio figures on
#                        a machine shared with other tenants. Batches from
#                        BENCH_CONC connections, single events from
#                        BENCH_SINGLE_CONC (256: the mod's hundreds of games,
#                        a connection each), as RESULTS.md records them.

GO            ?= go
BENCH_CI_MIN  ?= 10000
BENCH_COUNT   ?= 5
BENCH_TIME    ?= 1s
BENCH_CONC    ?= 32
BENCH_COMPARE ?= ^Benchmark(IngestBatch50|SingleEvent|EndToEnd)$$
BENCH_OUT     ?=
BENCH_PAIRS   ?= 30
BENCH_SINGLE_CONC ?= 256

# BENCH_TIME is per server and run; BENCH_CONC the requests in flight.

.PHONY: bench-ci bench-compare bench-paired

bench-ci:
	$(GO) test -run '^TestBenchCI$$' -count=1 -timeout 5m -v ./bench/ -args -ci.min-events=$(BENCH_CI_MIN)

bench-compare:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	out="$(BENCH_OUT)"; [ -n "$$out" ] || out="$$tmp/bench.txt"; \
	$(GO) test -c -o "$$tmp/bench.test" ./bench/; \
	echo "# $$(date -u +%FT%TZ) $$($(GO) version);$$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2), $$(nproc 2>/dev/null) CPUs; load average $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" > "$$out"; \
	cat "$$out"; \
	for i in $$(seq $(BENCH_COUNT)); do \
		echo "# run $$i of $(BENCH_COUNT): load average $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" | tee -a "$$out"; \
		(cd bench && "$$tmp/bench.test" -test.run '^$$' -test.bench '$(BENCH_COMPARE)' -test.benchmem \
			-test.benchtime $(BENCH_TIME) -test.timeout 30m -conc $(BENCH_CONC)) > "$$tmp/run.txt" 2>&1 || \
			{ cat "$$tmp/run.txt"; echo "bench-compare: run $$i failed"; exit 1; }; \
		grep -E '^(Benchmark|    )' "$$tmp/run.txt" | tee -a "$$out"; \
	done; \
	$(GO) run ./bench/cmd/benchtable "$$out"

bench-paired:
	$(GO) test -run '^$$' -bench '^BenchmarkPaired$$/^body=IngestBatch50$$' -benchtime $(BENCH_PAIRS)x -timeout 30m ./bench/ -args -conc $(BENCH_CONC)
	$(GO) test -run '^$$' -bench '^BenchmarkPaired$$/^body=SingleEvent$$' -benchtime $(BENCH_PAIRS)x -timeout 30m ./bench/ -args -conc $(BENCH_SINGLE_CONC)
