//go:build cgo

package coord

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value returns the value of the series of name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf, ok := fams[name]
	require.True(t, ok, "no family %s", name)
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestMetrics(t *testing.T) {
	clk := newFakeClock()
	g := &fakeGPU{name: "gpu", uuid: "GPU-x", totalMB: 24000}
	g.set(1000, proc(5, 1000))
	reg := prometheus.NewRegistry()
	o := nvmlOptions(clk, mockNVML(g))
	o.Registerer = reg
	o.ClaudeInputPerMinute = 1000
	s := startServer(t, o)

	a := mustGrant(t, s, newReq("trainer", gpuR, 4000))
	require.Equal(t, denied, ask(t, s, newReq("eval", gpuR, 4000)).GetStatus())
	ch := pending(s, newReq("eval", gpuR, 4000, timeout(time.Second)))
	waitQueued(t, s, gpuR, 1)
	clk.Advance(time.Second)
	require.Equal(t, denied, recv(t, ch).GetStatus())
	require.False(t, release(t, s, "nope", "").GetSuccess())
	require.True(t, release(t, s, a.GetToken(), "").GetSuccess())
	mustGrant(t, s, newReq("kg", memR, 2048, lasting(time.Second)))
	clk.Advance(time.Second)
	mustGrant(t, s, newReq("llm", claudeR, 1, meta("input_tokens", "300")))
	mustGrant(t, s, newReq("w", cpuR, 3))

	fams := gather(t, reg)
	for name, mf := range fams {
		require.True(t, strings.HasPrefix(name, "jimbus_coord_"), name)
		text := strings.ToLower(name + " " + mf.GetHelp())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				text += " " + strings.ToLower(l.GetName()+"="+l.GetValue())
			}
		}
		for _, bad := range []string{"password", "secret", "key", "token", "private", "stack trace"} {
			require.NotContains(t, text, bad, "metric %s", name)
		}
	}
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_decisions_total", "resource", "gpu", "outcome", "granted"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_decisions_total", "resource", "gpu", "outcome", "denied"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_decisions_total", "resource", "gpu", "outcome", "timed_out"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_leases_ended_total", "resource", "gpu", "reason", "released"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_leases_ended_total", "resource", "memory", "reason", "expired"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_release_rejections_total"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_queue_wait_seconds", "resource", "gpu"))
	require.Equal(t, 3.0, value(t, fams, "jimbus_coord_decision_duration_seconds", "resource", "gpu"))
	require.Equal(t, 0.0, value(t, fams, "jimbus_coord_queue_depth", "resource", "gpu"))
	require.Equal(t, float64(24000*mib), value(t, fams, "jimbus_coord_capacity_bytes", "resource", "gpu"))
	require.Equal(t, float64(23000*mib), value(t, fams, "jimbus_coord_available_bytes", "resource", "gpu"))
	require.Equal(t, float64(32768*mib), value(t, fams, "jimbus_coord_capacity_bytes", "resource", "memory"))
	require.Equal(t, 16.0, value(t, fams, "jimbus_coord_cpu_capacity_cores"))
	require.Equal(t, 3.0, value(t, fams, "jimbus_coord_cpu_allocated_cores"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_claude_allocated_requests"))
	require.Equal(t, 700.0, value(t, fams, "jimbus_coord_claude_quota_available", "bucket", "input_per_minute"))
	require.Equal(t, 1.0, value(t, fams, "jimbus_coord_nvml_up"))
	age := value(t, fams, "jimbus_coord_nvml_snapshot_age_seconds") // the poller runs on its own
	require.True(t, age >= 0 && age <= 2, "age %v", age)
	require.Equal(t, float64(1000*mib), value(t, fams, "jimbus_coord_gpu_device_memory_bytes", "device", "0", "state", "external"))

	// A second Server on the same registry is refused, not a panic.
	_, err := New(o)
	require.ErrorContains(t, err, "cannot register coordinator metrics")
}
