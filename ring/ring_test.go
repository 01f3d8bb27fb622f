package ring

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewRoundsCapacity(t *testing.T) {
	f := func(size, want int) {
		t.Helper()
		r := New[int](size)
		require.Equal(t, want, r.Cap(), "size %d", size)
		require.Equal(t, 0, r.Len())
	}
	f(-5, 2)
	f(0, 2)
	f(1, 2)
	f(2, 2)
	f(3, 4)
	f(4, 4)
	f(5, 8)
	f(1000, 1024)
	f(1024, 1024)
	f(1025, 2048)
}

func TestRingFullEmpty(t *testing.T) {
	f := func(size int) {
		t.Helper()
		r := New[int](size)
		_, ok := r.Pop()
		require.False(t, ok, "pop from empty ring")
		for i := range r.Cap() {
			require.True(t, r.Push(i), "push %d of %d", i, r.Cap())
			require.Equal(t, i+1, r.Len())
		}
		require.False(t, r.Push(-1), "push to full ring")
		require.Equal(t, r.Cap(), r.Len())
		for i := range r.Cap() {
			v, ok := r.Pop()
			require.True(t, ok)
			require.Equal(t, i, v)
		}
		_, ok = r.Pop()
		require.False(t, ok, "pop from drained ring")
		require.Equal(t, 0, r.Len())
		// Room again after draining.
		require.True(t, r.Push(7))
	}
	f(2)
	f(4)
	f(64)
}

func TestRingWraparound(t *testing.T) {
	f := func(size, rounds, perRound int) {
		t.Helper()
		r := New[int](size)
		next, want := 0, 0
		for range rounds {
			for range perRound {
				require.True(t, r.Push(next))
				next++
			}
			for range perRound {
				v, ok := r.Pop()
				require.True(t, ok)
				require.Equal(t, want, v)
				want++
			}
			require.Equal(t, 0, r.Len())
		}
	}
	f(2, 100, 1)
	f(2, 100, 2)
	f(4, 100, 3) // indexes cross the end at a different slot each round
	f(8, 50, 7)
	f(8, 50, 8)
}

func TestRingPopZeroesSlot(t *testing.T) {
	r := New[*int](4)
	for round := range 3 { // cover every slot, including after wraparound
		for i := range 3 {
			v := round*10 + i
			require.True(t, r.Push(&v))
		}
		for range 3 {
			h := r.next
			p, ok := r.Pop()
			require.True(t, ok)
			require.NotNil(t, p)
			require.Nil(t, r.buf[h&r.mask], "slot %d still references the popped value", h&r.mask)
		}
	}
	for i, p := range r.buf {
		require.Nil(t, p, "slot %d", i)
	}
}

func TestRingPopHandsBackSlotsInBatches(t *testing.T) {
	r := New[int](1024) // hands back every 64 slots
	for i := range r.Cap() {
		require.True(t, r.Push(i))
	}
	for range 63 {
		_, ok := r.Pop()
		require.True(t, ok)
	}
	require.False(t, r.Push(-1), "63 freed slots are not handed back yet")
	_, ok := r.Pop()
	require.True(t, ok)
	for i := range 64 {
		require.True(t, r.Push(i), "push %d into handed-back slots", i)
	}
	require.False(t, r.Push(-1))
	require.Equal(t, r.Cap(), r.Len())

	// Popping everything the consumer knows of hands back the rest at once.
	r = New[int](1024)
	for i := range 10 {
		require.True(t, r.Push(i))
	}
	for range 10 {
		_, ok := r.Pop()
		require.True(t, ok)
	}
	require.Equal(t, 0, r.Len())
}

// TestRingConcurrent moves 1e6 ints from one producer goroutine to one
// consumer goroutine; run it under -race.
func TestRingConcurrent(t *testing.T) {
	const n = 1_000_000
	r := New[int](256)
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			for !r.Push(i) {
				runtime.Gosched()
			}
		}
		errc <- nil
	}()
	for want := range n {
		v, ok := r.Pop()
		for !ok {
			runtime.Gosched()
			v, ok = r.Pop()
		}
		if v != want {
			require.Equal(t, want, v, "out of order")
		}
	}
	require.NoError(t, <-errc)
	_, ok := r.Pop()
	require.False(t, ok)
	require.Equal(t, 0, r.Len())
}
