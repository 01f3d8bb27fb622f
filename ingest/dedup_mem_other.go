//go:build !linux

package ingest

// windowMem returns n zeroed buckets for the resend window from the heap
// (see the Linux version for why it maps them itself there).
func windowMem(n int) (buckets []dedupBucket, free func()) {
	return make([]dedupBucket, n), func() {}
}
