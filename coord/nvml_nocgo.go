//go:build !cgo

package coord

import (
	"errors"
	"log/slog"
	"time"
)

// NVMLLibrary stands for the NVML library in a build without cgo, which
// cannot load it (go-nvml opens libnvidia-ml.so.1 through cgo): nothing can
// be passed but nil, and Start uses the configured inventory.
type NVMLLibrary = any

func defaultNVML() NVMLLibrary { return nil }

// errNoCgo is why a build without cgo has no NVML. The go command turns cgo
// off where it finds no C compiler, so say how to get it back.
var errNoCgo = errors.New("this binary was built without cgo, which NVML needs (build with CGO_ENABLED=1 and a C compiler)")

// nvmlSource is never made without cgo: openNVML always fails.
type nvmlSource struct{ errors func() }

func openNVML(NVMLLibrary, *slog.Logger) (*nvmlSource, []gpuInfo, error) {
	return nil, nil, errNoCgo
}

func (*nvmlSource) poll(time.Time) *gpuSnapshot { panic("BUG: coord: no NVML without cgo") }
func (*nvmlSource) close()                      {}
