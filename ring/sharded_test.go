package ring

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewShardedCapacity(t *testing.T) {
	f := func(shards, size, wantShards, wantCap int) {
		t.Helper()
		s := NewSharded[int](shards, size)
		require.Equal(t, wantShards, s.Shards())
		require.Equal(t, wantCap, s.Cap())
		require.Equal(t, 0, s.Len())
	}
	f(0, 0, 1, 2)
	f(1, 1, 1, 2)
	f(3, 5, 3, 24)
	f(8, 1024, 8, 8192)
}

func TestShardedSeqOrder(t *testing.T) {
	s := NewSharded[string](4, 4)
	// Hints spread the values over shards in an order unrelated to seq.
	f := func(hint uint32, v string, wantSeq uint64) {
		t.Helper()
		seq, ok := s.Push(hint, v)
		require.True(t, ok)
		require.Equal(t, wantSeq, seq)
	}
	f(3, "a", 1)
	f(1, "b", 2)
	f(1, "c", 3)
	f(0, "d", 4)
	f(7, "e", 5) // 7%4 == 3
	f(2, "f", 6)
	require.Equal(t, 6, s.Len())

	got := s.Drain(nil, 100)
	require.Equal(t, []string{"a", "b", "c", "d", "e", "f"}, got)
	require.Equal(t, 0, s.Len())
	require.Empty(t, s.Drain(nil, 100))
}

func TestShardedDrainMax(t *testing.T) {
	s := NewSharded[int](3, 8)
	for i := range 10 {
		_, ok := s.Push(uint32(i*7), i)
		require.True(t, ok)
	}
	require.Empty(t, s.Drain(nil, 0))
	require.Empty(t, s.Drain(nil, -1))
	got := s.Drain(nil, 4)
	require.Equal(t, []int{0, 1, 2, 3}, got)
	got = s.Drain(got, 1) // appends
	require.Equal(t, []int{0, 1, 2, 3, 4}, got)
	require.Equal(t, []int{5, 6, 7, 8, 9}, s.Drain(nil, 100))
}

func TestShardedFull(t *testing.T) {
	s := NewSharded[int](3, 2)
	// Every push with hint 1 first fills shard 1, then moves on to 2, then 0.
	for i := range s.Cap() {
		seq, ok := s.Push(1, i)
		require.True(t, ok, "push %d", i)
		require.Equal(t, uint64(i+1), seq)
	}
	require.Equal(t, 2, s.shards[0].Len())
	require.Equal(t, 2, s.shards[1].Len())
	require.Equal(t, 2, s.shards[2].Len())

	seq, ok := s.Push(0, -1)
	require.False(t, ok, "push to full queue")
	require.Zero(t, seq)
	require.Equal(t, uint64(6), s.seq.Load(), "a failed push must not take a sequence number")

	require.Equal(t, []int{0, 1}, s.Drain(nil, 2))
	seq, ok = s.Push(2, 6) // shards 2 and 0 are full, shard 1 has room
	require.True(t, ok)
	require.Equal(t, uint64(7), seq)
	require.Equal(t, []int{2, 3, 4, 5, 6}, s.Drain(nil, 100))
}

func TestShardedSkipsOwnedShard(t *testing.T) {
	s := NewSharded[int](3, 4)
	s.shards[0].owner.Store(1) // another producer holds shard 0
	_, ok := s.Push(0, 1)
	require.True(t, ok)
	require.Equal(t, 0, s.shards[0].Len())
	require.Equal(t, 1, s.shards[1].Len())

	// Every shard owned by others: Push gives up after its bounded rounds.
	s.shards[1].owner.Store(1)
	s.shards[2].owner.Store(1)
	_, ok = s.Push(0, 2)
	require.False(t, ok)

	for i := range s.shards {
		s.shards[i].owner.Store(0)
	}
	_, ok = s.Push(0, 3)
	require.True(t, ok)
	require.Equal(t, []int{1, 3}, s.Drain(nil, 10))
}

// TestShardedDrainWaitsForGap checks that Drain never skips a sequence number
// that was taken but not yet published.
func TestShardedDrainWaitsForGap(t *testing.T) {
	s := NewSharded[string](2, 4)
	// A producer owning shard 0 has taken seq 1 but not published it yet.
	s.shards[0].owner.Store(1)
	seq1 := s.seq.Add(1)

	seq2, ok := s.Push(1, "b")
	require.True(t, ok)
	require.Equal(t, uint64(2), seq2)
	require.Empty(t, s.Drain(nil, 10), "seq 2 returned before seq 1")

	// The stalled producer publishes seq 1.
	r := &s.shards[0]
	tail := r.tail.Load()
	r.buf[tail&r.mask] = entry[string]{seq: seq1, v: "a"}
	r.tail.Store(tail + 1)
	r.owner.Store(0)
	require.Equal(t, []string{"a", "b"}, s.Drain(nil, 10))
}

func TestShardedDrainZeroesSlots(t *testing.T) {
	s := NewSharded[*int](2, 2)
	for round := range 3 {
		for i := range 4 {
			v := round*10 + i
			_, ok := s.Push(uint32(i), &v)
			require.True(t, ok)
		}
		require.Len(t, s.Drain(nil, 10), 4)
		for i := range s.shards {
			for j, e := range s.shards[i].buf {
				require.Nil(t, e.v, "shard %d slot %d", i, j)
			}
		}
	}
}

