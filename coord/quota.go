package coord

import (
	"math"
	"time"
)

// bucket is a continuously refilled quota bucket: it holds at most capacity
// units and gains rate units per second. The zero value is disabled.
type bucket struct {
	name     string
	capacity float64
	rate     float64 // units per second
	level    float64
	last     time.Time
}

func newBucket(name string, capacity int, per time.Duration, perPeriod int) bucket {
	if capacity <= 0 || perPeriod <= 0 {
		return bucket{name: name}
	}
	return bucket{
		name:     name,
		capacity: float64(capacity),
		rate:     float64(perPeriod) / per.Seconds(),
		level:    float64(capacity),
	}
}

func (b *bucket) enabled() bool { return b.capacity > 0 }

// refill brings the level up to now.
func (b *bucket) refill(now time.Time) {
	if !b.enabled() {
		return
	}
	if b.last.IsZero() {
		b.last = now
		return
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.level = min(b.capacity, b.level+dt.Seconds()*b.rate)
		b.last = now
	}
}

// wait returns how long until the bucket holds n units (0 when it does now);
// refill must have been called with the current time.
func (b *bucket) wait(n int64) time.Duration {
	if !b.enabled() || n <= 0 {
		return 0
	}
	missing := float64(n) - b.level
	if missing <= 0 {
		return 0
	}
	s := missing / b.rate
	if s > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	// Round up to the next microsecond so that a wake-up at now+wait finds
	// the units there despite float rounding.
	return time.Duration(math.Ceil(s*1e6)) * time.Microsecond
}

// fits reports whether n units could ever be taken at once.
func (b *bucket) fits(n int64) bool { return !b.enabled() || float64(n) <= b.capacity }

func (b *bucket) take(n int64) {
	if b.enabled() && n > 0 {
		b.level -= float64(n)
	}
}

// give returns n units, never above capacity.
func (b *bucket) give(n int64) {
	if b.enabled() && n > 0 {
		b.level = min(b.capacity, b.level+float64(n))
	}
}

// claudeQuota holds the CLAUDE_API buckets.
type claudeQuota struct {
	perHour   int
	reqHour   bucket // requests per rolling hour, burst sized
	reqMinute bucket // optional
	inMinute  bucket // optional: input units per minute
	outMinute bucket // optional: output units per minute
}

func newClaudeQuota(o *Options) claudeQuota {
	return claudeQuota{
		perHour:   o.ClaudePerHour,
		reqHour:   newBucket("requests_per_hour", o.ClaudeBurst, time.Hour, o.ClaudePerHour),
		reqMinute: newBucket("requests_per_minute", o.ClaudePerMinute, time.Minute, o.ClaudePerMinute),
		inMinute:  newBucket("input_per_minute", o.ClaudeInputPerMinute, time.Minute, o.ClaudeInputPerMinute),
		outMinute: newBucket("output_per_minute", o.ClaudeOutputPerMinute, time.Minute, o.ClaudeOutputPerMinute),
	}
}

func (q *claudeQuota) buckets() [4]*bucket {
	return [4]*bucket{&q.reqHour, &q.reqMinute, &q.inMinute, &q.outMinute}
}

func (q *claudeQuota) refill(now time.Time) {
	for _, b := range q.buckets() {
		b.refill(now)
	}
}

// need returns the units r takes from each bucket, in buckets() order.
func claudeNeed(r *request) [4]int64 {
	return [4]int64{r.quantity, r.quantity, r.inputQuota, r.outputQuota}
}

// impossible names the first bucket that can never hold what r needs, or "".
func (q *claudeQuota) impossible(r *request) (name string, need int64, capacity int64) {
	need4 := claudeNeed(r)
	for i, b := range q.buckets() {
		if !b.fits(need4[i]) {
			return b.name, need4[i], int64(b.capacity)
		}
	}
	return "", 0, 0
}

// wait returns how long until every bucket holds what r needs; refill must
// have been called with the current time.
func (q *claudeQuota) wait(r *request) time.Duration {
	need := claudeNeed(r)
	var w time.Duration
	for i, b := range q.buckets() {
		w = max(w, b.wait(need[i]))
	}
	return w
}

func (q *claudeQuota) take(r *request) {
	need := claudeNeed(r)
	for i, b := range q.buckets() {
		b.take(need[i])
	}
}

// available returns the whole requests that could be granted now.
func (q *claudeQuota) available() int64 {
	a := q.reqHour.level
	if q.reqMinute.enabled() {
		a = min(a, q.reqMinute.level)
	}
	return int64(max(0, math.Floor(a)))
}
