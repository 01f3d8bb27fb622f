package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/jimbot/jimbus/ingest/decode"
	"github.com/jimbot/jimbus/route"
)

// limitFlags are the `jimbus serve` flags of the input limits that are not
// in config itself (--max-body, --max-batch, --command-queue,
// --max-subscribers are).
type limitFlags struct {
	maxDepth    int
	maxString   int
	maxPatterns int
}

func (c *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&c.maxDepth, "max-depth", decode.DefaultMaxDepth,
		"deepest JSON nesting of an event; deeper is rejected to system.deadletter (\"nesting too deep\")")
	fs.IntVar(&c.maxString, "max-string", decode.DefaultMaxStringLen,
		"longest envelope string of an event in bytes (type, subtype, source, event_id, priority, member names, "+
			"metadata keys and values); longer rejects the event to system.deadletter. The payload is bounded by --max-body only")
	fs.IntVar(&c.maxPatterns, "max-patterns", route.MaxPatterns,
		fmt.Sprintf("most topic patterns one subscription may list, 1 to %d; more is refused with InvalidArgument", route.MaxPatterns))
}

// validateLimits checks every limit flag, so that a bad value stops the
// start with a message that names the flag (rather than falling back to a
// default or failing deep inside a package).
func (c *config) validateLimits() error {
	var errs []error
	atLeast := func(name string, v, min int) {
		if v < min {
			errs = append(errs, fmt.Errorf("--%s must be at least %d, got %d", name, min, v))
		}
	}
	atLeast("max-body", c.maxBody, 1)
	atLeast("max-batch", c.maxEvents, 1)
	atLeast("command-queue", c.commandQueue, 1)
	atLeast("max-subscribers", c.maxSubs, 1)
	atLeast("ring-size", c.ringSize, 1)
	atLeast("ring-shards", c.ringShards, 0)
	atLeast("subscriber-queue", c.queueSize, 1)
	atLeast("send-batch", c.maxBatch, 1)
	atLeast("dedup-max", c.dedupMax, 0)
	atLeast("max-depth", c.limits.maxDepth, 4) // envelope, events array, event, payload
	atLeast("max-string", c.limits.maxString, 1)
	if p := c.limits.maxPatterns; p < 1 || p > route.MaxPatterns {
		errs = append(errs, fmt.Errorf("--max-patterns must be between 1 and %d, got %d", route.MaxPatterns, p))
	}
	return errors.Join(errs...)
}
