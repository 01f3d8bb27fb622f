package coord

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// The resources, by their protocol numbers; arrays indexed by resource have
// numResources entries and leave index 0 (UNSPECIFIED) unused.
const (
	resGPU       = jimbotpb.ResourceType_RESOURCE_TYPE_GPU
	resClaude    = jimbotpb.ResourceType_RESOURCE_TYPE_CLAUDE_API
	resMemory    = jimbotpb.ResourceType_RESOURCE_TYPE_MEMORY
	resCPU       = jimbotpb.ResourceType_RESOURCE_TYPE_CPU
	numResources = 5
)

// allResources lists the resources in the order status reports them.
var allResources = [...]jimbotpb.ResourceType{resGPU, resClaude, resMemory, resCPU}

func validResource(r jimbotpb.ResourceType) bool { return r >= resGPU && r <= resCPU }

// resourceName is the short lowercase name used in metric labels and tables.
func resourceName(r jimbotpb.ResourceType) string {
	switch r {
	case resGPU:
		return "gpu"
	case resClaude:
		return "claude_api"
	case resMemory:
		return "memory"
	case resCPU:
		return "cpu"
	}
	return "unknown"
}

// resourceLabel is how messages name a resource (as the protocol does).
func resourceLabel(r jimbotpb.ResourceType) string {
	return strings.TrimPrefix(r.String(), "RESOURCE_TYPE_")
}

func resourceUnit(r jimbotpb.ResourceType) string {
	switch r {
	case resGPU, resMemory:
		return "MB"
	case resCPU:
		return "cores"
	case resClaude:
		return "requests"
	}
	return ""
}

// request is a parsed ResourceRequest.
type request struct {
	requestID   string
	component   string
	resource    jimbotpb.ResourceType
	priority    int32 // 1 (LOW) .. 4 (CRITICAL)
	quantity    int64
	timeout     time.Duration // longest wait; 0: do not wait
	lease       time.Duration
	pid         uint32 // GPU: the process the lease is for (metadata "pid")
	inputQuota  int64  // CLAUDE_API: metadata "input_tokens"
	outputQuota int64  // CLAUDE_API: metadata "max_output_tokens"
}

// lease is a granted allocation. Every grant is its own lease, found by its
// token; nothing is keyed by component.
type lease struct {
	token       string
	seq         uint64
	requestID   string
	component   string
	resource    jimbotpb.ResourceType
	priority    int32
	quantity    int64
	grantedAt   time.Time
	expiresAt   time.Time
	device      int    // GPU: device index, else -1
	pid         uint32 // GPU: claimed process, 0: none
	outReserved int64  // CLAUDE_API: output units reserved
	heapIdx     int
}

// outcome is how a request ended.
type outcome uint8

const (
	outGranted outcome = iota
	outDenied
	outTimedOut
	outCancelled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"granted", "denied", "timed_out", "cancelled"}

// decision is the answer to a request.
type decision struct {
	outcome    outcome
	token      string
	grantedAt  time.Time
	expiresAt  time.Time
	quantity   int64
	device     string
	message    string
	retryAfter time.Duration
	waited     time.Duration
}

// endReason is how a lease ended.
type endReason uint8

const (
	endReleased endReason = iota
	endExpired
	endRevoked // granted to a request whose caller had gone
	numEndReasons
)

var endReasonNames = [numEndReasons]string{"released", "expired", "revoked"}

// ended remembers a lease that is gone, so that a second release can say so.
type ended struct {
	requestID string
	component string
	resource  jimbotpb.ResourceType
	reason    endReason
	at        time.Time
}

// endedKeep is how many ended leases are remembered.
const endedKeep = 4096

// observer hears what the state decides on its own (expiry, grants to
// waiters); the Server's metrics implement it.
type observer interface {
	leaseEnded(r jimbotpb.ResourceType, why endReason)
}

type counter struct{ capacity, allocated int64 }

