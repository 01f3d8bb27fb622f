package loadtest

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func fmtStatus(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strconv.FormatUint(m[k], 10))
	}
	return strings.Join(parts, ", ")
}

func fmtLatency(l Latency, full bool) string {
	if l.Count == 0 {
		return "none"
	}
	if full {
		return fmt.Sprintf("p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
	}
	return fmt.Sprintf("p50 %.3f  p99 %.3f  max %.3f  (n=%d)", l.P50, l.P99, l.Max, l.Count)
}

// WriteTable writes the report as a human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := fmt.Sprintf("speed %gx (closed loop)", r.Speed)
	if r.Mode == "rate" {
		mode = fmt.Sprintf("rate %g req/s (open loop)", r.Rate)
	}
	fmt.Fprintf(tw, "replay\t%s, %d games over %d sessions, %.1fs sending\n", mode, r.Games, r.Sessions, r.DurationS)
	fmt.Fprintf(tw, "requests\t%d\t%.1f/s\n", r.Requests, r.RequestsPerSec)
	fmt.Fprintf(tw, "events sent\t%d\t%.1f/s\t(resends included)\n", r.EventsSent, r.EventsSentPerSec)
	fmt.Fprintf(tw, "events distinct\t%d\t\t(answered 2xx: %d)\n", r.EventsDistinct, r.EventsAcked)
	if r.Subscribed {
		fmt.Fprintf(tw, "events delivered\t%d\t%.1f/s\n", r.EventsDelivered, r.EventsDeliveredPerSec)
	} else {
		fmt.Fprintf(tw, "events delivered\t-\t\t(no --grpc subscription)\n")
	}
	fmt.Fprintf(tw, "HTTP status\t%s\n", fmtStatus(r.Status))
	fmt.Fprintf(tw, "transport errors\t%d\t\t%s\n", r.TransportErrors, r.FirstError)
	fmt.Fprintf(tw, "HTTP latency ms\t%s\n", fmtLatency(r.HTTPLatency, true))
	if r.Subscribed {
		fmt.Fprintf(tw, "ingest->subscriber ms\t%s\n", fmtLatency(r.DeliveryLatency, false))
		fmt.Fprintf(tw, "lost\t%d\n", r.Lost)
		fmt.Fprintf(tw, "duplicates\t%d\n", r.Duplicates)
		fmt.Fprintf(tw, "delivered, not answered 2xx\t%d\n", r.DeliveredNotAcked)
		fmt.Fprintf(tw, "foreign / deadletter\t%d / %d\n", r.Foreign, r.Deadletter)
	}
	if r.Mode == "rate" {
		fmt.Fprintf(tw, "backlog (never sent)\t%d\n", r.Backlog)
	} else {
		fmt.Fprintf(tw, "late sends (>10ms)\t%d\n", r.LateSends)
	}
	if r.Untracked > 0 {
		fmt.Fprintf(tw, "untracked (non-UUID ids)\t%d\n", r.Untracked)
	}
	if len(r.LostIDs) > 0 {
		fmt.Fprintf(tw, "lost ids (first)\t%s\n", strings.Join(r.LostIDs, " "))
	}
	if len(r.DuplicateIDs) > 0 {
		fmt.Fprintf(tw, "duplicate ids (first)\t%s\n", strings.Join(r.DuplicateIDs, " "))
	}
	for _, wmsg := range r.Warnings {
		fmt.Fprintf(tw, "warning\t%s\n", wmsg)
	}
	return tw.Flush()
}

// Failed reports whether the run shows loss or duplicates, or answers other
// than 2xx, or transport errors.
func (r *Report) Failed() bool {
	if r.Lost > 0 || r.Duplicates > 0 || r.TransportErrors > 0 {
		return true
	}
	for k, n := range r.Status {
		if n > 0 && !strings.HasPrefix(k, "2") {
			return true
		}
	}
	return false
}
