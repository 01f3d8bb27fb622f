package coord

import (
	"math"
	"slices"
	"strings"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func clampInt32(v int64) int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, v)))
}

// status builds the ResourceStatus of r.
func (st *state) status(now time.Time, r jimbotpb.ResourceType) *jimbotpb.ResourceStatus {
	s := &jimbotpb.ResourceStatus{
		Resource: r,
		Queued:   int32(st.queues[r].len()),
		Unit:     resourceUnit(r),
	}
	switch r {
	case resGPU:
		total, reserved, avail, _ := st.gpu.totals()
		s.TotalCapacity, s.Allocated, s.Available = clampInt32(total), clampInt32(reserved), clampInt32(avail)
		s.Source = st.gpu.source
		if !st.gpu.snapAt.IsZero() {
			s.SnapshotAge = durationpb.New(max(0, now.Sub(st.gpu.snapAt)))
		}
		for i := range st.gpu.devices {
			s.Devices = append(s.Devices, st.deviceStatus(i))
		}
	case resClaude:
		st.claude.refill(now)
		c := st.counts[resClaude]
		s.TotalCapacity, s.Allocated = clampInt32(c.capacity), clampInt32(c.allocated)
		s.Available = clampInt32(st.claude.available())
		for _, b := range st.claude.buckets() {
			if !b.enabled() {
				continue
			}
			s.Quotas = append(s.Quotas, &jimbotpb.QuotaBucket{
				Name:            b.name,
				Capacity:        int64(b.capacity),
				Available:       int64(max(0, math.Floor(b.level))),
				RefillPerSecond: b.rate,
			})
		}
	default:
		c := st.counts[r]
		s.TotalCapacity, s.Allocated, s.Available = clampInt32(c.capacity), clampInt32(c.allocated), clampInt32(c.capacity-c.allocated)
	}
	var ls []*lease
	for _, l := range st.leases {
		if l.resource == r {
			ls = append(ls, l)
		}
	}
	slices.SortFunc(ls, func(a, b *lease) int {
		if c := a.grantedAt.Compare(b.grantedAt); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	for _, l := range ls {
		a := &jimbotpb.AllocationInfo{
			RequestId:   l.requestID,
			Component:   l.component,
			Quantity:    clampInt32(l.quantity),
			AllocatedAt: timestamppb.New(l.grantedAt),
			ExpiresAt:   timestamppb.New(l.expiresAt),
			Priority:    jimbotpb.Priority(l.priority),
		}
		if l.device >= 0 {
			a.Device = st.gpu.devices[l.device].id()
		}
		s.Allocations = append(s.Allocations, a)
	}
	return s
}

func (st *state) deviceStatus(i int) *jimbotpb.GpuDevice {
	d := &st.gpu.devices[i]
	g := &jimbotpb.GpuDevice{
		Index:                    int32(d.index),
		Uuid:                     d.uuid,
		Name:                     d.name,
		TotalMb:                  clampInt32(d.totalMB),
		UsedMb:                   clampInt32(d.usedMB),
		ExternalMb:               clampInt32(d.externalMB),
		ReservedMb:               clampInt32(d.reservedMB),
		AvailableMb:              clampInt32(d.availableMB()),
		UtilizationPercent:       d.util,
		MemoryUtilizationPercent: d.memUtil,
		ActiveLeases:             int32(d.active),
		Slices:                   int32(st.gpu.slices),
	}
	for _, p := range d.procs {
		gp := &jimbotpb.GpuProcess{Pid: p.pid, UsedMb: clampInt32(p.usedMB)}
		if _, ok := d.claims[p.pid]; ok {
			var owners []string
			for _, l := range st.leases {
				if l.device == i && l.pid == p.pid && !slices.Contains(owners, l.component) {
					owners = append(owners, l.component)
				}
			}
			slices.Sort(owners)
			gp.ClaimedBy = strings.Join(owners, ",")
		}
		g.Processes = append(g.Processes, gp)
	}
	return g
}