// state is the pure decision core: a state machine over leases, queues, the
// GPU snapshot and the quota buckets. It does no I/O, starts no goroutine and
// reads no clock: every method takes the current time. The Server guards it
// with its mutex; every method requires that mutex.
type state struct {
	opts   *Options
	obs    observer
	seq    uint64
	gpu    gpuPool
	claude claudeQuota
	counts [numResources]counter // MEMORY, CPU and CLAUDE_API allocations
	leases map[string]*lease
	expiry leaseHeap
	queues [numResources]waitQueue

	ended     map[string]ended
	endedRing [endedKeep]string
	endedNext int

	// ver counts the changes of each resource's status; changed is closed and
	// replaced once something changed and somebody watches it.
	ver     [numResources]uint64
	dirty   bool
	watched bool
	changed chan struct{}
}

func newState(o *Options, gpu gpuPool, obs observer) *state {
	st := &state{
		opts:    o,
		obs:     obs,
		gpu:     gpu,
		claude:  newClaudeQuota(o),
		leases:  make(map[string]*lease),
		ended:   make(map[string]ended),
		changed: make(chan struct{}),
	}
	st.counts[resMemory].capacity = int64(o.MemoryMB)
	st.counts[resCPU].capacity = int64(o.CPUCores)
	st.counts[resClaude].capacity = int64(o.ClaudePerHour)
	for i := range st.queues {
		st.queues[i].aging = o.Aging
	}
	return st
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b[:])
}

func (st *state) bump(r jimbotpb.ResourceType) {
	st.ver[r]++
	st.dirty = true
}

// watch returns a channel closed at the next change.
func (st *state) watch() <-chan struct{} {
	st.watched = true
	return st.changed
}

// notify wakes the watchers when something changed since the last call.
func (st *state) notify() {
	if st.dirty && st.watched {
		close(st.changed)
		st.changed = make(chan struct{})
		st.watched = false
	}
	st.dirty = false
}

// request decides r at once, or queues it: then it returns the waiter, whose
// done channel is closed when it is decided.
func (st *state) request(now time.Time, r *request) (decision, *waiter) {
	if msg := st.impossible(r); msg != "" {
		return decision{outcome: outDenied, message: msg}, nil
	}
	q := &st.queues[r.resource]
	cand := waiter{req: *r, key: q.keyOf(now, r.priority), seq: st.seq + 1, enqueuedAt: now}
	head := q.peek()
	if head == nil || q.less(&cand, head) {
		if d, ok := st.tryGrant(now, r); ok {
			return d, nil
		}
	}
	if r.timeout <= 0 {
		return st.deny(now, r, "", q.len()), nil
	}
	if q.len() >= st.opts.MaxQueue {
		return st.deny(now, r, fmt.Sprintf("queue full (%d waiting; raise --coord-max-queue or retry later); ",
			q.len()), q.len()), nil
	}
	if r.resource == resClaude {
		// The quota refills at a known rate: when even the head of the queue
		// could not get this much before the timeout, say when to retry now.
		st.claude.refill(now)
		if w := st.claude.wait(r); w > r.timeout {
			return st.deny(now, r, fmt.Sprintf("the quota refills in %s, after the %s timeout; ",
				w.Round(time.Millisecond), r.timeout), q.len()), nil
		}
	}
	st.seq++
	w := new(waiter)
	*w = cand
	w.done = make(chan struct{})
	q.push(w)
	st.bump(r.resource)
	return decision{}, w
}

// impossible explains why r can never be granted, or returns "".
func (st *state) impossible(r *request) string {
	switch r.resource {
	case resGPU:
		if len(st.gpu.devices) == 0 {
			return "GPU: no device in the inventory"
		}
		if m := st.gpu.maxTotalMB(); r.quantity > m {
			return fmt.Sprintf("GPU: asked %d MB, more than the largest device has (%d MB)", r.quantity, m)
		}
	case resClaude:
		if name, need, capacity := st.claude.impossible(r); name != "" {
			hint := "--claude-burst"
			switch name {
			case "requests_per_minute":
				hint = "--claude-per-minute"
			case "input_per_minute":
				hint = "--claude-input-tokens-per-minute"
			case "output_per_minute":
				hint = "--claude-output-tokens-per-minute"
			}
			return fmt.Sprintf("CLAUDE_API: asked %d from the %s quota, which never holds more than %d; ask for less or raise %s",
				need, name, capacity, hint)
		}
	default:
		if c := st.counts[r.resource].capacity; r.quantity > c {
			return fmt.Sprintf("%s: asked %d %s, more than the capacity of %d %s",
				resourceLabel(r.resource), r.quantity, resourceUnit(r.resource), c, resourceUnit(r.resource))
		}
	}
	return ""
}

