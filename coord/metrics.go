package coord

import (
	"fmt"
	"strconv"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the jimbus_coord_* series. Every child is resolved once in
// newMetrics, so the request path never calls WithLabelValues. Gauges are
// read from the state at scrape time by the collector, so they cost the
// request path nothing. A nil *metrics records nothing.
//
// Names and help texts keep clear of the words of CONTRACT section 1: quota,
// not the API's own word for its units.
type metrics struct {
	decisions [numResources][numOutcomes]prometheus.Counter
	ended     [numResources][numEndReasons]prometheus.Counter
	rejected  prometheus.Counter
	pollFails prometheus.Counter
	latency   [numResources]prometheus.Observer
	wait      [numResources]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_coord_decisions_total",
		Help: "Resource requests decided, by resource and outcome (granted, denied, timed_out, cancelled).",
	}, []string{"resource", "outcome"})
	ended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_coord_leases_ended_total",
		Help: "Leases ended, by resource and reason (released, expired, revoked: the caller left before its grant arrived).",
	}, []string{"resource", "reason"})
	rejected := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_coord_release_rejections_total",
		Help: "ReleaseResource calls refused: unknown or already released lease, or another component's lease.",
	})
	pollFails := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jimbus_coord_nvml_poll_errors_total",
		Help: "Failed NVML device reads by the background poller.",
	})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jimbus_coord_decision_duration_seconds",
		Help:    "Time the coordinator spends deciding a request, queue waiting excluded.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3},
	}, []string{"resource"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jimbus_coord_queue_wait_seconds",
		Help:    "Time requests spent waiting in the queue, whatever their outcome.",
		Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"resource"})
	m := &metrics{rejected: rejected, pollFails: pollFails}
	for _, r := range allResources {
		name := resourceName(r)
		for o := range numOutcomes {
			m.decisions[r][o] = decisions.WithLabelValues(name, outcomeNames[o])
		}
		for e := range numEndReasons {
			m.ended[r][e] = ended.WithLabelValues(name, endReasonNames[e])
		}
		m.latency[r] = latency.WithLabelValues(name)
		m.wait[r] = wait.WithLabelValues(name)
	}
	for _, c := range []prometheus.Collector{decisions, ended, rejected, pollFails, latency, wait, &gaugeCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register coordinator metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) decided(r jimbotpb.ResourceType, o outcome, took, waited time.Duration, queued bool) {
	if m == nil {
		return
	}
	m.decisions[r][o].Inc()
	m.latency[r].Observe(took.Seconds())
	if queued {
		m.wait[r].Observe(waited.Seconds())
	}
}

func (m *metrics) leaseEnded(r jimbotpb.ResourceType, why endReason) {
	if m != nil {
		m.ended[r][why].Inc()
	}
}

func (m *metrics) releaseRejected() {
	if m != nil {
		m.rejected.Inc()
	}
}

func (m *metrics) pollFailed() {
	if m != nil {
		m.pollFails.Inc()
	}
}

