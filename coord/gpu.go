package coord

import (
	"slices"
	"strconv"
	"time"
)

const mib = 1 << 20

// gpuProc is a process NVML reports on a device.
type gpuProc struct {
	pid    uint32
	usedMB int64 // -1 when NVML cannot tell
}

// gpuInfo is what does not change while the coordinator runs.
type gpuInfo struct {
	index   int
	uuid    string
	name    string
	totalMB int64
}

// gpuSample is one poll of one device.
type gpuSample struct {
	ok      bool // false: the poll failed, keep the previous values
	usedMB  int64
	util    int32
	memUtil int32
	procs   []gpuProc // sorted by pid
}

// gpuSnapshot is one poll of every device, in device order.
type gpuSnapshot struct {
	at      time.Time
	devices []gpuSample
}

// gpuDevice is the decision state of one GPU.
type gpuDevice struct {
	gpuInfo
	usedMB     int64
	util       int32
	memUtil    int32
	procs      []gpuProc
	reservedMB int64
	active     int   // leases on the device
	externalMB int64 // used memory no lease claims
	// claims maps a pid named by leases (metadata "pid") to the memory those
	// leases reserve: that much of the process's memory is not external.
	claims map[uint32]int64
}

// id is how clients name the device: its UUID when known, else its index.
func (d *gpuDevice) id() string {
	if d.uuid != "" {
		return d.uuid
	}
	return strconv.Itoa(d.index)
}

func (d *gpuDevice) availableMB() int64 {
	return max(0, d.totalMB-d.reservedMB-d.externalMB)
}

// updateExternal recomputes externalMB: the memory NVML reports as used,
// less the part of it that claimed processes use within their leases. It
// reports whether the value changed.
func (d *gpuDevice) updateExternal() bool {
	claimed := int64(0)
	for _, p := range d.procs {
		if r, ok := d.claims[p.pid]; ok && p.usedMB > 0 {
			claimed += min(p.usedMB, r)
		}
	}
	ext := max(0, d.usedMB-claimed)
	if ext == d.externalMB {
		return false
	}
	d.externalMB = ext
	return true
}

// gpuPool is the GPU inventory and its leases.
type gpuPool struct {
	slices  int
	devices []gpuDevice
	source  string // "nvml" or "fallback: <why>"
	snapAt  time.Time
}

func newGPUPool(nslices int, infos []gpuInfo, source string) gpuPool {
	p := gpuPool{slices: nslices, source: source, devices: make([]gpuDevice, len(infos))}
	for i, info := range infos {
		p.devices[i] = gpuDevice{gpuInfo: info, claims: map[uint32]int64{}}
	}
	return p
}

// pick returns the device that best fits qty MB: a free slice, enough
// available memory, and the least memory left over; -1 when none fits.
func (p *gpuPool) pick(qty int64) int {
	best, bestLeft := -1, int64(0)
	for i := range p.devices {
		d := &p.devices[i]
		if d.active >= p.slices {
			continue
		}
		left := d.availableMB() - qty
		if left < 0 {
			continue
		}
		if best < 0 || left < bestLeft || (left == bestLeft && d.active < p.devices[best].active) {
			best, bestLeft = i, left
		}
	}
	return best
}

func (p *gpuPool) maxTotalMB() int64 {
	m := int64(0)
	for i := range p.devices {
		m = max(m, p.devices[i].totalMB)
	}
	return m
}

func (p *gpuPool) totals() (total, reserved, available int64, busy int) {
	for i := range p.devices {
		d := &p.devices[i]
		total += d.totalMB
		reserved += d.reservedMB
		available += d.availableMB()
		busy += d.active
	}
	return
}

func (p *gpuPool) grant(dev int, qty int64, pid uint32) {
	d := &p.devices[dev]
	d.reservedMB += qty
	d.active++
	if pid != 0 {
		d.claims[pid] += qty
		d.updateExternal()
	}
}

func (p *gpuPool) release(dev int, qty int64, pid uint32) {
	d := &p.devices[dev]
	d.reservedMB -= qty
	d.active--
	if d.reservedMB < 0 || d.active < 0 {
		panic("BUG: coord: GPU device released more than it granted")
	}
	if pid != 0 {
		if d.claims[pid] -= qty; d.claims[pid] <= 0 {
			delete(d.claims, pid)
		}
		d.updateExternal()
	}
}

// apply stores a poll and reports whether anything a decision or the status
// reads has changed (utilization alone does not count).
func (p *gpuPool) apply(s *gpuSnapshot) bool {
	changed := false
	p.snapAt = s.at
	for i := range s.devices {
		if i >= len(p.devices) {
			break
		}
		sm := &s.devices[i]
		if !sm.ok {
			continue
		}
		d := &p.devices[i]
		d.util, d.memUtil = sm.util, sm.memUtil
		if d.usedMB != sm.usedMB || !slices.Equal(d.procs, sm.procs) {
			changed = true
		}
		d.usedMB = sm.usedMB
		d.procs = sm.procs
		if d.updateExternal() {
			changed = true
		}
	}
	return changed
}

// fallbackInventory is the configured GPU inventory.
func fallbackInventory(o *Options) []gpuInfo {
	infos := make([]gpuInfo, o.GPUDevices)
	for i := range infos {
		infos[i] = gpuInfo{index: i, name: "configured", totalMB: int64(o.GPUMemoryMB)}
	}
	return infos
}