// tryGrant grants r when it fits now.
func (st *state) tryGrant(now time.Time, r *request) (decision, bool) {
	dev := -1
	switch r.resource {
	case resGPU:
		if dev = st.gpu.pick(r.quantity); dev < 0 {
			return decision{}, false
		}
		st.gpu.grant(dev, r.quantity, r.pid)
	case resClaude:
		st.claude.refill(now)
		if st.claude.wait(r) > 0 {
			return decision{}, false
		}
		st.claude.take(r)
		st.counts[resClaude].allocated += r.quantity
	default:
		c := &st.counts[r.resource]
		if c.capacity-c.allocated < r.quantity {
			return decision{}, false
		}
		c.allocated += r.quantity
	}
	st.seq++
	l := &lease{
		token:     newToken(),
		seq:       st.seq,
		requestID: r.requestID,
		component: r.component,
		resource:  r.resource,
		priority:  r.priority,
		quantity:  r.quantity,
		grantedAt: now,
		expiresAt: now.Add(r.lease),
		device:    dev,
	}
	if r.resource == resGPU {
		l.pid = r.pid
	}
	if r.resource == resClaude {
		l.outReserved = r.outputQuota
	}
	st.leases[l.token] = l
	st.expiry.push(l)
	st.bump(r.resource)
	d := decision{
		outcome:   outGranted,
		token:     l.token,
		grantedAt: l.grantedAt,
		expiresAt: l.expiresAt,
		quantity:  l.quantity,
	}
	if dev >= 0 {
		d.device = st.gpu.devices[dev].id()
	}
	return d, true
}

// deny builds a denial of r that says what is available and when it may
// change; prefix comes first, ahead counts the requests queued before r.
func (st *state) deny(now time.Time, r *request, prefix string, ahead int) decision {
	var b strings.Builder
	b.WriteString(prefix)
	var retry time.Duration
	unit := resourceUnit(r.resource)
	switch r.resource {
	case resGPU:
		total, _, avail, busy := st.gpu.totals()
		fmt.Fprintf(&b, "GPU: asked %d MB, available %d MB of %d MB on %d device(s), %d of %d slices busy",
			r.quantity, avail, total, len(st.gpu.devices), busy, len(st.gpu.devices)*st.gpu.slices)
		ext := int64(0)
		for i := range st.gpu.devices {
			ext += st.gpu.devices[i].externalMB
		}
		if ext > 0 {
			fmt.Fprintf(&b, ", %d MB used outside the coordinator's leases", ext)
		}
	case resClaude:
		st.claude.refill(now)
		retry = st.claude.wait(r)
		fmt.Fprintf(&b, "CLAUDE_API: asked %d requests, %d available now (%d per hour, burst %d)",
			r.quantity, st.claude.available(), st.opts.ClaudePerHour, st.opts.ClaudeBurst)
		if r.inputQuota > 0 || r.outputQuota > 0 {
			fmt.Fprintf(&b, ", input %d, output %d", r.inputQuota, r.outputQuota)
		}
		if retry > 0 {
			fmt.Fprintf(&b, "; the quota holds enough in %s", retry.Round(time.Millisecond))
		}
	default:
		c := st.counts[r.resource]
		fmt.Fprintf(&b, "%s: asked %d %s, available %d %s of %d %s",
			resourceLabel(r.resource), r.quantity, unit, c.capacity-c.allocated, unit, c.capacity, unit)
	}
	if ahead > 0 {
		fmt.Fprintf(&b, "; %d request(s) waiting ahead", ahead)
	}
	if r.resource != resClaude {
		if at, ok := st.earliestEnd(r.resource); ok {
			in := max(0, at.Sub(now))
			fmt.Fprintf(&b, "; earliest lease ends at %s (in %s)", at.UTC().Format(time.RFC3339), in.Round(time.Millisecond))
			retry = in
		} else {
			b.WriteString("; no lease of it is held")
		}
	}
	return decision{outcome: outDenied, message: b.String(), retryAfter: retry}
}