// TestShardedCausalOrder checks that a push that returned before another
// push started is drained first, even when the second push uses a shard the
// consumer would otherwise look at first.
func TestShardedCausalOrder(t *testing.T) {
	// Deterministic: push1 lands in shard 1, push2 in shard 0.
	s := NewSharded[string](2, 4)
	_, ok := s.Push(1, "push1")
	require.True(t, ok)
	_, ok = s.Push(0, "push2")
	require.True(t, ok)
	require.Equal(t, []string{"push1", "push2"}, s.Drain(nil, 10))

	// Concurrent: two producers on different shards take turns, each pushing
	// only after the other's Push returned and signalled it; the consumer
	// drains concurrently and must see the values in the order pushed.
	const n = 20_000
	si := NewSharded[int](2, 64)
	turn := [2]chan int{make(chan int), make(chan int)}
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for v := range turn[p] {
				for {
					if _, ok := si.Push(uint32(p), v); ok {
						break
					}
					time.Sleep(time.Microsecond) // full: let the consumer catch up
				}
				if v+1 < n {
					turn[1-p] <- v + 1 // signal the other producer after Push returned
				} else {
					close(turn[0])
					close(turn[1])
				}
			}
		})
	}
	turn[0] <- 0

	done := make(chan struct{})
	consumed := make(chan []int, 1)
	go func() {
		var got []int
		batch := make([]int, 0, 64)
		for len(got) < n && si.Wait(done) {
			batch = si.Drain(batch[:0], cap(batch))
			got = append(got, batch...)
		}
		consumed <- got
	}()
	wg.Wait()
	var got []int
	select {
	case got = <-consumed:
	case <-time.After(20 * time.Second):
		close(done)
		got = <-consumed
		t.Fatalf("consumer stalled after %d of %d items", len(got), n)
	}
	require.Len(t, got, n)
	for i, v := range got {
		if v != i {
			require.Equal(t, i, v, "item %d out of order", i)
		}
	}
}

// TestShardedConcurrent runs 8 producers against one consumer: every item
// arrives exactly once, in sequence order with no gap, and each producer's
// items in the order it pushed them.
func TestShardedConcurrent(t *testing.T) {
	const (
		producers = 8
		perProd   = 20_000
		total     = producers * perProd
	)
	type item struct{ p, i int }
	s := NewSharded[item](4, 64)
	seqs := make([][]uint64, producers) // seqs[p][i]: sequence number Push returned
	var wg sync.WaitGroup
	for p := range producers {
		seqs[p] = make([]uint64, perProd)
		wg.Go(func() {
			for i := range perProd {
				for {
					seq, ok := s.Push(uint32(p), item{p, i})
					if ok {
						seqs[p][i] = seq
						break
					}
					time.Sleep(time.Microsecond)
				}
			}
		})
	}

	done := make(chan struct{})
	consumed := make(chan []item, 1)
	go func() {
		got := make([]item, 0, total)
		for len(got) < total && s.Wait(done) {
			got = s.Drain(got, 256)
		}
		consumed <- got
	}()
	wg.Wait()
	var got []item
	select {
	case got = <-consumed:
	case <-time.After(20 * time.Second):
		close(done) // a lost wakeup would leave the consumer parked
		got = <-consumed
		t.Fatalf("consumer stalled after %d of %d items", len(got), total)
	}

	require.Len(t, got, total)
	next := make([]int, producers)
	for k, it := range got {
		if it.i != next[it.p] {
			require.Equal(t, next[it.p], it.i, "producer %d out of order at position %d", it.p, k)
		}
		next[it.p]++
		if want := uint64(k + 1); seqs[it.p][it.i] != want {
			require.Equal(t, want, seqs[it.p][it.i], "position %d", k)
		}
	}
	for p := range producers {
		require.Equal(t, perProd, next[p], "producer %d", p)
	}
	require.Equal(t, 0, s.Len())
	require.Empty(t, s.Drain(nil, 10))
}

func TestShardedWaitWakesOnPush(t *testing.T) {
	s := NewSharded[int](2, 4)
	woke := make(chan bool, 1)
	go func() { woke <- s.Wait(nil) }()

	time.Sleep(20 * time.Millisecond) // let the consumer park
	select {
	case <-woke:
		t.Fatal("Wait returned before anything was pushed")
	default:
	}
	_, ok := s.Push(1, 42)
	require.True(t, ok)
	select {
	case ok := <-woke:
		require.True(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake up on Push")
	}
	require.Equal(t, []int{42}, s.Drain(nil, 10))
}

func TestShardedWaitReturnsAtOnceWhenPending(t *testing.T) {
	s := NewSharded[int](2, 4)
	_, ok := s.Push(1, 1)
	require.True(t, ok)
	done := make(chan struct{})
	close(done)
	require.True(t, s.Wait(done), "items pending") // ready wins over done
	require.Equal(t, []int{1}, s.Drain(nil, 10))
	require.False(t, s.Wait(done), "done closed and nothing pending")
}

func TestShardedWaitDone(t *testing.T) {
	s := NewSharded[int](2, 4)
	done := make(chan struct{})
	res := make(chan bool, 1)
	go func() { res <- s.Wait(done) }()
	time.Sleep(20 * time.Millisecond)
	close(done)
	select {
	case ok := <-res:
		require.False(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after done was closed")
	}
	require.Zero(t, s.sleeping.Load())
}

// TestShardedWaitNoLostWakeup has one producer push single items while the
// consumer parks between them as often as it can.
func TestShardedWaitNoLostWakeup(t *testing.T) {
	const n = 20_000
	s := NewSharded[int](2, 4)
	go func() {
		for i := range n {
			for {
				if _, ok := s.Push(uint32(i), i); ok {
					break
				}
				time.Sleep(time.Microsecond)
			}
		}
	}()
	done := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(done) })
	defer timer.Stop()
	got := 0
	batch := make([]int, 0, 4)
	for got < n && s.Wait(done) {
		batch = s.Drain(batch[:0], 1)
		for _, v := range batch {
			require.Equal(t, got, v)
			got++
		}
	}
	require.Equal(t, n, got, "consumer stalled: lost wakeup")
}