var (
	descQueue = prometheus.NewDesc("jimbus_coord_queue_depth",
		"Requests waiting in the queue, by resource.", []string{"resource"}, nil)
	descCapBytes = prometheus.NewDesc("jimbus_coord_capacity_bytes",
		"Capacity of a memory resource (gpu: all devices; memory: host).", []string{"resource"}, nil)
	descAllocBytes = prometheus.NewDesc("jimbus_coord_allocated_bytes",
		"Memory held by leases, by resource (gpu, memory).", []string{"resource"}, nil)
	descAvailBytes = prometheus.NewDesc("jimbus_coord_available_bytes",
		"Memory a new lease could get now, by resource (gpu counts memory used outside leases).", []string{"resource"}, nil)
	descCapCores = prometheus.NewDesc("jimbus_coord_cpu_capacity_cores",
		"CPU capacity in cores.", nil, nil)
	descAllocCores = prometheus.NewDesc("jimbus_coord_cpu_allocated_cores",
		"CPU cores held by leases.", nil, nil)
	descClaudeAlloc = prometheus.NewDesc("jimbus_coord_claude_allocated_requests",
		"CLAUDE_API requests held by open leases.", nil, nil)
	descClaudeQuota = prometheus.NewDesc("jimbus_coord_claude_quota_available",
		"Units left in a CLAUDE_API quota bucket (requests_per_hour, requests_per_minute, input_per_minute, output_per_minute).",
		[]string{"bucket"}, nil)
	descClaudeQuotaCap = prometheus.NewDesc("jimbus_coord_claude_quota_capacity",
		"Size of a CLAUDE_API quota bucket.", []string{"bucket"}, nil)
	descNVMLUp = prometheus.NewDesc("jimbus_coord_nvml_up",
		"1 when the GPU inventory comes from NVML, 0 when it is the configured fallback.", nil, nil)
	descNVMLAge = prometheus.NewDesc("jimbus_coord_nvml_snapshot_age_seconds",
		"Age of the GPU snapshot that decisions read.", nil, nil)
	descDevMem = prometheus.NewDesc("jimbus_coord_gpu_device_memory_bytes",
		"GPU device memory by state: total, used (as NVML reports), external (used outside leases), reserved (by leases).",
		[]string{"device", "state"}, nil)
	descDevUtil = prometheus.NewDesc("jimbus_coord_gpu_device_utilization_ratio",
		"GPU compute utilization, 0 to 1, as NVML reports it.", []string{"device"}, nil)
	descDevLeases = prometheus.NewDesc("jimbus_coord_gpu_device_leases",
		"Leases running on a GPU device (at most --gpu-slices).", []string{"device"}, nil)
)

// gaugeCollector reads the state at scrape time.
type gaugeCollector struct{ s *Server }

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descCapBytes, descAllocBytes, descAvailBytes, descCapCores,
		descAllocCores, descClaudeAlloc, descClaudeQuota, descClaudeQuotaCap, descNVMLUp, descNVMLAge,
		descDevMem, descDevUtil, descDevLeases} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	var out []prometheus.Metric
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	s := c.s
	s.mu.Lock()
	st := s.st
	if st == nil {
		s.mu.Unlock()
		return
	}
	now := s.clock.Now()
	for _, r := range allResources {
		g(descQueue, float64(st.queues[r].len()), resourceName(r))
	}
	total, reserved, avail, _ := st.gpu.totals()
	g(descCapBytes, float64(total*mib), "gpu")
	g(descAllocBytes, float64(reserved*mib), "gpu")
	g(descAvailBytes, float64(avail*mib), "gpu")
	mem := st.counts[resMemory]
	g(descCapBytes, float64(mem.capacity*mib), "memory")
	g(descAllocBytes, float64(mem.allocated*mib), "memory")
	g(descAvailBytes, float64((mem.capacity-mem.allocated)*mib), "memory")
	g(descCapCores, float64(st.counts[resCPU].capacity))
	g(descAllocCores, float64(st.counts[resCPU].allocated))
	g(descClaudeAlloc, float64(st.counts[resClaude].allocated))
	st.claude.refill(now)
	for _, b := range st.claude.buckets() {
		if b.enabled() {
			g(descClaudeQuota, b.level, b.name)
			g(descClaudeQuotaCap, b.capacity, b.name)
		}
	}
	if st.gpu.snapAt.IsZero() {
		g(descNVMLUp, 0)
	} else {
		g(descNVMLUp, 1)
		g(descNVMLAge, now.Sub(st.gpu.snapAt).Seconds())
	}
	for i := range st.gpu.devices {
		d := &st.gpu.devices[i]
		dev := strconv.Itoa(d.index)
		g(descDevMem, float64(d.totalMB*mib), dev, "total")
		g(descDevMem, float64(d.usedMB*mib), dev, "used")
		g(descDevMem, float64(d.externalMB*mib), dev, "external")
		g(descDevMem, float64(d.reservedMB*mib), dev, "reserved")
		g(descDevUtil, float64(d.util)/100, dev)
		g(descDevLeases, float64(d.active), dev)
	}
	s.mu.Unlock()
	for _, m := range out {
		ch <- m
	}
}
