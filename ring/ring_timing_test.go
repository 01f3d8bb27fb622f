package ring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks move batches, as the event path does: each item is a pointer
// to a batch of events. One op moves one batch; events/s counts batches moved
// per second. The consumer reads every batch it receives and the sum is
// checked, so nothing is discarded.

const benchCap = 1024 // ring / channel / queue capacity in batches

type benchBatch struct {
	events [64]uint64
	n      int
}

// benchBatches returns a pool of ready batches that producers cycle through;
// they are never written after this, so reuse does not race.
func benchBatches() []*benchBatch {
	pool := make([]*benchBatch, 4096)
	for i := range pool {
		pool[i] = &benchBatch{n: 1}
	}
	return pool
}

// backoff is how a benchmark side waits for a full or empty queue: spin a
// little (the other side is running on the other core), then yield.
type backoff int

func (b *backoff) wait() {
	if *b < 32 {
		*b++
		return
	}
	*b = 0
	runtime.Gosched()
}

func reportEvents(b *testing.B, sum int) {
	b.Helper()
	if sum != b.N {
		b.Fatalf("consumer saw %d batches, want %d", sum, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// mutexQueue is the obvious alternative to Ring: a bounded circular slice
// under a mutex.
type mutexQueue struct {
	mu   sync.Mutex
	buf  []*benchBatch
	head int
	n    int
}

func (q *mutexQueue) push(v *benchBatch) bool {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.mu.Unlock()
		return false
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = v
	q.n++
	q.mu.Unlock()
	return true
}

func (q *mutexQueue) pop() (*benchBatch, bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return nil, false
	}
	v := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	q.mu.Unlock()
	return v, true
}

// BenchmarkSPSC moves b.N batches from the benchmark goroutine (producer) to
// one consumer goroutine through Ring, a buffered channel and a mutex queue of
// the same capacity.
func BenchmarkSPSC(b *testing.B) {
	b.Run("ring", func(b *testing.B) {
		pool := benchBatches()
		r := New[*benchBatch](benchCap)
		sumc := make(chan int, 1)
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			sum := 0
			for range b.N {
				v, ok := r.Pop()
				for bo := backoff(0); !ok; v, ok = r.Pop() {
					bo.wait()
				}
				sum += v.n
			}
			sumc <- sum
		}()
		for i := range b.N {
			v := pool[i&(len(pool)-1)]
			for bo := backoff(0); !r.Push(v); {
				bo.wait()
			}
		}
		sum := <-sumc
		reportEvents(b, sum)
	})
	b.Run("chan", func(b *testing.B) {
		pool := benchBatches()
		ch := make(chan *benchBatch, benchCap)
		sumc := make(chan int, 1)
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			sum := 0
			for range b.N {
				sum += (<-ch).n
			}
			sumc <- sum
		}()
		for i := range b.N {
			ch <- pool[i&(len(pool)-1)]
		}
		sum := <-sumc
		reportEvents(b, sum)
	})
	b.Run("mutex", func(b *testing.B) {
		pool := benchBatches()
		q := &mutexQueue{buf: make([]*benchBatch, benchCap)}
		sumc := make(chan int, 1)
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			sum := 0
			for range b.N {
				v, ok := q.pop()
				for bo := backoff(0); !ok; v, ok = q.pop() {
					bo.wait()
				}
				sum += v.n
			}
			sumc <- sum
		}()
		for i := range b.N {
			v := pool[i&(len(pool)-1)]
			for bo := backoff(0); !q.push(v); {
				bo.wait()
			}
		}
		sum := <-sumc
		reportEvents(b, sum)
	})
}

// BenchmarkMPSC moves b.N batches from GOMAXPROCS producer goroutines
// (RunParallel) to one consumer goroutine through Sharded (one shard per
// producer, Drain in chunks, Wait when idle) and through a buffered channel of
// the same total capacity.
func BenchmarkMPSC(b *testing.B) {
	producers := runtime.GOMAXPROCS(0)
	b.Run("sharded", func(b *testing.B) {
		pool := benchBatches()
		s := NewSharded[*benchBatch](producers, benchCap)
		sumc := make(chan int, 1)
		var ids atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			sum := 0
			dst := make([]*benchBatch, 0, 256)
			for sum < b.N {
				dst = s.Drain(dst[:0], cap(dst))
				if len(dst) == 0 {
					s.Wait(nil)
					continue
				}
				for i, v := range dst {
					sum += v.n
					dst[i] = nil
				}
			}
			sumc <- sum
		}()
		b.RunParallel(func(pb *testing.PB) {
			hint := ids.Add(1) - 1
			i := int(hint) * 97
			for pb.Next() {
				v := pool[i&(len(pool)-1)]
				i++
				for {
					if _, ok := s.Push(hint, v); ok {
						break
					}
					runtime.Gosched()
				}
			}
		})
		sum := <-sumc
		reportEvents(b, sum)
	})
	b.Run("chan", func(b *testing.B) {
		pool := benchBatches()
		ch := make(chan *benchBatch, producers*benchCap)
		sumc := make(chan int, 1)
		var ids atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		go func() {
			sum := 0
			for sum < b.N {
				sum += (<-ch).n
			}
			sumc <- sum
		}()
		b.RunParallel(func(pb *testing.PB) {
			i := int(ids.Add(1)-1) * 97
			for pb.Next() {
				ch <- pool[i&(len(pool)-1)]
				i++
			}
		})
		sum := <-sumc
		reportEvents(b, sum)
	})
}
