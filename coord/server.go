package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Errors of the lifecycle.
var (
	ErrStarted = errors.New("coord: already started")
	ErrStopped = errors.New("coord: stopped")
)

// Server is the resource coordinator: the jimbot.ResourceCoordinator gRPC
// service over the decision state. Create it with New, then Start, Register
// on a grpc.Server, and Stop.
type Server struct {
	jimbotpb.UnimplementedResourceCoordinatorServer

	opts  Options
	log   *slog.Logger
	clock Clock
	m     *metrics // nil without Options.Registerer

	started atomic.Bool
	stopped atomic.Bool
	stopCh  chan struct{}
	wg      sync.WaitGroup // the poller
	src     *nvmlSource    // nil without NVML; used by the poller only

	mu        sync.Mutex
	st        *state // nil until Start
	running   bool
	startedAt time.Time
	timer     Timer     // runs state.tick at timerAt
	timerAt   time.Time // zero: no timer
	timerGen  uint64
}

// New validates opts and returns a Server that is not started.
func New(opts Options) (*Server, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, log: o.Logger, clock: o.Clock, stopCh: make(chan struct{})}
	if s.m, err = newMetrics(o.Registerer, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Register registers the jimbot.ResourceCoordinator service on r.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	jimbotpb.RegisterResourceCoordinatorServer(r, s)
}

// Start finds the GPUs (NVML, or the fallback inventory when NVML cannot be
// initialised), takes the first snapshot and starts the poller. ctx bounds
// the start only; the poller runs until Stop.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.stopped.Load() {
		return ErrStopped
	}
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	o := &s.opts
	infos := fallbackInventory(o)
	source := "fallback: NVML disabled"
	if !o.DisableNVML {
		lib := o.NVML
		if lib == nil {
			lib = defaultNVML()
		}
		src, nvInfos, err := openNVML(lib, s.log)
		switch {
		case err == nil:
			s.src, infos, source = src, nvInfos, "nvml"
			src.errors = s.m.pollFailed
		case o.RequireNVML:
			return fmt.Errorf("coord: NVML is required: %w", err)
		default:
			source = "fallback: " + err.Error()
			s.log.Warn("coord: NVML unavailable; using the configured GPU inventory",
				"reason", err.Error(), "devices", o.GPUDevices, "memory_mb", o.GPUMemoryMB)
		}
	}
	now := s.clock.Now()
	st := newState(o, newGPUPool(o.GPUSlices, infos, source), nil)
	if s.m != nil {
		st.obs = s.m
	}
	if s.src != nil {
		st.applyGPU(now, s.src.poll(now))
	}
	s.mu.Lock()
	s.st, s.running, s.startedAt = st, true, now
	s.mu.Unlock()
	if s.src != nil {
		fire := make(chan struct{}, 1)
		t := s.pollTimer(fire)
		s.wg.Add(1)
		go s.pollLoop(fire, t)
	}
	return nil
}

// Stop denies every waiting request, ends the status streams, stops the
// poller and shuts NVML down. It is idempotent and waits for the goroutines
// it started, or for ctx.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stopCh)
	s.mu.Lock()
	s.running = false
	if s.st != nil {
		s.st.stopAll(s.clock.Now(), "coordinator is stopping; nothing was granted")
		s.st.notify()
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer, s.timerAt = nil, time.Time{}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("coord: stop: %w", ctx.Err())
	}
	if s.src != nil {
		s.src.close()
	}
	return nil
}

// pollTimer arms the next poll tick on fire.
func (s *Server) pollTimer(fire chan struct{}) Timer {
	return s.clock.AfterFunc(s.opts.NVMLPoll, func() {
		select {
		case fire <- struct{}{}:
		default:
		}
	})
}

