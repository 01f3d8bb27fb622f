package ingest

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on the platforms Go
// runs Linux on most (amd64, arm64 with 4 KiB base pages).
const hugePage = 2 << 20

// windowMem returns n zeroed buckets for the resend window, outside the Go
// heap: in an anonymous mapping, starting on a 2 MiB boundary and marked
// MADV_HUGEPAGE, so that where the kernel's transparent huge pages are
// enabled ("always" or "madvise") the default 16 MiB window is 8 TLB
// entries instead of 4,096. Every new key is a read at a random place of the
// window: with 4 KiB pages each one also missed the TLB (a page walk before
// the cache miss). Pages are committed as they are first touched, as on
// the heap; the mapping's spare 2 MiB (for the alignment) is never touched.
// free unmaps it: the buckets must not be used after. Where the mapping
// fails, the buckets come from the heap and free does nothing.
func windowMem(n int) (buckets []dedupBucket, free func()) {
	size := n * int(unsafe.Sizeof(dedupBucket{}))
	if size < hugePage {
		return make([]dedupBucket, n), func() {}
	}
	mem, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]dedupBucket, n), func() {}
	}
	skip := int((hugePage - uintptr(unsafe.Pointer(&mem[0]))%hugePage) % hugePage)
	_ = syscall.Madvise(mem[skip:skip+size], syscall.MADV_HUGEPAGE) // a hint: without it, 4 KiB pages
	return unsafe.Slice((*dedupBucket)(unsafe.Pointer(&mem[skip])), n), func() { _ = syscall.Munmap(mem) }
}
