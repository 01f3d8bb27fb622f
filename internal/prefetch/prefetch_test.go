package prefetch

import (
	"testing"
	"unsafe"
)

// TestLine prefetches every line of a buffer, its ends included, and
// checks that nothing changed and nothing was allocated.
func TestLine(t *testing.T) {
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	allocs := testing.AllocsPerRun(10, func() {
		for i := 0; i < len(buf); i += 64 {
			Line(unsafe.Pointer(&buf[i]))
		}
		Line(unsafe.Pointer(&buf[len(buf)-1]))
	})
	if allocs != 0 {
		t.Fatalf("Line allocates: %v a run", allocs)
	}
	for i := range buf {
		if buf[i] != byte(i) {
			t.Fatalf("buf[%d] changed", i)
		}
	}
}

// BenchmarkLine is the cost of one call on a line already in cache.
func BenchmarkLine(b *testing.B) {
	var x [64]byte
	for b.Loop() {
		Line(unsafe.Pointer(&x))
	}
}