func (st *state) earliestEnd(r jimbotpb.ResourceType) (time.Time, bool) {
	var at time.Time
	for _, l := range st.leases {
		if l.resource == r && (at.IsZero() || l.expiresAt.Before(at)) {
			at = l.expiresAt
		}
	}
	return at, !at.IsZero()
}

// finish hands w its decision.
func (st *state) finish(w *waiter, d decision) {
	w.res = d
	close(w.done)
}

// dispatch grants waiters of r, in queue order, while the head fits.
func (st *state) dispatch(now time.Time, r jimbotpb.ResourceType) {
	q := &st.queues[r]
	for {
		w := q.peek()
		if w == nil {
			return
		}
		d, ok := st.tryGrant(now, &w.req)
		if !ok {
			return
		}
		q.remove(w)
		d.waited = now.Sub(w.enqueuedAt)
		st.finish(w, d)
	}
}

// timeout denies w when it is still queued.
func (st *state) timeout(now time.Time, w *waiter) {
	if w.idx < 0 {
		return
	}
	q := &st.queues[w.req.resource]
	ahead := q.ahead(w)
	q.remove(w)
	waited := now.Sub(w.enqueuedAt)
	d := st.deny(now, &w.req, fmt.Sprintf("timed out after %s in the queue; ", waited.Round(time.Millisecond)), ahead)
	d.outcome = outTimedOut
	d.waited = waited
	st.bump(w.req.resource)
	st.finish(w, d)
	st.dispatch(now, w.req.resource) // w may have blocked the head
}

// cancel ends w for a caller that has gone: it leaves the queue, or, when it
// was granted meanwhile, its lease is revoked.
func (st *state) cancel(now time.Time, w *waiter) {
	if w.idx >= 0 {
		st.queues[w.req.resource].remove(w)
		st.bump(w.req.resource)
		st.finish(w, decision{outcome: outCancelled, message: "cancelled by the caller", waited: now.Sub(w.enqueuedAt)})
		st.dispatch(now, w.req.resource)
		return
	}
	if w.res.outcome == outGranted {
		if l, ok := st.leases[w.res.token]; ok {
			st.end(now, l, endRevoked)
			st.dispatch(now, l.resource)
		}
	}
}

// release ends the lease of token. A wrong token, a wrong component, or a
// lease that is already gone answers false and changes nothing.
func (st *state) release(now time.Time, token, component string, meta map[string]string) (bool, string) {
	if token == "" {
		return false, "token is required: pass the token of the RequestResource answer"
	}
	l, ok := st.leases[token]
	if !ok {
		if e, ok := st.ended[token]; ok {
			return false, fmt.Sprintf("lease %q of %q (%s) was already %s at %s; nothing changed",
				e.requestID, e.component, resourceLabel(e.resource), endReasonNames[e.reason], e.at.UTC().Format(time.RFC3339Nano))
		}
		return false, "unknown token: no lease has it (wrong token, or released long ago); nothing changed"
	}
	if component != "" && component != l.component {
		return false, fmt.Sprintf("token belongs to component %q, not %q; nothing changed", l.component, component)
	}
	refund := int64(0)
	if v, ok := meta["output_tokens_used"]; ok && l.resource == resClaude {
		used, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || used < 0 {
			return false, fmt.Sprintf("metadata output_tokens_used=%q is not a non-negative integer; nothing changed", v)
		}
		refund = max(0, l.outReserved-used)
	}
	st.end(now, l, endReleased)
	msg := fmt.Sprintf("released %d %s of %s", l.quantity, resourceUnit(l.resource), resourceLabel(l.resource))
	if refund > 0 {
		st.claude.refill(now)
		st.claude.outMinute.give(refund)
		msg += fmt.Sprintf("; refunded %d unused output units", refund)
	}
	st.dispatch(now, l.resource)
	return true, msg
}

