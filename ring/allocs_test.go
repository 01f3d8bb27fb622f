//go:build !race

package ring

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type allocsBatch struct{ n int }

func TestAllocsRingPushPop(t *testing.T) {
	r := New[*allocsBatch](8)
	b := &allocsBatch{n: 1}
	allocs := testing.AllocsPerRun(1000, func() {
		for range 3 {
			if !r.Push(b) {
				panic("full")
			}
		}
		for range 3 {
			if _, ok := r.Pop(); !ok {
				panic("empty")
			}
		}
	})
	require.Zero(t, allocs)
}

func TestAllocsShardedPushDrain(t *testing.T) {
	s := NewSharded[*allocsBatch](4, 8)
	b := &allocsBatch{n: 1}
	dst := make([]*allocsBatch, 0, 16)
	hint := uint32(0)
	allocs := testing.AllocsPerRun(1000, func() {
		for range 10 {
			hint += 3
			if _, ok := s.Push(hint, b); !ok {
				panic("full")
			}
		}
		if !s.Wait(nil) {
			panic("Wait with items pending")
		}
		dst = s.Drain(dst[:0], cap(dst))
		if len(dst) != 10 {
			panic("short drain")
		}
	})
	require.Zero(t, allocs)
}
