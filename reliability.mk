# Reliability targets, included by the Makefile (also usable on their own:
# make -f reliability.mk fuzz-ci).
#
#   fuzz-ci  runs every fuzz target briefly (FUZZTIME each, about 60 s in all
#            on 2 cores). A failure leaves the input that broke it in the
#            package's testdata/fuzz/<Target>/; commit it with the fix, it then
#            runs with every `go test`. FUZZTIME is a count of inputs, not a
#            duration: with a duration, Go 1.26's fuzz coordinator can report
#            its own deadline as a failure ("context deadline exceeded", no
#            input written; golang/go#75804, fixed in Go 1.27) when a busy
#            machine delays a worker at the end.
#   soak     builds cmd/jimbus and cmd/loadtest, runs the binary on loopback
#            and replays the generated game sessions for SOAK_DURATION; fails
#            on any loss, duplicate, unexpected status, goroutine growth or RSS
#            growth (cmd/jimbus/soak_test.go). CI uses a short SOAK_DURATION.

GO               ?= go
FUZZTIME         ?= 20000x
FUZZMINIMIZETIME ?= 1s
SOAK_DURATION    ?= 5m
SOAK_GAMES       ?= 16
SOAK_SPEED       ?= 10

# package:Target, one `go test -fuzz` each.
FUZZ_TARGETS := \
	./route:FuzzMatch \
	./route:FuzzCompile \
	./ingest:FuzzParseCommands \
	./ingest/decode:FuzzPrepass \
	./ingest/decode:FuzzDecode \
	./ingest/decode:FuzzDecodeNDJSON \
	./ingest/decode:FuzzFromProto \
	./grpcout:FuzzCodec

.PHONY: fuzz-ci soak

fuzz-ci:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) $$pkg; \
	done

# The test bounds itself (every process it starts has a deadline of
# SOAK_DURATION plus 3 minutes), hence -timeout 0.
soak:
	JIMBUS_SOAK_DURATION=$(SOAK_DURATION) JIMBUS_SOAK_GAMES=$(SOAK_GAMES) JIMBUS_SOAK_SPEED=$(SOAK_SPEED) \
		$(GO) test -run '^TestSoak$$' -count=1 -timeout 0 -v ./cmd/jimbus
