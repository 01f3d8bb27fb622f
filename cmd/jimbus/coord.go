package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jimbot/jimbus/coord"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// coordFlags holds the `jimbus serve` flags of the coordinator.
type coordFlags struct {
	on            bool
	gpuSlices     int
	gpuDevices    int
	gpuMemoryMB   int
	nvml          bool
	requireNVML   bool
	nvmlPoll      time.Duration
	memoryMB      int
	cpuCores      int
	claudePerHour int
	claudeBurst   int
	claudePerMin  int
	claudeInMin   int
	claudeOutMin  int
	gpuLease      time.Duration
	claudeLease   time.Duration
	memoryLease   time.Duration
	cpuLease      time.Duration
	maxLease      time.Duration
	aging         time.Duration
	maxQueue      int
}

func (c *coordFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.on, "coord", true, "serve the resource coordinator (jimbot.ResourceCoordinator) on the gRPC port")
	fs.IntVar(&c.gpuSlices, "gpu-slices", 1, "most concurrent GPU leases per device (1: exclusive time slices)")
	fs.IntVar(&c.gpuDevices, "gpu-devices", 1, "GPUs assumed when NVML is unavailable")
	fs.IntVar(&c.gpuMemoryMB, "gpu-memory-mb", 24000, "memory in MB (MiB) of each GPU assumed when NVML is unavailable")
	fs.BoolVar(&c.nvml, "nvml", true, "read the GPUs through NVML; false uses --gpu-devices and --gpu-memory-mb")
	fs.BoolVar(&c.requireNVML, "require-nvml", false, "fail at start when NVML cannot be initialised instead of falling back")
	fs.DurationVar(&c.nvmlPoll, "nvml-poll", 250*time.Millisecond, "how often the GPU snapshot is refreshed")
	fs.IntVar(&c.memoryMB, "memory-mb", 0, "MEMORY capacity in MB (0: the machine's memory)")
	fs.IntVar(&c.cpuCores, "cpu-cores", 0, "CPU capacity in cores (0: the machine's cores)")
	fs.IntVar(&c.claudePerHour, "claude-per-hour", 100, "CLAUDE_API requests per rolling hour")
	fs.IntVar(&c.claudeBurst, "claude-burst", 10, "most CLAUDE_API requests granted at once")
	fs.IntVar(&c.claudePerMin, "claude-per-minute", 0, "CLAUDE_API requests per minute (0: no per-minute limit)")
	fs.IntVar(&c.claudeInMin, "claude-input-tokens-per-minute", 0, "CLAUDE_API input tokens per minute, charged by request metadata input_tokens (0: not tracked)")
	fs.IntVar(&c.claudeOutMin, "claude-output-tokens-per-minute", 0, "CLAUDE_API output tokens per minute, reserved by metadata max_output_tokens (0: not tracked)")
	fs.DurationVar(&c.gpuLease, "gpu-lease", 300*time.Second, "GPU lease when a request gives no duration")
	fs.DurationVar(&c.claudeLease, "claude-lease", 120*time.Second, "CLAUDE_API lease when a request gives no duration")
	fs.DurationVar(&c.memoryLease, "memory-lease", time.Hour, "MEMORY lease when a request gives no duration")
	fs.DurationVar(&c.cpuLease, "cpu-lease", time.Hour, "CPU lease when a request gives no duration")
	fs.DurationVar(&c.maxLease, "coord-max-lease", 24*time.Hour, "longest lease any request may get")
	fs.DurationVar(&c.aging, "coord-aging", 30*time.Second, "waiting time worth one priority level in the queue (0 or negative: strict priority)")
	fs.IntVar(&c.maxQueue, "coord-max-queue", 1024, "most requests waiting per resource")
}

func (c *coordFlags) enabled() bool { return c.on }

func (c *coordFlags) options(logger *slog.Logger, reg prometheus.Registerer) (coord.Options, error) {
	if !c.nvml && c.requireNVML {
		return coord.Options{}, errors.New("--nvml=false and --require-nvml exclude each other")
	}
	for name, v := range map[string]int{"--gpu-slices": c.gpuSlices, "--gpu-devices": c.gpuDevices, "--gpu-memory-mb": c.gpuMemoryMB,
		"--claude-per-hour": c.claudePerHour, "--claude-burst": c.claudeBurst, "--coord-max-queue": c.maxQueue} {
		if v <= 0 {
			return coord.Options{}, fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	if c.nvmlPoll <= 0 {
		return coord.Options{}, fmt.Errorf("--nvml-poll must be positive, got %s", c.nvmlPoll)
	}
	if c.aging == 0 {
		c.aging = -1 // 0 on the command line means no aging, as negative does
	}
	return coord.Options{
		GPUSlices:             c.gpuSlices,
		GPUDevices:            c.gpuDevices,
		GPUMemoryMB:           c.gpuMemoryMB,
		DisableNVML:           !c.nvml,
		RequireNVML:           c.requireNVML,
		NVMLPoll:              c.nvmlPoll,
		MemoryMB:              c.memoryMB,
		CPUCores:              c.cpuCores,
		ClaudePerHour:         c.claudePerHour,
		ClaudeBurst:           c.claudeBurst,
		ClaudePerMinute:       c.claudePerMin,
		ClaudeInputPerMinute:  c.claudeInMin,
		ClaudeOutputPerMinute: c.claudeOutMin,
		GPULease:              c.gpuLease,
		ClaudeLease:           c.claudeLease,
		MemoryLease:           c.memoryLease,
		CPULease:              c.cpuLease,
		MaxLease:              c.maxLease,
		Aging:                 c.aging,
		MaxQueue:              c.maxQueue,
		Version:               version,
		Registerer:            reg,
		Logger:                logger,
	}, nil
}

// runCoordCommand runs `jimbus coord status|watch [--addr 127.0.0.1:50051]`: status prints
// the current allocations as a table, watch follows StreamResourceStatus until interrupted.
func runCoordCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "Usage: jimbus coord status|watch [--addr HOST:PORT] [--timeout D] [--auth-token-file F] [--tls-ca F]\n"
	if len(args) == 0 || (args[0] != "status" && args[0] != "watch") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("jimbus coord "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAddr := "127.0.0.1:50051"
	if v := os.Getenv("JIMBUS_GRPC_ADDR"); v != "" {
		defAddr = v
	}
	addr := fs.String("addr", defAddr, "gRPC address of a running jimbus (env JIMBUS_GRPC_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "status: longest wait for the answer")
	var cf clientFlags
	cf.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	dopts, err := cf.dialOptions()
	if err != nil {
		fmt.Fprintln(stderr, "jimbus coord:", err)
		return 2
	}
	conn, err := grpc.NewClient(*addr, dopts...)
	if err != nil {
		fmt.Fprintf(stderr, "jimbus coord: cannot connect to %s: %v\n", *addr, err)
		return 1
	}
	defer conn.Close()
	client := jimbotpb.NewResourceCoordinatorClient(conn)
	if sub == "status" {
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		err = coord.PrintStatus(sctx, client, stdout)
	} else {
		err = coord.Watch(ctx, client, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "jimbus coord %s: %v (is jimbus serving on %s?)\n", sub, err, *addr)
		return 1
	}
	return 0
}
