// Package prefetch provides a software prefetch: Line asks the CPU to start
// loading a cache line that the caller will read soon, without waiting for
// it (PREFETCHT0 on amd64, PRFM PLDL1KEEP on arm64; nothing elsewhere).
//
// An ordinary load used for the same purpose stalls the core once its
// reorder window fills behind the miss; a prefetch retires at once, so the
// miss overlaps with whatever work comes before the real read. It reads
// nothing the Go memory model can see: it is not a data race to prefetch
// memory another goroutine is writing, and the race detector does not
// report it. Line is safe for concurrent use.
package prefetch