// end removes l and frees what it held; the caller dispatches.
func (st *state) end(now time.Time, l *lease, why endReason) {
	delete(st.leases, l.token)
	st.expiry.remove(l)
	switch l.resource {
	case resGPU:
		st.gpu.release(l.device, l.quantity, l.pid)
	default:
		c := &st.counts[l.resource]
		c.allocated -= l.quantity
		if c.allocated < 0 {
			panic("BUG: coord: released more than allocated")
		}
	}
	if old := st.endedRing[st.endedNext]; old != "" {
		delete(st.ended, old)
	}
	st.endedRing[st.endedNext] = l.token
	st.endedNext = (st.endedNext + 1) % endedKeep
	st.ended[l.token] = ended{requestID: l.requestID, component: l.component, resource: l.resource, reason: why, at: now}
	st.bump(l.resource)
	if st.obs != nil {
		st.obs.leaseEnded(l.resource, why)
	}
}

// tick expires the leases due by now and serves the CLAUDE_API queue, whose
// quota refills with time.
func (st *state) tick(now time.Time) {
	var touched [numResources]bool
	for {
		l := st.expiry.peek()
		if l == nil || l.expiresAt.After(now) {
			break
		}
		st.end(now, l, endExpired)
		touched[l.resource] = true
	}
	touched[resClaude] = touched[resClaude] || st.queues[resClaude].len() > 0
	for _, r := range allResources {
		if touched[r] {
			st.dispatch(now, r)
		}
	}
}

// nextDeadline returns when tick must run next: the earliest lease expiry,
// or the moment the quota holds what the head of the CLAUDE_API queue needs.
// Zero means never.
func (st *state) nextDeadline(now time.Time) time.Time {
	var next time.Time
	if l := st.expiry.peek(); l != nil {
		next = l.expiresAt
	}
	if w := st.queues[resClaude].peek(); w != nil {
		st.claude.refill(now)
		at := now.Add(max(st.claude.wait(&w.req), time.Microsecond))
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// applyGPU stores a GPU poll and serves the GPU queue when capacity changed.
func (st *state) applyGPU(now time.Time, s *gpuSnapshot) {
	if st.gpu.apply(s) {
		st.bump(resGPU)
		st.dispatch(now, resGPU)
	}
}

// stopAll denies every waiter.
func (st *state) stopAll(now time.Time, msg string) {
	for _, r := range allResources {
		q := &st.queues[r]
		for q.len() > 0 {
			w := q.peek()
			q.remove(w)
			st.finish(w, decision{outcome: outDenied, message: msg, waited: now.Sub(w.enqueuedAt)})
		}
		st.bump(r)
	}
}

// invariant checks the books; tests call it after every step.
func (st *state) invariant() error {
	var sum [numResources]int64
	var perDev = make([]int64, len(st.gpu.devices))
	var perDevN = make([]int, len(st.gpu.devices))
	for tok, l := range st.leases {
		if tok != l.token {
			return fmt.Errorf("lease map key %q holds token %q", tok, l.token)
		}
		sum[l.resource] += l.quantity
		if l.resource == resGPU {
			perDev[l.device] += l.quantity
			perDevN[l.device]++
		}
	}
	if len(st.expiry) != len(st.leases) {
		return fmt.Errorf("expiry heap holds %d leases, map %d", len(st.expiry), len(st.leases))
	}
	for i := range st.gpu.devices {
		d := &st.gpu.devices[i]
		if d.reservedMB != perDev[i] || d.active != perDevN[i] {
			return fmt.Errorf("GPU %d books %d MB in %d leases, leases hold %d MB in %d", i, d.reservedMB, d.active, perDev[i], perDevN[i])
		}
		if d.active > st.gpu.slices {
			return fmt.Errorf("GPU %d runs %d leases, more than %d slices", i, d.active, st.gpu.slices)
		}
		if d.reservedMB+d.externalMB > d.totalMB && d.reservedMB > 0 {
			// Leases can exceed capacity only when outside use grew after
			// they were granted; it must never happen with no outside use.
			if d.externalMB == 0 {
				return fmt.Errorf("GPU %d reserves %d MB of %d", i, d.reservedMB, d.totalMB)
			}
		}
	}
	for _, r := range []jimbotpb.ResourceType{resMemory, resCPU, resClaude} {
		c := st.counts[r]
		if c.allocated != sum[r] {
			return fmt.Errorf("%s books %d allocated, leases hold %d", resourceLabel(r), c.allocated, sum[r])
		}
		if r != resClaude && c.allocated > c.capacity {
			return fmt.Errorf("%s allocated %d of %d", resourceLabel(r), c.allocated, c.capacity)
		}
	}
	return nil
}