// pollLoop refreshes the GPU snapshot on every tick of fire; t is the
// pending tick, armed by Start.
func (s *Server) pollLoop(fire chan struct{}, t Timer) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stopCh:
			t.Stop()
			return
		case <-fire:
		}
		t = s.pollTimer(fire)             // before polling: a steady cadence, whatever a poll takes
		snap := s.src.poll(s.clock.Now()) // NVML is called here, never under the lock
		s.mu.Lock()
		if s.running {
			now := s.clock.Now()
			s.st.applyGPU(now, snap)
			s.afterLocked(now)
		}
		s.mu.Unlock()
	}
}

// afterLocked re-arms the state timer and wakes status watchers; every
// locked section that changed the state ends with it.
func (s *Server) afterLocked(now time.Time) {
	next := s.st.nextDeadline(now)
	if !next.Equal(s.timerAt) {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		s.timerAt = next
		if !next.IsZero() {
			s.timerGen++
			gen := s.timerGen
			s.timer = s.clock.AfterFunc(max(0, next.Sub(now)), func() { s.onTimer(gen) })
		}
	}
	s.st.notify()
}

func (s *Server) onTimer(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running || gen != s.timerGen {
		return
	}
	s.timer, s.timerAt = nil, time.Time{}
	now := s.clock.Now()
	s.st.tick(now)
	s.afterLocked(now)
}

func (s *Server) onWaiterTimeout(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	now := s.clock.Now()
	s.st.timeout(now, w)
	s.afterLocked(now)
}

var errNotRunning = status.Error(codes.Unavailable, "resource coordinator is not running")

// RequestResource grants a lease at once, or waits in the queue for up to
// the request's timeout.
func (s *Server) RequestResource(ctx context.Context, in *jimbotpb.ResourceRequest) (*jimbotpb.ResourceResponse, error) {
	start := time.Now()
	r, err := parseRequest(in, &s.opts)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil, errNotRunning
	}
	now := s.clock.Now()
	d, w := s.st.request(now, &r)
	if w != nil {
		w.timer = s.clock.AfterFunc(r.timeout, func() { s.onWaiterTimeout(w) })
	}
	s.afterLocked(now)
	s.mu.Unlock()
	took := time.Since(start)
	if w == nil {
		s.m.decided(r.resource, d.outcome, took, 0, false)
		return response(in, &d), nil
	}
	select {
	case <-w.done:
		w.timer.Stop()
		s.m.decided(r.resource, w.res.outcome, took, w.res.waited, true)
		return response(in, &w.res), nil
	case <-ctx.Done():
	}
	w.timer.Stop()
	s.mu.Lock()
	now = s.clock.Now()
	if s.running { // else Stop has answered every waiter already
		s.st.cancel(now, w)
		s.afterLocked(now)
	}
	s.mu.Unlock()
	<-w.done // cancel or stopAll closed it, if not before
	s.m.decided(r.resource, outCancelled, took, now.Sub(w.enqueuedAt), true)
	return nil, status.FromContextError(ctx.Err()).Err()
}

