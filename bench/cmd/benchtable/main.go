// Command benchtable prints the comparison table of the side-by-side
// benchmarks of package bench from `go test -bench` output (files named on
// the command line, or standard input): for every benchmark and server the
// median and range over the -count runs of events/s, cpu-ns/event, cpus,
// allocs/op and B/op, then JimBus's ratios to each other server and the
// targets of the design, met or missed.
//
// Ratios are paired by run: the k-th result of jimbus against the k-th
// result of the other server. `make bench-compare` runs the benchmark binary
// once per count, each time every server in turn, so that the k-th results
// come from one invocation, seconds apart, under about the same load (`go
// test -count N` would instead repeat each sub-benchmark N times in a row).
// The table gives the median and the range of the paired ratios. The events/s ratio is the throughput on this
// machine; the CPU ratio (the other server's cpu-ns/event over jimbus's) is
// the work per event, less disturbed by other processes.
//
// Usage:
//
//	go test -run '^$' -bench 'IngestBatch50|SingleEvent|EndToEnd' -count 5 ./bench/ > out.txt
//	go run ./bench/cmd/benchtable out.txt
//
// It exits 1 when the input holds no benchmark of package bench; a missed
// target is printed, not an error (-strict makes it one).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// target is a figure the design asks for.
type target struct {
	bench string  // benchmark family, e.g. "IngestBatch50"
	other string  // "" for an absolute events/s target of jimbus
	min   float64 // the least ratio (or events/s)
}

var targets = []target{
	{"IngestBatch50", "fastsonic", 0.9},
	{"IngestBatch50", "nethttp", 3},
	{"SingleEvent", "fastsonic", 0.9},
	{"EndToEnd", "", 500_000},
}

// metrics in the table, in order.
var columns = []string{"events/s", "cpu-ns/event", "cpus", "allocs/op", "B/op"}

// run is one result line.
type run map[string]float64

// family is one benchmark function's results: runs per server, servers in
// the order of their first appearance.
type family struct {
	name    string
	servers []string
	runs    map[string][]run
}

// parse reads `go test -bench` output and returns the families of
// benchmarks whose sub-benchmark is named server=NAME, in the order seen.
func parse(r io.Reader) ([]*family, error) {
	var fams []*family
	byName := map[string]*family{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		fam, server, ok := strings.Cut(name, "/server=")
		if !ok {
			continue
		}
		if i := strings.IndexByte(server, '/'); i >= 0 {
			fam += "/" + server[i+1:]
			server = server[:i]
		}
		r := run{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("cannot parse %q in %q: %w", f[i], sc.Text(), err)
			}
			r[f[i+1]] = v
		}
		fm := byName[fam]
		if fm == nil {
			fm = &family{name: fam, runs: map[string][]run{}}
			byName[fam] = fm
			fams = append(fams, fm)
		}
		if _, seen := fm.runs[server]; !seen {
			fm.servers = append(fm.servers, server)
		}
		fm.runs[server] = append(fm.runs[server], r)
	}
	return fams, sc.Err()
}

// stat is the median and range of a sample.
type stat struct{ med, lo, hi float64 }

func statOf(xs []float64) (stat, bool) {
	if len(xs) == 0 {
		return stat{}, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{med, s[0], s[n-1]}, true
}

func values(runs []run, metric string) []float64 {
	var out []float64
	for _, r := range runs {
		if v, ok := r[metric]; ok {
			out = append(out, v)
		}
	}
	return out
}

// paired returns f(a[k], b[k]) for the runs both have.
func paired(a, b []run, f func(x, y run) (float64, bool)) []float64 {
	var out []float64
	for k := range min(len(a), len(b)) {
		if v, ok := f(a[k], b[k]); ok {
			out = append(out, v)
		}
	}
	return out
}

// human formats v with 3 significant digits and a k/M suffix.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func (s stat) String() string {
	if s.lo == s.hi {
		return human(s.med)
	}
	return fmt.Sprintf("%s [%s-%s]", human(s.med), human(s.lo), human(s.hi))
}

// report writes the table; it returns the number of missed targets.
func report(w io.Writer, fams []*family) int {
	missed := 0
	for _, fm := range fams {
		n := 0
		for _, rs := range fm.runs {
			n = max(n, len(rs))
		}
		width := len("server")
		for _, sv := range fm.servers {
			width = max(width, len(sv))
		}
		fmt.Fprintf(w, "\n%s (%d runs: median [min-max])\n", fm.name, n)
		fmt.Fprintf(w, "  %-*s", width, "server")
		for _, c := range columns {
			fmt.Fprintf(w, " %-22s", c)
		}
		fmt.Fprintln(w)
		for _, sv := range fm.servers {
			fmt.Fprintf(w, "  %-*s", width, sv)
			for _, c := range columns {
				cell := "-"
				if st, ok := statOf(values(fm.runs[sv], c)); ok {
					cell = st.String()
				}
				fmt.Fprintf(w, " %-22s", cell)
			}
			fmt.Fprintln(w)
		}
		j := fm.runs["jimbus"]
		if j == nil {
			continue
		}
		for _, sv := range fm.servers {
			if sv == "jimbus" {
				continue
			}
			o := fm.runs[sv]
			tput, ok1 := statOf(paired(j, o, func(x, y run) (float64, bool) {
				return x["events/s"] / y["events/s"], x["events/s"] > 0 && y["events/s"] > 0
			}))
			cpu, ok2 := statOf(paired(j, o, func(x, y run) (float64, bool) {
				return y["cpu-ns/event"] / x["cpu-ns/event"], x["cpu-ns/event"] > 0 && y["cpu-ns/event"] > 0
			}))
			if !ok1 {
				continue
			}
			line := fmt.Sprintf("  %-*s events/s %-18s", width+7, "jimbus/"+sv, tput)
			if ok2 {
				line += fmt.Sprintf(" per CPU %-18s", cpu)
			}
			for _, t := range targets {
				if t.bench == fm.name && t.other == sv {
					line += verdict(tput.med, t.min, &missed)
				}
			}
			fmt.Fprintln(w, line)
		}
		for _, t := range targets {
			if t.bench == fm.name && t.other == "" {
				if st, ok := statOf(values(j, "events/s")); ok {
					fmt.Fprintf(w, "  jimbus events/s %s%s\n", st, verdict(st.med, t.min, &missed))
				}
			}
		}
	}
	return missed
}

func verdict(got, want float64, missed *int) string {
	if got >= want {
		return fmt.Sprintf("  target >= %s: met", human(want))
	}
	*missed++
	return fmt.Sprintf("  target >= %s: MISSED", human(want))
}

func main() {
	strict := flag.Bool("strict", false, "exit 2 when a target is missed")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "Usage: benchtable [-strict] [FILE...]   (go test -bench output; default stdin)")
		flag.PrintDefaults()
	}
	flag.Parse()
	var in []io.Reader
	if flag.NArg() == 0 {
		in = append(in, os.Stdin)
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = append(in, f)
	}
	fams, err := parse(io.MultiReader(in...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(fams) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no side-by-side benchmark (Benchmark.../server=NAME) in the input")
		os.Exit(1)
	}
	missed := report(os.Stdout, fams)
	if missed > 0 {
		fmt.Printf("\n%d target(s) missed\n", missed)
		if *strict {
			os.Exit(2)
		}
	}
}
