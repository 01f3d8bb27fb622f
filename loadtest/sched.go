package loadtest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// schedJob is one scheduled request: its index and its scheduled time.
type schedJob struct {
	k     int64
	sched time.Time
}

// openLoop issues job k at start+k/rate for every such time before end, to
// workers goroutines that call do(ws, k, sched). The scheduler never waits
// for an answer: when every worker is busy, jobs queue (up to 4 per worker)
// and then the scheduler falls behind, but each job keeps its scheduled time,
// so do measures latency from it and the time a request spent waiting for a
// free worker (coordinated omission) is counted, not hidden. A job still
// unstarted at end is not sent: it is counted in unsent.
func openLoop(ctx context.Context, rate float64, start, end time.Time, workers int,
	do func(ws *workerState, k int64, sched time.Time)) (sent, unsent int64) {
	var nSent, nUnsent atomic.Int64
	jobs := make(chan schedJob, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := newWorkerState()
			defer ws.release()
			for j := range jobs {
				if ctx.Err() != nil || !time.Now().Before(end) {
					nUnsent.Add(1)
					continue
				}
				do(ws, j.k, j.sched)
				nSent.Add(1)
			}
		}()
	}
	interval := float64(time.Second) / rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
loop:
	for k := int64(0); ; k++ {
		sched := start.Add(time.Duration(float64(k) * interval))
		if !sched.Before(end) {
			break
		}
		// Sleep only when well ahead: short sleeps cost more than they
		// save, and a request a few hundred microseconds early is noise.
		if d := time.Until(sched); d > 200*time.Microsecond {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case jobs <- schedJob{k: k, sched: sched}:
		case <-ctx.Done():
			// ctx ends at end: count what was still to come.
			nUnsent.Add(int64(end.Sub(sched).Seconds() * rate))
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	return nSent.Load(), nUnsent.Load()
}
