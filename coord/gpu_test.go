//go:build cgo

package coord

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func nvmlOptions(clk Clock, lib nvml.Interface) Options {
	o := testOptions(clk)
	o.DisableNVML = false
	o.NVML = lib
	return o
}

func TestNVMLSnapshotOneDevice(t *testing.T) {
	clk := newFakeClock()
	g := &fakeGPU{name: "NVIDIA GeForce RTX 4090", uuid: "GPU-aaaa", totalMB: 24564, usedMB: 300, util: 40}
	g.set(300, proc(1234, 250))
	s := startServer(t, nvmlOptions(clk, mockNVML(g)))
	st := statusOf(t, s, gpuR)
	require.Equal(t, "nvml", st.GetSource())
	require.EqualValues(t, 24564, st.GetTotalCapacity())
	require.EqualValues(t, 24564-300, st.GetAvailable())
	require.Len(t, st.GetDevices(), 1)
	d := st.GetDevices()[0]
	require.Equal(t, "GPU-aaaa", d.GetUuid())
	require.Equal(t, "NVIDIA GeForce RTX 4090", d.GetName())
	require.EqualValues(t, 300, d.GetUsedMb())
	require.EqualValues(t, 300, d.GetExternalMb())
	require.EqualValues(t, 40, d.GetUtilizationPercent())
	require.Len(t, d.GetProcesses(), 1)
	require.EqualValues(t, 1234, d.GetProcesses()[0].GetPid())
	require.Zero(t, st.GetSnapshotAge().AsDuration())

	r := mustGrant(t, s, newReq("trainer", gpuR, 4000))
	require.Equal(t, "GPU-aaaa", r.GetDevice())
	require.Equal(t, "granted on GPU GPU-aaaa", r.GetMessage())

	clk.Advance(100 * time.Millisecond)
	require.Equal(t, 100*time.Millisecond, statusOf(t, s, gpuR).GetSnapshotAge().AsDuration())
}

func TestNVMLBestFitAcrossDevices(t *testing.T) {
	clk := newFakeClock()
	small := &fakeGPU{name: "small", uuid: "GPU-small", totalMB: 16000}
	big := &fakeGPU{name: "big", uuid: "GPU-big", totalMB: 24000}
	o := nvmlOptions(clk, mockNVML(small, big))
	o.GPUSlices = 4
	s := startServer(t, o)
	f := func(qty int32, want string) *jimbotpb.ResourceResponse {
		t.Helper()
		r := mustGrant(t, s, newReq("c", gpuR, qty))
		require.Equal(t, want, r.GetDevice(), "%d MB", qty)
		checkInvariant(t, s)
		return r
	}
	f(12000, "GPU-small") // leaves 4000 there vs 12000 on big
	f(10000, "GPU-big")   // small has only 4000
	f(4000, "GPU-small")  // exact fit
	f(14000, "GPU-big")   // exact fit
	d := ask(t, s, newReq("c", gpuR, 1))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "available 0 MB of 40000 MB on 2 device(s), 4 of 8 slices busy")
	// Larger than any device: denied at once.
	d = ask(t, s, newReq("c", gpuR, 30000, timeout(time.Hour)))
	require.Contains(t, d.GetMessage(), "more than the largest device has (24000 MB)")
}

func TestGPUTimeSlices(t *testing.T) {
	clk := newFakeClock()
	// Default: one slice per device, even when memory is left.
	s := startServer(t, testOptions(clk))
	a := mustGrant(t, s, newReq("ray", gpuR, 2000, lasting(100*time.Millisecond)))
	d := ask(t, s, newReq("ray", gpuR, 2000))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "1 of 1 slices busy")
	require.Contains(t, d.GetMessage(), "in 100ms")
	require.Equal(t, 100*time.Millisecond, d.GetRetryAfter().AsDuration())
	ch := pending(s, newReq("ray", gpuR, 2000, timeout(time.Second)))
	waitQueued(t, s, gpuR, 1)
	clk.Advance(100 * time.Millisecond) // the 100 ms slice ends
	require.Equal(t, granted, recv(t, ch).GetStatus())
	require.False(t, release(t, s, a.GetToken(), "").GetSuccess(), "expired")

	// --gpu-slices 2: two at once, on each of two devices.
	o := testOptions(clk)
	o.GPUSlices, o.GPUDevices = 2, 2
	s2 := startServer(t, o)
	devs := map[string]int{}
	for range 4 {
		devs[mustGrant(t, s2, newReq("ray", gpuR, 1000)).GetDevice()]++
	}
	require.Equal(t, map[string]int{"0": 2, "1": 2}, devs)
	require.Equal(t, denied, ask(t, s2, newReq("ray", gpuR, 1000)).GetStatus())
	checkInvariant(t, s2)
}

