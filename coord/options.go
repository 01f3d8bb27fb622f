package coord

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Server. The zero value works: every field documents
// its default, which a zero value selects. Negative numbers are rejected by New
// unless a field says otherwise.
type Options struct {
	// GPUSlices is the most leases that run at once on one GPU: each lease is a
	// compute time slice of the device. Default 1 (exclusive slices).
	GPUSlices int

	// GPUDevices is the number of GPUs of the fallback inventory, used when
	// NVML cannot be initialised or DisableNVML is set. Default 1.
	GPUDevices int

	// GPUMemoryMB is the memory of each fallback GPU in MB (MiB). Default 24000.
	GPUMemoryMB int

	// NVML is the NVML library that Start initialises. Default nil: the real
	// library, nvml.New(), which loads libnvidia-ml.so.1 at Start. Tests pass
	// a mock (github.com/NVIDIA/go-nvml/pkg/nvml/mock). A build without cgo
	// has no NVML: Start falls back (or fails with RequireNVML) and says so.
	NVML NVMLLibrary

	// DisableNVML skips NVML altogether and uses the fallback inventory.
	// Default false.
	DisableNVML bool

	// RequireNVML makes Start fail when NVML cannot be initialised or sees
	// no device, instead of falling back to the configured inventory.
	// Default false.
	RequireNVML bool

	// NVMLPoll is how often the background poller refreshes the GPU snapshot
	// that decisions read. Default 250ms.
	NVMLPoll time.Duration

	// MemoryMB is the MEMORY capacity in MB (MiB). Default: the machine's
	// MemTotal from /proc/meminfo, or 32768 where that cannot be read.
	MemoryMB int

	// CPUCores is the CPU capacity in cores. Default runtime.NumCPU().
	CPUCores int

	// ClaudePerHour is the CLAUDE_API quota: requests per rolling hour, the
	// refill rate of its bucket. Default 100.
	ClaudePerHour int

	// ClaudeBurst is the most CLAUDE_API requests granted at once, the size of
	// the hourly bucket. Default 10.
	ClaudeBurst int

	// ClaudePerMinute, when positive, adds a bucket of that many requests per
	// minute (refilled continuously). Default 0: no per-minute request bucket.
	ClaudePerMinute int

	// ClaudeInputPerMinute, when positive, adds a bucket of input units (the
	// API's input tokens) per minute, charged with request metadata
	// "input_tokens". Default 0: not tracked.
	ClaudeInputPerMinute int

	// ClaudeOutputPerMinute, when positive, adds a bucket of output units
	// per minute, reserved with request metadata "max_output_tokens" and
	// partly refunded by release metadata "output_tokens_used". Default 0:
	// not tracked.
	ClaudeOutputPerMinute int

	// GPULease is the lease of a GPU request that gives no duration.
	// Default 300s.
	GPULease time.Duration

	// ClaudeLease is the lease of a CLAUDE_API request that gives no duration:
	// the window in which releasing it refunds unused output. Default 120s.
	ClaudeLease time.Duration

	// MemoryLease is the lease of a MEMORY request that gives no duration.
	// Default 1h.
	MemoryLease time.Duration

	// CPULease is the lease of a CPU request that gives no duration.
	// Default 1h.
	CPULease time.Duration

	// MaxLease caps any requested duration. Default 24h.
	MaxLease time.Duration

	// Aging is how much waiting time is worth one priority level: a request
	// that has waited k*Aging is served before newer requests up to k levels
	// above it, so LOW is never starved. Default 30s; negative means strict
	// priority with no aging.
	Aging time.Duration

	// MaxQueue is the most requests that may wait per resource; more are
	// denied at once. Default 1024.
	MaxQueue int

	// StreamHeartbeat is the longest StreamResourceStatus stays silent: it
	// resends the status after this long even without a change. Default 5s.
	StreamHeartbeat time.Duration

	// Version is what HealthCheck reports. Default "dev".
	Version string

	// Registerer receives the jimbus_coord_* metrics. Default nil: no metrics.
	Registerer prometheus.Registerer

	// Logger receives the few events worth logging (NVML fallback, poll
	// errors). Default slog.Default().
	Logger *slog.Logger

	// Clock is the time source for leases, queues, quota refill and polling.
	// Default: the system clock. Tests pass a fake clock.
	Clock Clock
}

// Clock is the time source of a Server.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless the
	// returned Timer is stopped first. It must not call f before returning.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by Clock.AfterFunc.
type Timer interface {
	// Stop prevents the call; it reports whether it did (false when the call
	// has already started or the timer was stopped).
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// ErrOptions is wrapped by every validation error of New.
var ErrOptions = errors.New("coord: invalid options")

// resolve validates o and returns a copy with every default filled in.
func (o Options) resolve() (Options, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"GPUSlices", &o.GPUSlices, 1},
		{"GPUDevices", &o.GPUDevices, 1},
		{"GPUMemoryMB", &o.GPUMemoryMB, 24000},
		{"MemoryMB", &o.MemoryMB, 0},
		{"CPUCores", &o.CPUCores, 0},
		{"ClaudePerHour", &o.ClaudePerHour, 100},
		{"ClaudeBurst", &o.ClaudeBurst, 10},
		{"ClaudePerMinute", &o.ClaudePerMinute, 0},
		{"ClaudeInputPerMinute", &o.ClaudeInputPerMinute, 0},
		{"ClaudeOutputPerMinute", &o.ClaudeOutputPerMinute, 0},
		{"MaxQueue", &o.MaxQueue, 1024},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return o, fmt.Errorf("%w: %s must not be negative, got %d", ErrOptions, f.name, *f.v)
		}
		if *f.v > maxQuantity {
			return o, fmt.Errorf("%w: %s must be at most %d, got %d", ErrOptions, f.name, maxQuantity, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"NVMLPoll", &o.NVMLPoll, 250 * time.Millisecond},
		{"GPULease", &o.GPULease, 300 * time.Second},
		{"ClaudeLease", &o.ClaudeLease, 120 * time.Second},
		{"MemoryLease", &o.MemoryLease, time.Hour},
		{"CPULease", &o.CPULease, time.Hour},
		{"MaxLease", &o.MaxLease, 24 * time.Hour},
		{"StreamHeartbeat", &o.StreamHeartbeat, 5 * time.Second},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return o, fmt.Errorf("%w: %s must not be negative, got %s", ErrOptions, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if o.Aging == 0 {
		o.Aging = 30 * time.Second
	}
	if o.DisableNVML && o.RequireNVML {
		return o, fmt.Errorf("%w: DisableNVML and RequireNVML exclude each other", ErrOptions)
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = machineMemoryMB()
	}
	if o.CPUCores == 0 {
		o.CPUCores = runtime.NumCPU()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return o, nil
}

// maxQuantity bounds every capacity so that sums fit the int32 fields of the
// protocol.
const maxQuantity = 1 << 30

// machineMemoryMB returns MemTotal of /proc/meminfo in MiB, or 32768.
func machineMemoryMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 32768
	}
	defer f.Close()
	if mb := parseMemTotalMB(f); mb > 0 {
		return mb
	}
	return 32768
}

// parseMemTotalMB reads the MemTotal line ("MemTotal:  32768000 kB") of a
// /proc/meminfo and returns it in MiB, or 0.
func parseMemTotalMB(r io.Reader) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("MemTotal:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return int(min(kb/1024, maxQuantity))
	}
	return 0
}
