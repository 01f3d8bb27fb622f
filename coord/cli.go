package coord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// PrintStatus asks the coordinator behind c for the status of every resource
// and writes it to w as tables: resources, GPU devices, allocations. It backs
// `jimbus coord status`.
func PrintStatus(ctx context.Context, c jimbotpb.ResourceCoordinatorClient, w io.Writer) error {
	resp, err := c.GetResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{})
	if err != nil {
		return fmt.Errorf("cannot get the resource status: %w", err)
	}
	return WriteStatus(w, resp)
}

// WriteStatus writes resp as PrintStatus does.
func WriteStatus(w io.Writer, resp *jimbotpb.ResourceStatusResponse) error {
	now := resp.GetTimestamp().AsTime()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tUNIT\tCAPACITY\tALLOCATED\tAVAILABLE\tQUEUED\tLEASES")
	for _, s := range resp.GetStatuses() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", resourceLabel(s.GetResource()), s.GetUnit(),
			s.GetTotalCapacity(), s.GetAllocated(), s.GetAvailable(), s.GetQueued(), len(s.GetAllocations()))
	}
	for _, s := range resp.GetStatuses() {
		if len(s.GetDevices()) > 0 || s.GetSource() != "" {
			fmt.Fprintln(tw)
			age := ""
			if a := s.GetSnapshotAge(); a != nil {
				age = fmt.Sprintf(", snapshot %s old", a.AsDuration().Round(time.Millisecond))
			}
			fmt.Fprintf(tw, "GPU inventory: %s%s\n", s.GetSource(), age)
			fmt.Fprintln(tw, "DEVICE\tNAME\tTOTAL MB\tUSED MB\tEXTERNAL MB\tRESERVED MB\tAVAILABLE MB\tUTIL %\tLEASES\tPROCESSES")
			for _, d := range s.GetDevices() {
				procs := make([]string, 0, len(d.GetProcesses()))
				for _, p := range d.GetProcesses() {
					desc := fmt.Sprintf("%d:%dMB", p.GetPid(), p.GetUsedMb())
					if p.GetUsedMb() < 0 {
						desc = fmt.Sprintf("%d:?MB", p.GetPid())
					}
					if p.GetClaimedBy() != "" {
						desc += "(" + p.GetClaimedBy() + ")"
					}
					procs = append(procs, desc)
				}
				name := d.GetName()
				if d.GetUuid() != "" {
					name += " " + d.GetUuid()
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%s\n", d.GetIndex(), name, d.GetTotalMb(),
					d.GetUsedMb(), d.GetExternalMb(), d.GetReservedMb(), d.GetAvailableMb(), d.GetUtilizationPercent(),
					d.GetActiveLeases(), d.GetSlices(), dash(strings.Join(procs, " ")))
			}
		}
		if len(s.GetQuotas()) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "CLAUDE_API QUOTA\tCAPACITY\tAVAILABLE\tREFILL/S")
			for _, q := range s.GetQuotas() {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%.4g\n", q.GetName(), q.GetCapacity(), q.GetAvailable(), q.GetRefillPerSecond())
			}
		}
	}
	fmt.Fprintln(tw)
	n := 0
	for _, s := range resp.GetStatuses() {
		n += len(s.GetAllocations())
	}
	if n == 0 {
		fmt.Fprintln(tw, "no allocations")
		return tw.Flush()
	}
	fmt.Fprintln(tw, "RESOURCE\tCOMPONENT\tREQUEST\tQUANTITY\tPRIORITY\tDEVICE\tALLOCATED\tEXPIRES")
	for _, s := range resp.GetStatuses() {
		for _, a := range s.GetAllocations() {
			exp := a.GetExpiresAt().AsTime()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d %s\t%s\t%s\t%s\t%s (in %s)\n", resourceLabel(s.GetResource()),
				dash(a.GetComponent()), dash(a.GetRequestId()), a.GetQuantity(), s.GetUnit(),
				strings.TrimPrefix(a.GetPriority().String(), "PRIORITY_"), dash(a.GetDevice()),
				a.GetAllocatedAt().AsTime().UTC().Format(time.TimeOnly), exp.UTC().Format(time.TimeOnly),
				max(0, exp.Sub(now)).Round(time.Second))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Watch follows StreamResourceStatus of every resource and writes one line
// per update to w until ctx ends (then it returns nil) or the stream fails.
// It backs `jimbus coord watch`.
func Watch(ctx context.Context, c jimbotpb.ResourceCoordinatorClient, w io.Writer) error {
	stream, err := c.StreamResourceStatus(ctx, &jimbotpb.ResourceStatusRequest{})
	if err != nil {
		if ctxOver(ctx) {
			return nil
		}
		return fmt.Errorf("cannot watch the resource status: %w", err)
	}
	for {
		s, err := stream.Recv()
		if err != nil {
			if ctxOver(ctx) {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the coordinator ended the status stream")
			}
			return fmt.Errorf("status stream: %w", err)
		}
		if _, err := io.WriteString(w, FormatStatusLine(time.Now(), s)); err != nil {
			return err
		}
	}
}

// ctxOver reports whether ctx is over. gRPC may notice a deadline a moment
// before ctx itself reports it.
func ctxOver(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// FormatStatusLine renders one status update as Watch prints it.
func FormatStatusLine(at time.Time, s *jimbotpb.ResourceStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-10s allocated %d/%d %s, available %d, queued %d, leases %d",
		at.Format("15:04:05.000"), resourceLabel(s.GetResource()), s.GetAllocated(), s.GetTotalCapacity(),
		s.GetUnit(), s.GetAvailable(), s.GetQueued(), len(s.GetAllocations()))
	for _, d := range s.GetDevices() {
		fmt.Fprintf(&b, "; gpu%d used %d MB, external %d MB, util %d%%, leases %d/%d", d.GetIndex(), d.GetUsedMb(),
			d.GetExternalMb(), d.GetUtilizationPercent(), d.GetActiveLeases(), d.GetSlices())
	}
	b.WriteByte('\n')
	return b.String()
}