func TestGPUExternalMemoryCounts(t *testing.T) {
	clk := newFakeClock()
	g := &fakeGPU{name: "gpu", uuid: "GPU-x", totalMB: 24000}
	g.set(6000, proc(4242, 6000)) // somebody else's job
	o := nvmlOptions(clk, mockNVML(g))
	o.GPUSlices = 4
	s := startServer(t, o)

	d := ask(t, s, newReq("trainer", gpuR, 20000))
	require.Equal(t, denied, d.GetStatus())
	require.Contains(t, d.GetMessage(), "available 18000 MB of 24000 MB")
	require.Contains(t, d.GetMessage(), "6000 MB used outside the coordinator's leases")
	a := mustGrant(t, s, newReq("trainer", gpuR, 18000))

	// The outside job ends: the next poll (250 ms) wakes the waiter.
	ch := pending(s, newReq("eval", gpuR, 6000, timeout(time.Minute)))
	waitQueued(t, s, gpuR, 1)
	g.set(0)
	clk.Advance(249 * time.Millisecond)
	require.Equal(t, 1, queued(s, gpuR))
	advancePoll(t, s, clk, time.Millisecond)
	require.Equal(t, granted, recv(t, ch).GetStatus())
	checkInvariant(t, s)

	// A lease that names its pid is not counted twice once the process
	// allocates; a process without a claim is.
	require.True(t, release(t, s, a.GetToken(), "").GetSuccess())
	b := mustGrant(t, s, newReq("infer", gpuR, 8000, meta("pid", "777")))
	g.set(7000+500, proc(777, 7000), proc(888, 500))
	advancePoll(t, s, clk, 250*time.Millisecond)
	st := statusOf(t, s, gpuR)
	dev := st.GetDevices()[0]
	require.EqualValues(t, 500, dev.GetExternalMb(), "only pid 888 is outside")
	require.EqualValues(t, 24000-6000-8000-500, dev.GetAvailableMb())
	require.Equal(t, "infer", dev.GetProcesses()[0].GetClaimedBy())
	require.Empty(t, dev.GetProcesses()[1].GetClaimedBy())
	// A claimed process using more than its lease: the excess is outside use.
	g.set(9000+500, proc(777, 9000), proc(888, 500))
	advancePoll(t, s, clk, 250*time.Millisecond)
	require.EqualValues(t, 1500, statusOf(t, s, gpuR).GetDevices()[0].GetExternalMb())
	// Released: the process's memory is outside use until it frees it.
	require.True(t, release(t, s, b.GetToken(), "").GetSuccess())
	require.EqualValues(t, 9500, statusOf(t, s, gpuR).GetDevices()[0].GetExternalMb())
	checkInvariant(t, s)
}

func TestNVMLPollFailureKeepsLastValues(t *testing.T) {
	clk := newFakeClock()
	g := &fakeGPU{name: "gpu", uuid: "GPU-x", totalMB: 24000}
	g.set(1000)
	var logs bytes.Buffer
	o := nvmlOptions(clk, mockNVML(g))
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := startServer(t, o)
	g.setFail(true)
	g.set(5000)
	for range 4 {
		advancePoll(t, s, clk, 250*time.Millisecond)
	}
	dev := statusOf(t, s, gpuR).GetDevices()[0]
	require.EqualValues(t, 1000, dev.GetUsedMb())
	require.Equal(t, 1, strings.Count(logs.String(), "cannot read GPU memory"), "logged once")
	require.Contains(t, logs.String(), "ERROR_GPU_IS_LOST")
	g.setFail(false)
	advancePoll(t, s, clk, 250*time.Millisecond)
	require.EqualValues(t, 5000, statusOf(t, s, gpuR).GetDevices()[0].GetUsedMb())
	require.Contains(t, logs.String(), "GPU readable again")
}

func TestNVMLInitFailureFallsBackWithoutAnotherCall(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED} {
		t.Run(returnName(ret), func(t *testing.T) {
			clk := newFakeClock()
			// Only Init is mocked: any other call panics ("method is nil but
			// ... was just called"), which fails the test.
			lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
			var logs bytes.Buffer
			o := nvmlOptions(clk, lib)
			o.GPUDevices, o.GPUMemoryMB = 2, 8000
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			s, err := New(o)
			require.NoError(t, err)
			require.NoError(t, s.Start(context.Background()))

			st := statusOf(t, s, gpuR)
			require.True(t, strings.HasPrefix(st.GetSource(), "fallback: nvml Init: "+returnName(ret)), st.GetSource())
			require.Len(t, st.GetDevices(), 2)
			require.EqualValues(t, 16000, st.GetTotalCapacity())
			require.Nil(t, st.GetSnapshotAge())
			r := mustGrant(t, s, newReq("trainer", gpuR, 8000))
			require.Equal(t, "0", r.GetDevice())
			clk.Advance(10 * time.Second) // no poller runs
			require.Equal(t, 1, strings.Count(logs.String(), "NVML unavailable"), "logged once")

			require.NoError(t, s.Stop(context.Background()))
			require.Len(t, lib.InitCalls(), 1)
			require.Empty(t, lib.ShutdownCalls())
			require.Empty(t, lib.DeviceGetCountCalls())
			require.Empty(t, lib.DeviceGetHandleByIndexCalls())
			require.Empty(t, lib.ErrorStringCalls())
		})
	}
}