// parseRequest checks a request and fills in its defaults.
func parseRequest(in *jimbotpb.ResourceRequest, o *Options) (request, error) {
	r := request{
		requestID: in.GetRequestId(),
		component: in.GetComponent(),
		resource:  in.GetResource(),
		quantity:  int64(in.GetQuantity()),
	}
	if !validResource(r.resource) {
		return r, fmt.Errorf("resource must be GPU, CLAUDE_API, MEMORY or CPU, got %s", r.resource)
	}
	if r.quantity == 0 && r.resource == resClaude {
		r.quantity = 1 // one API call
	}
	if r.quantity <= 0 {
		return r, fmt.Errorf("quantity must be positive, got %d", r.quantity)
	}
	switch p := in.GetPriority(); {
	case p == jimbotpb.Priority_PRIORITY_UNSPECIFIED:
		r.priority = int32(jimbotpb.Priority_PRIORITY_NORMAL)
	case p >= jimbotpb.Priority_PRIORITY_LOW && p <= jimbotpb.Priority_PRIORITY_CRITICAL:
		r.priority = int32(p)
	default:
		return r, fmt.Errorf("unknown priority %d", int32(p))
	}
	if t := in.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return r, fmt.Errorf("invalid timeout: %w", err)
		}
		if r.timeout = t.AsDuration(); r.timeout < 0 {
			return r, fmt.Errorf("timeout must not be negative, got %s", r.timeout)
		}
	}
	if d := in.GetDuration(); d != nil {
		if err := d.CheckValid(); err != nil {
			return r, fmt.Errorf("invalid duration: %w", err)
		}
		if r.lease = d.AsDuration(); r.lease < 0 {
			return r, fmt.Errorf("duration must not be negative, got %s", r.lease)
		}
	}
	if r.lease == 0 {
		switch r.resource {
		case resGPU:
			r.lease = o.GPULease
		case resClaude:
			r.lease = o.ClaudeLease
		case resMemory:
			r.lease = o.MemoryLease
		case resCPU:
			r.lease = o.CPULease
		}
	}
	r.lease = min(r.lease, o.MaxLease)
	md := in.GetMetadata()
	switch r.resource {
	case resGPU:
		if v, ok := md["pid"]; ok {
			pid, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || pid == 0 {
				return r, fmt.Errorf("metadata pid=%q is not a process id", v)
			}
			r.pid = uint32(pid)
		}
	case resClaude:
		var err error
		if r.inputQuota, err = metaCount(md, "input_tokens"); err != nil {
			return r, err
		}
		if r.outputQuota, err = metaCount(md, "max_output_tokens"); err != nil {
			return r, err
		}
	}
	return r, nil
}

func metaCount(md map[string]string, k string) (int64, error) {
	v, ok := md[k]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > maxQuantity {
		return 0, fmt.Errorf("metadata %s=%q is not a count from 0 to %d", k, v, maxQuantity)
	}
	return n, nil
}

func response(in *jimbotpb.ResourceRequest, d *decision) *jimbotpb.ResourceResponse {
	resp := &jimbotpb.ResourceResponse{RequestId: in.GetRequestId(), Message: d.message}
	if d.outcome == outGranted {
		resp.Status = jimbotpb.RequestStatus_REQUEST_STATUS_GRANTED
		resp.GrantedAt = timestamppb.New(d.grantedAt)
		resp.ExpiresAt = timestamppb.New(d.expiresAt)
		resp.Token = d.token
		resp.GrantedQuantity = clampInt32(d.quantity)
		resp.Device = d.device
		if resp.Message == "" {
			resp.Message = "granted"
			if d.device != "" {
				resp.Message = "granted on GPU " + d.device
			}
		}
	} else {
		resp.Status = jimbotpb.RequestStatus_REQUEST_STATUS_DENIED
		if d.retryAfter > 0 {
			resp.RetryAfter = durationpb.New(d.retryAfter)
		}
	}
	if d.waited > 0 {
		resp.Waited = durationpb.New(d.waited)
	}
	return resp
}

// ReleaseResource ends a lease. It needs the lease's token, and its
// component when one is given; anything else answers success=false and
// changes nothing. request_id is not checked (clients may send a fresh one).
// Release metadata "output_tokens_used" refunds the unused part of a
// CLAUDE_API output reservation.
func (s *Server) ReleaseResource(ctx context.Context, in *jimbotpb.ReleaseRequest) (*jimbotpb.ReleaseResponse, error) {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil, errNotRunning
	}
	now := s.clock.Now()
	ok, msg := s.st.release(now, in.GetToken(), in.GetComponent(), in.GetMetadata())
	s.afterLocked(now)
	s.mu.Unlock()
	if !ok {
		s.m.releaseRejected()
	}
	return &jimbotpb.ReleaseResponse{Success: ok, Message: msg}, nil
}

func requested(r jimbotpb.ResourceType) ([]jimbotpb.ResourceType, error) {
	if r == jimbotpb.ResourceType_RESOURCE_TYPE_UNSPECIFIED {
		return allResources[:], nil
	}
	if !validResource(r) {
		return nil, status.Errorf(codes.InvalidArgument, "unknown resource %d", int32(r))
	}
	return []jimbotpb.ResourceType{r}, nil
}

