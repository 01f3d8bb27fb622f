//go:build cgo

package main

import (
	"bytes"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/require"
)

func mockLib(init nvml.Return) *mock.Interface {
	dev := &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return "Mock GPU", nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) { return "GPU-mock", nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 24000 << 20, Used: 700 << 20, Free: 23300 << 20}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 12, Memory: 3}, nvml.SUCCESS },
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 4321, UsedGpuMemory: 600 << 20}}, nvml.SUCCESS
		},
		GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
	}
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return init },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) { return dev, nvml.SUCCESS },
	}
}

func TestCheckWithMockGPU(t *testing.T) {
	var out, errw bytes.Buffer
	lib := mockLib(nvml.SUCCESS)
	code := run([]string{"-poll", "10ms"}, &out, &errw, lib)
	t.Log("\n" + out.String() + errw.String())
	require.Equal(t, 0, code)
	for _, want := range []string{
		"gpu0 Mock GPU GPU-mock: total 24000 MB, used 700 MB (external 700 MB), utilization 12% (memory 3%), 1 process(es)",
		"pid 4321 uses 600 MB",
		"request 1024 MB -> REQUEST_STATUS_GRANTED",
		"after the grants: gpu0 external 700 MB, available 21252 MB", // 24000-700-2x1024
		"release -> success=true",
		"after release: 0 MB allocated",
		"nvml-check: OK",
	} {
		require.Contains(t, out.String(), want)
	}
	require.Len(t, lib.ShutdownCalls(), 1)
}

// A grant that names the GPU process's pid claims its memory: what the
// process uses within the lease is no longer external.
func TestCheckClaimsNamedProcess(t *testing.T) {
	var out, errw bytes.Buffer
	code := run([]string{"-poll", "10ms", "-pid", "4321", "-mb", "500"}, &out, &errw, mockLib(nvml.SUCCESS))
	t.Log("\n" + out.String() + errw.String())
	require.Equal(t, 0, code)
	// 700 used, 600 of it pid 4321's, 2 x 500 claimed for it: 100 external.
	require.Contains(t, out.String(), "after the grants: gpu0 external 100 MB, available 22900 MB")
}

func TestCheckFailsWithoutNVML(t *testing.T) {
	var out, errw bytes.Buffer
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }}
	require.Equal(t, 1, run(nil, &out, &errw, lib))
	require.Contains(t, errw.String(), "nvml-check: FAIL: coord: NVML is required: nvml Init: ERROR_DRIVER_NOT_LOADED")
}