func TestRequireNVML(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }}
	o := nvmlOptions(newFakeClock(), lib)
	o.RequireNVML = true
	s, err := New(o)
	require.NoError(t, err)
	err = s.Start(context.Background())
	require.ErrorContains(t, err, "NVML is required: nvml Init: ERROR_DRIVER_NOT_LOADED")
	require.NoError(t, s.Stop(context.Background()))

	// No device after a good Init: fall back (or fail), and shut NVML down.
	lib = mockNVML()
	o = nvmlOptions(newFakeClock(), lib)
	s = startServer(t, o)
	require.Equal(t, "fallback: nvml sees no GPU", statusOf(t, s, gpuR).GetSource())
	require.Len(t, lib.ShutdownCalls(), 1)
}

func TestRealNVMLPath(t *testing.T) {
	// The real library: on a machine without a driver this is the fallback
	// path (dlopen fails); on a GPU machine it reads the devices.
	o := testOptions(systemClock{})
	o.DisableNVML = false
	s := startServer(t, o)
	st := statusOf(t, s, gpuR)
	t.Logf("GPU source: %s, %d device(s)", st.GetSource(), len(st.GetDevices()))
	if st.GetSource() != "nvml" {
		require.Contains(t, st.GetSource(), "fallback: nvml Init")
		require.EqualValues(t, 24000, st.GetTotalCapacity())
	}
	r := mustGrant(t, s, newReq("trainer", gpuR, 1024))
	require.True(t, release(t, s, r.GetToken(), "trainer").GetSuccess())
}

func TestStartStopLeaksNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := &fakeGPU{name: "gpu", uuid: "GPU-x", totalMB: 24000}
	lib := mockNVML(g)
	o := nvmlOptions(systemClock{}, lib) // real timers: the poller really runs
	o.NVMLPoll = time.Millisecond
	s, err := New(o)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	r := mustGrant(t, s, newReq("a", gpuR, 1000, lasting(time.Hour)))
	ch := pending(s, newReq("b", gpuR, 1000, timeout(time.Hour)))
	waitQueued(t, s, gpuR, 1)
	require.Eventually(t, func() bool { return g.memoryReads() > 3 }, 5*time.Second, time.Millisecond,
		"Start reads twice, then the poller")
	require.NoError(t, s.Stop(context.Background()))
	w := recv(t, ch)
	require.Equal(t, denied, w.GetStatus())
	require.Contains(t, w.GetMessage(), "stopping")
	require.NoError(t, s.Stop(context.Background()))
	require.Len(t, lib.ShutdownCalls(), 1)
	reads := g.memoryReads()
	time.Sleep(10 * time.Millisecond)
	require.Equal(t, reads, g.memoryReads(), "no poll after Stop")
	_, err = s.ReleaseResource(context.Background(), &jimbotpb.ReleaseRequest{Token: r.GetToken()})
	require.ErrorContains(t, err, "not running")
}

// fakeGPU is one simulated device behind a go-nvml mock.
type fakeGPU struct {
	mu      sync.Mutex
	name    string
	uuid    string
	totalMB uint64
	usedMB  uint64
	util    uint32
	procs   []nvml.ProcessInfo
	failMem bool
	reads   int // GetMemoryInfo calls
}

func (g *fakeGPU) set(usedMB uint64, procs ...nvml.ProcessInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.usedMB = usedMB
	g.procs = procs
}

func (g *fakeGPU) memoryReads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reads
}

func (g *fakeGPU) setFail(fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failMem = fail
}

func proc(pid uint32, mb uint64) nvml.ProcessInfo {
	return nvml.ProcessInfo{Pid: pid, UsedGpuMemory: mb * mib}
}

func (g *fakeGPU) device() *mock.Device {
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return g.name, nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) { return g.uuid, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.reads++
			if g.failMem {
				return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST
			}
			return nvml.Memory{Total: g.totalMB * mib, Used: g.usedMB * mib, Free: (g.totalMB - g.usedMB) * mib}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return nvml.Utilization{Gpu: g.util, Memory: g.util / 2}, nvml.SUCCESS
		},
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return slices.Clone(g.procs), nvml.SUCCESS
		},
		GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			return nil, nvml.ERROR_NOT_SUPPORTED
		},
	}
}

// mockNVML returns a go-nvml mock that shows gpus.
func mockNVML(gpus ...*fakeGPU) *mock.Interface {
	devs := make([]nvml.Device, len(gpus))
	for i, g := range gpus {
		devs[i] = g.device()
	}
	return &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}
