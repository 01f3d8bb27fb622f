//go:build cgo

package coord

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPrintStatus(t *testing.T) {
	clk := newFakeClock()
	g := &fakeGPU{name: "RTX", uuid: "GPU-1", totalMB: 24000}
	g.set(500, proc(99, 500))
	o := nvmlOptions(clk, mockNVML(g))
	o.ClaudeOutputPerMinute = 8000
	s, c := startGRPC(t, o)

	var out bytes.Buffer
	require.NoError(t, PrintStatus(context.Background(), c, &out))
	require.Contains(t, out.String(), "no allocations")

	mustGrant(t, s, newReq("trainer", gpuR, 4000, named("train-1"), prio(high), lasting(5*time.Minute)))
	mustGrant(t, s, newReq("kg", memR, 2048, named("kg-1")))
	out.Reset()
	require.NoError(t, PrintStatus(context.Background(), c, &out))
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"RESOURCE    UNIT      CAPACITY  ALLOCATED  AVAILABLE  QUEUED  LEASES",
		"GPU         MB        24000     4000       19500      0       1",
		"MEMORY      MB        32768     2048       30720      0       1",
		"CPU         cores     16        0          16         0       0",
		"GPU inventory: nvml, snapshot 0s old",
		"RTX GPU-1",
		"99:500MB",
		"output_per_minute",
		"GPU       trainer    train-1  4000 MB   HIGH      GPU-1   03:04:05   03:09:05 (in 5m0s)",
		"MEMORY    kg         kg-1     2048 MB   NORMAL    -       03:04:05   04:04:05 (in 1h0m0s)",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "no allocations")
}

func TestWatchFollowsTheStream(t *testing.T) {
	clk := newFakeClock()
	s, c := startGRPC(t, testOptions(clk))
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, c, &out) }()
	require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") == 4 }, 5*time.Second, time.Millisecond)
	mustGrant(t, s, newReq("trainer", gpuR, 4000))
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "GPU        allocated 4000/24000 MB, available 20000, queued 0, leases 1")
	},
		5*time.Second, time.Millisecond, out.String())
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestFormatStatusLine(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	line := FormatStatusLine(at, &jimbotpb.ResourceStatus{
		Resource: gpuR, TotalCapacity: 24000, Allocated: 4000, Available: 20000, Unit: "MB",
		Devices: []*jimbotpb.GpuDevice{{Index: 0, UsedMb: 4100, ExternalMb: 100, UtilizationPercent: 55, ActiveLeases: 1, Slices: 1}},
	})
	require.Equal(t, "03:04:05.006 GPU        allocated 4000/24000 MB, available 20000, queued 0, leases 0; gpu0 used 4100 MB, external 100 MB, util 55%, leases 1/1\n", line)
}
