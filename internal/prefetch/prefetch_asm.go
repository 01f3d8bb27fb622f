//go:build amd64 || arm64

package prefetch

import "unsafe"

// Line starts loading the cache line that holds *p into all cache levels.
// p must point into memory the program holds (a Go object, or a mapping of
// its own); it is never dereferenced.
//
//go:noescape
func Line(p unsafe.Pointer)
