// Package ring provides bounded lock-free queues that carry batches from the
// ingest handlers to the fan-out: Ring, a single-producer/single-consumer ring,
// and Sharded, N such rings fed by many producers and drained by one consumer
// in global order.
//
// # Ring
//
// Push is called by one goroutine at a time per Ring (the producer) and Pop by
// one goroutine at a time (the consumer); the two may run concurrently. If the
// producer or consumer role moves to another goroutine, the hand-over must be
// synchronized by the caller (a channel, a mutex, a WaitGroup). Len and Cap may
// be called from any goroutine; Len is a snapshot and may be stale by the time
// it returns.
//
// A value belongs to the ring from the moment Push returns true until Pop (or
// Drain) returns it: the producer must not modify what it pushed, and the
// consumer owns what it popped. Pop zeroes the slot it leaves, so the ring
// never keeps a popped pointer alive.
//
// The producer index and the consumer index live on separate cache lines, and
// each side keeps a private copy of the other side's index, re-reading the
// shared one only when the copy says the ring is full (producer) or empty
// (consumer). The consumer also hands freed slots back in batches: Pop
// publishes its index when it has popped every value it knew of, and at least
// every min(Cap/8, 64) values, so a producer that has filled the ring does not
// pull the consumer's cache line over for every slot. The price is that Push
// may report full while up to that many slots have been emptied but not yet
// handed back; they are handed back as soon as the consumer pops on or finds
// the ring empty.
//
// Push, Pop and Drain never allocate, never block and never take a lock.
//
// # Sharded
//
// Sharded is a set of N rings (shards) with any number of producers and
// exactly one consumer goroutine, which calls Drain and Wait.
//
// Exclusive producer access: every shard carries an ownership flag. A producer
// takes a shard with CompareAndSwap(0, 1) on that flag, pushes into the
// shard's ring as its single producer, and releases the flag with a store of 0.
// There is no lock shared across shards, and a producer never waits on a flag:
// Push starts at shard hint%N and, when that shard is owned by another
// producer or full, tries the next ones in turn. If every shard was full Push
// returns ok=false after one pass; if some shards were only owned by other
// producers it yields (runtime.Gosched) and makes another pass, a bounded
// number of times, before returning ok=false.
//
// Sequence numbers: while it owns a shard and after it has checked that the
// shard has room, Push takes the next global sequence number (an atomic
// counter starting at 1) and publishes the item with it. Every sequence number
// taken is therefore published, and within one shard sequence numbers
// increase.
//
// Ordering guarantee: Drain returns items in exact global sequence order with
// no gaps. It merges the heads of the shards and never returns seq n+1 before
// n; if n has been taken but not yet published (a window of a few nanoseconds
// between the counter increment and the index store, longer only if that
// producer is descheduled inside it), Drain returns what precedes n and n
// arrives on a later call. Consequently, if Push A returns before Push B
// starts (A happens before B, e.g. one client waits for each answer before its
// next request, or A's producer signals B's producer after A returned), the
// consumer receives A before B, whatever shards they used. Pushes that overlap
// in time are ordered by the sequence numbers they drew.
//
// Wait parks the consumer until something is ready without busy polling: the
// consumer sets an atomic "sleeping" flag and checks once more for a ready
// item before it parks on a 1-buffered channel; a producer, after publishing,
// clears the flag if set and makes a non-blocking send on the channel. Because
// each side writes its own variable before reading the other's (sequentially
// consistent atomics), no wakeup is lost. A wakeup may be spurious: after Wait
// returns true, Drain may return nothing.
//
// A value belongs to the Sharded queue from the moment Push returns ok=true
// until Drain returns it; Drain zeroes the slots it leaves.
package ring
