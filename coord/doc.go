// Package coord provides the resource coordinator: the jimbot.ResourceCoordinator
// gRPC service that hands out leases on the GPU, host memory, CPU cores and
// the Claude API quota to JimBot's components.
//
// # Decisions
//
// A request is decided at once when the resource is free and nobody with a
// better place waits for it; otherwise it waits in the resource's queue for
// up to its timeout (0: it does not wait). Queues order by priority with aging
// (see Options.Aging) and are FIFO within a priority; the head is served
// strictly first, so a large request is never starved by small ones. Waiters
// are woken when capacity comes back: by a release, an expiry, a GPU snapshot
// that shows less outside use, or the quota refilling; nothing polls. A request
// that can never fit (more than a device, the capacity or the burst) is denied
// at once whatever its timeout. Denials say which resource, what was asked,
// what is available and when the earliest lease ends (or when the quota
// refills), and set ResourceResponse.retry_after.
//
// Every grant is its own lease with its own token: a component may hold many.
// A lease ends when ReleaseResource presents its token (and its component,
// when given), or at expires_at, when its capacity goes back to the queue. A
// wrong token, another component's token or a second release answer
// success=false and change nothing.
//
// # Resources
//
// GPU quantities are memory in MB (MiB, as nvidia-smi prints). The inventory
// comes from NVML: a poller refreshes a snapshot every Options.NVMLPoll and
// decisions read only that snapshot. Memory used on a device but claimed by no
// lease counts against capacity; a lease claims a process by request metadata
// "pid", so a client that sends its pid is not counted twice once it allocates.
// Each device runs at most Options.GPUSlices leases at once; with several
// devices the best fit wins (a free slice and the least memory left over), and
// the grant names the device (ResourceResponse.device). When NVML cannot be
// initialised (no driver, no library, a build without cgo) the coordinator
// logs it once and uses the configured inventory; it never calls NVML again
// after a failed Init.
//
// MEMORY (MB) and CPU (cores) are plain counters with configured capacities.
// CLAUDE_API quantities are requests, drawn from a bucket of
// Options.ClaudePerHour requests per hour holding at most Options.ClaudeBurst;
// optional per-minute buckets limit requests, input units (request metadata
// "input_tokens") and output units ("max_output_tokens", reserved up front;
// release metadata "output_tokens_used" refunds the unused part).
//
// # Concurrency
//
// One mutex guards the decision state (state, a pure state machine that takes
// the time as an argument and does no I/O); gRPC handlers hold it only while
// deciding, never while waiting, sending or calling NVML. Only the poller
// goroutine calls NVML. Timers of the Clock run expiry, queue timeouts and the
// quota refill, each taking the same mutex. The fake Clock of the tests
// calls timers without holding its own lock, so the order is Server.mu ->
// clock only (the clock never calls back into the Server while locked).
//
// New starts nothing. Start initialises NVML and starts the poller; Stop
// denies waiting requests, ends status streams, stops the poller, shuts NVML
// down and is idempotent. A Server serves only between Start and Stop;
// otherwise its methods answer codes.Unavailable.
package coord
