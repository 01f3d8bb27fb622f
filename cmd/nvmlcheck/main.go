// Command nvmlcheck runs the resource coordinator against the real NVML
// library and prints what it sees and decides: the device snapshot (name,
// memory, utilization, processes), two GPU grants, the status table and the
// releases. It never falls back to a configured inventory: without a working
// NVIDIA driver it prints why and exits 1. `make nvml-check` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jimbot/jimbus/coord"
	jimbotpb "github.com/jimbot/jimbus/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run is the check; lib is the NVML library, nil for the real one (tests
// pass a mock).
func run(args []string, stdout, stderr io.Writer, lib coord.NVMLLibrary) int {
	fs := flag.NewFlagSet("nvmlcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	slices := fs.Int("slices", 2, "--gpu-slices for the check (2 lets both grants share one GPU)")
	mb := fs.Int("mb", 1024, "MB each of the two GPU requests asks for")
	poll := fs.Duration("poll", 250*time.Millisecond, "NVML poll interval")
	pid := fs.Int("pid", os.Getpid(), "pid the requests name (metadata pid): name a process that holds GPU memory to see its use claimed by the grants instead of counted as external")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s, err := coord.New(coord.Options{
		RequireNVML: true,
		NVML:        lib,
		GPUSlices:   *slices,
		NVMLPoll:    *poll,
		Logger:      slog.New(slog.NewTextHandler(stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	t0 := time.Now()
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	defer s.Stop(context.Background())
	fmt.Fprintf(stdout, "NVML initialised and first snapshot taken in %s\n", time.Since(t0).Round(time.Microsecond))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	gs := grpc.NewServer()
	s.Register(gs)
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	defer conn.Close()
	c := jimbotpb.NewResourceCoordinatorClient(conn)

	time.Sleep(2 * *poll) // let the poller run
	h, err := c.HealthCheck(ctx, &jimbotpb.HealthCheckRequest{})
	if err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	fmt.Fprintf(stdout, "health: healthy=%v %v\n", h.GetHealthy(), h.GetMetadata())

	// gpuStatus is the coordinator's GPU status, asked over gRPC.
	gpuStatus := func() (*jimbotpb.ResourceStatus, error) {
		st, err := c.GetResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{Resource: jimbotpb.ResourceType_RESOURCE_TYPE_GPU})
		if err != nil {
			return nil, err
		}
		return st.GetStatuses()[0], nil
	}
	gpu, err := gpuStatus()
	if err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nsnapshot (%s, %s old):\n", gpu.GetSource(), gpu.GetSnapshotAge().AsDuration().Round(time.Millisecond))
	for _, d := range gpu.GetDevices() {
		fmt.Fprintf(stdout, "  gpu%d %s %s: total %d MB, used %d MB (external %d MB), utilization %d%% (memory %d%%), %d process(es)\n",
			d.GetIndex(), d.GetName(), d.GetUuid(), d.GetTotalMb(), d.GetUsedMb(), d.GetExternalMb(),
			d.GetUtilizationPercent(), d.GetMemoryUtilizationPercent(), len(d.GetProcesses()))
		for _, p := range d.GetProcesses() {
			fmt.Fprintf(stdout, "    pid %d uses %d MB\n", p.GetPid(), p.GetUsedMb())
		}
	}

	fmt.Fprintln(stdout, "\ndecisions:")
	var tokens []string
	ok := true
	for i := range 2 {
		req := &jimbotpb.ResourceRequest{
			RequestId: fmt.Sprintf("nvml-check-%d", i+1),
			Component: "nvml-check",
			Resource:  jimbotpb.ResourceType_RESOURCE_TYPE_GPU,
			Quantity:  int32(*mb),
			Priority:  jimbotpb.Priority_PRIORITY_HIGH,
			Duration:  durationpb.New(time.Minute),
			Metadata:  map[string]string{"pid": strconv.Itoa(*pid)},
		}
		start := time.Now()
		r, err := c.RequestResource(ctx, req)
		if err != nil {
			fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
			return 1
		}
		fmt.Fprintf(stdout, "  request %d MB -> %s in %s: %s\n", *mb, r.GetStatus(), time.Since(start).Round(time.Microsecond), r.GetMessage())
		if r.GetStatus() == jimbotpb.RequestStatus_REQUEST_STATUS_GRANTED {
			tokens = append(tokens, r.GetToken())
		} else if i == 0 {
			ok = false // the first must fit on an idle machine
		}
	}
	if gpu, err = gpuStatus(); err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	for _, d := range gpu.GetDevices() {
		fmt.Fprintf(stdout, "  after the grants: gpu%d external %d MB, available %d MB\n", d.GetIndex(), d.GetExternalMb(), d.GetAvailableMb())
	}
	fmt.Fprintln(stdout)
	if err := coord.PrintStatus(ctx, c, stdout); err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	fmt.Fprintln(stdout)
	for _, tok := range tokens {
		start := time.Now()
		r, err := c.ReleaseResource(ctx, &jimbotpb.ReleaseRequest{Token: tok, Component: "nvml-check"})
		if err != nil {
			fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
			return 1
		}
		fmt.Fprintf(stdout, "  release -> success=%v in %s: %s\n", r.GetSuccess(), time.Since(start).Round(time.Microsecond), r.GetMessage())
		ok = ok && r.GetSuccess()
	}
	if gpu, err = gpuStatus(); err != nil {
		fmt.Fprintln(stderr, "nvml-check: FAIL:", err)
		return 1
	}
	left := gpu.GetAllocated()
	fmt.Fprintf(stdout, "after release: %d MB allocated\n", left)
	if !ok || left != 0 {
		fmt.Fprintln(stderr, "nvml-check: FAIL: a decision was not as expected")
		return 1
	}
	fmt.Fprintln(stdout, "nvml-check: OK")
	return 0
}