// GetResourceStatus reports one resource, or all four for UNSPECIFIED.
func (s *Server) GetResourceStatus(ctx context.Context, in *jimbotpb.ResourceStatusRequest) (*jimbotpb.ResourceStatusResponse, error) {
	rs, err := requested(in.GetResource())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil, errNotRunning
	}
	now := s.clock.Now()
	resp := &jimbotpb.ResourceStatusResponse{Timestamp: timestamppb.New(now)}
	for _, r := range rs {
		resp.Statuses = append(resp.Statuses, s.st.status(now, r))
	}
	s.mu.Unlock()
	return resp, nil
}

// HealthCheck reports whether the coordinator runs, and where its GPU
// inventory comes from.
func (s *Server) HealthCheck(ctx context.Context, _ *jimbotpb.HealthCheckRequest) (*jimbotpb.HealthCheckResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &jimbotpb.HealthCheckResponse{
		Healthy:  s.running,
		Version:  s.opts.Version,
		Metadata: map[string]string{"service": "resource_coordinator"},
	}
	if s.st == nil {
		resp.Metadata["state"] = "not started"
		return resp, nil
	}
	if !s.running {
		resp.Metadata["state"] = "stopped"
	}
	now := s.clock.Now()
	resp.UptimeSeconds = int64(now.Sub(s.startedAt) / time.Second)
	resp.Metadata["gpu_source"] = s.st.gpu.source
	resp.Metadata["gpu_devices"] = strconv.Itoa(len(s.st.gpu.devices))
	resp.Metadata["gpu_slices"] = strconv.Itoa(s.st.gpu.slices)
	if !s.st.gpu.snapAt.IsZero() {
		resp.Metadata["nvml_snapshot_age_ms"] = strconv.FormatInt(now.Sub(s.st.gpu.snapAt).Milliseconds(), 10)
	}
	queued := 0
	for _, r := range allResources {
		queued += s.st.queues[r].len()
	}
	resp.Metadata["leases"] = strconv.Itoa(len(s.st.leases))
	resp.Metadata["queued"] = strconv.Itoa(queued)
	return resp, nil
}

// StreamResourceStatus sends the status of the requested resources at once,
// then again whenever it changes, and at least every StreamHeartbeat. It
// coalesces: a slow reader gets the latest status, never a backlog.
func (s *Server) StreamResourceStatus(in *jimbotpb.ResourceStatusRequest, stream grpc.ServerStreamingServer[jimbotpb.ResourceStatus]) error {
	rs, err := requested(in.GetResource())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	heartbeat := make(chan struct{}, 1)
	var hb Timer
	defer func() {
		if hb != nil {
			hb.Stop()
		}
	}()
	var last [numResources]uint64
	force := true
	out := make([]*jimbotpb.ResourceStatus, 0, len(rs))
	for {
		s.mu.Lock()
		if !s.running {
			s.mu.Unlock()
			return errNotRunning
		}
		now := s.clock.Now()
		changed := s.st.watch()
		out = out[:0]
		for _, r := range rs {
			if force || s.st.ver[r] != last[r] {
				out = append(out, s.st.status(now, r))
				last[r] = s.st.ver[r]
			}
		}
		s.mu.Unlock()
		if len(out) > 0 {
			// The heartbeat counts from this update; armed before sending so
			// that a reader that got the update knows the timer runs.
			if hb != nil {
				hb.Stop()
			}
			hb = s.clock.AfterFunc(s.opts.StreamHeartbeat, func() {
				select {
				case heartbeat <- struct{}{}:
				default:
				}
			})
		}
		for _, m := range out {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		force = false
		select {
		case <-changed:
		case <-heartbeat:
			force = true
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.stopCh:
			return status.Error(codes.Unavailable, "resource coordinator is stopping")
		}
	}
}
