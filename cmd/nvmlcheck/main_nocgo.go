//go:build !cgo

package main

import (
	"fmt"
	"os"
)

// Without cgo there is no NVML to check: say so, and how to get it.
func main() {
	fmt.Fprintln(os.Stderr, "nvml-check: FAIL: this binary was built without cgo, which NVML needs (build with CGO_ENABLED=1 and a C compiler)")
	os.Exit(1)
}
