//go:build cgo

package coord

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVMLLibrary is the NVML library the coordinator reads the GPUs through:
// go-nvml's interface, which its real library (loaded with dlopen, through
// cgo) and its mock implement. A build without cgo has no NVML
// (nvml_nocgo.go).
type NVMLLibrary = nvml.Interface

// defaultNVML is the real library; it loads libnvidia-ml.so.1 at Init.
func defaultNVML() NVMLLibrary { return nvml.New() }

// nvmlValueNotAvailable is what NVML reports for a process's memory when it
// cannot tell (in containers, for example).
const nvmlValueNotAvailable = ^uint64(0)

// returnName names an NVML return code without asking the library: after a
// failed Init no NVML function may be called, and Return.Error may call
// nvmlErrorString once the library is loaded.
func returnName(r nvml.Return) string {
	switch r {
	case nvml.SUCCESS:
		return "SUCCESS"
	case nvml.ERROR_UNINITIALIZED:
		return "ERROR_UNINITIALIZED"
	case nvml.ERROR_INVALID_ARGUMENT:
		return "ERROR_INVALID_ARGUMENT"
	case nvml.ERROR_NOT_SUPPORTED:
		return "ERROR_NOT_SUPPORTED"
	case nvml.ERROR_NO_PERMISSION:
		return "ERROR_NO_PERMISSION"
	case nvml.ERROR_ALREADY_INITIALIZED:
		return "ERROR_ALREADY_INITIALIZED"
	case nvml.ERROR_NOT_FOUND:
		return "ERROR_NOT_FOUND"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "ERROR_DRIVER_NOT_LOADED (no NVIDIA driver is running)"
	case nvml.ERROR_TIMEOUT:
		return "ERROR_TIMEOUT"
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "ERROR_LIBRARY_NOT_FOUND (libnvidia-ml.so.1 is not installed)"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "ERROR_FUNCTION_NOT_FOUND"
	case nvml.ERROR_GPU_IS_LOST:
		return "ERROR_GPU_IS_LOST"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "ERROR_LIB_RM_VERSION_MISMATCH (driver and library versions differ; reboot or reload the driver)"
	case nvml.ERROR_INSUFFICIENT_SIZE:
		return "ERROR_INSUFFICIENT_SIZE"
	case nvml.ERROR_UNKNOWN:
		return "ERROR_UNKNOWN"
	}
	return "NVML return code " + strconv.Itoa(int(r))
}

// nvmlSource reads the GPUs through NVML. Only the poller goroutine (and
// Start, before the poller runs) uses it.
type nvmlSource struct {
	lib     nvml.Interface
	handles []nvml.Device
	log     *slog.Logger
	failing []bool // per device: the last poll failed (log on change only)
	errors  func() // counts a failed NVML call; may be nil
}

// openNVML initialises lib and reads the static facts of each device. When
// Init fails it returns at once: no other NVML function is called then, not
// even Shutdown. A later failure shuts the library down again.
func openNVML(lib nvml.Interface, log *slog.Logger) (*nvmlSource, []gpuInfo, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("nvml Init: %s", returnName(ret))
	}
	fail := func(what string, ret nvml.Return) (*nvmlSource, []gpuInfo, error) {
		_ = lib.Shutdown()
		return nil, nil, fmt.Errorf("nvml %s: %s", what, returnName(ret))
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fail("DeviceGetCount", ret)
	}
	if n == 0 {
		_ = lib.Shutdown()
		return nil, nil, fmt.Errorf("nvml sees no GPU")
	}
	src := &nvmlSource{lib: lib, log: log, failing: make([]bool, n)}
	infos := make([]gpuInfo, n)
	for i := range n {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return fail(fmt.Sprintf("DeviceGetHandleByIndex(%d)", i), ret)
		}
		mem, ret := h.GetMemoryInfo()
		if ret != nvml.SUCCESS {
			return fail(fmt.Sprintf("GetMemoryInfo of device %d", i), ret)
		}
		info := gpuInfo{index: i, totalMB: int64(mem.Total / mib)}
		if name, ret := h.GetName(); ret == nvml.SUCCESS {
			info.name = name
		}
		if uuid, ret := h.GetUUID(); ret == nvml.SUCCESS {
			info.uuid = uuid
		}
		src.handles = append(src.handles, h)
		infos[i] = info
	}
	return src, infos, nil
}

// poll reads every device once.
func (s *nvmlSource) poll(now time.Time) *gpuSnapshot {
	snap := &gpuSnapshot{at: now, devices: make([]gpuSample, len(s.handles))}
	for i, h := range s.handles {
		smp := &snap.devices[i]
		mem, ret := h.GetMemoryInfo()
		if ret != nvml.SUCCESS {
			if !s.failing[i] {
				s.log.Warn("coord: cannot read GPU memory; keeping the last values", "device", i, "error", returnName(ret))
				s.failing[i] = true
			}
			if s.errors != nil {
				s.errors()
			}
			continue
		}
		if s.failing[i] {
			s.log.Info("coord: GPU readable again", "device", i)
			s.failing[i] = false
		}
		smp.ok = true
		smp.usedMB = int64(mem.Used / mib)
		if u, ret := h.GetUtilizationRates(); ret == nvml.SUCCESS {
			smp.util, smp.memUtil = int32(u.Gpu), int32(u.Memory)
		}
		smp.procs = appendProcs(smp.procs, h.GetComputeRunningProcesses)
		smp.procs = appendProcs(smp.procs, h.GetGraphicsRunningProcesses)
		slices.SortFunc(smp.procs, func(a, b gpuProc) int { return int(a.pid) - int(b.pid) })
		smp.procs = slices.CompactFunc(smp.procs, func(a, b gpuProc) bool { return a.pid == b.pid })
	}
	return snap
}

func appendProcs(dst []gpuProc, get func() ([]nvml.ProcessInfo, nvml.Return)) []gpuProc {
	ps, ret := get()
	if ret != nvml.SUCCESS {
		return dst
	}
	for _, p := range ps {
		mb := int64(-1)
		if p.UsedGpuMemory != nvmlValueNotAvailable {
			mb = int64(p.UsedGpuMemory / mib)
		}
		dst = append(dst, gpuProc{pid: p.Pid, usedMB: mb})
	}
	return dst
}

func (s *nvmlSource) close() {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		s.log.Warn("coord: nvml Shutdown failed", "error", returnName(ret))
	}
}
