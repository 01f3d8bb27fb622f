// Command loadtest generates, replays and blasts BalatroMCP traffic at a
// JimBus (package loadtest documents the capture format and the models).
//
//	loadtest gen --games N --duration D --out DIR [--seed S] [--outage] [--backend B] [--key-order O] [--gzip]
//	loadtest replay [--target URL] [--grpc ADDR] [--games N] [--speed X | --rate R/s]
//	                [--duration D] [--json FILE] FILE|DIR...
//	loadtest http [--target URL] [--conns C] [--duration D] (--body FILE | --synthetic-batch N)
//
// Only loopback targets are allowed unless --allow-remote is given. Exit
// status: 0 success, 1 error, 2 bad usage, 3 replay saw loss or duplicates.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jimbot/jimbus/loadtest"
	"github.com/jimbot/jimbus/route"
)

const usage = `usage:
  loadtest gen     --games N --duration D --out DIR [--seed S] [--outage] [--backend wininet|socket|curl] [--key-order hash|captures] [--gzip]
  loadtest replay  [--target URL] [--grpc ADDR] [--games N] [--speed X | --rate R/s] [--duration D]
                   [--grace D] [--conns C] [--json FILE] [--allow-remote] [--quiet]
                   [--cpuprofile FILE] FILE|DIR...
  loadtest http    [--target URL] [--conns C] [--duration D] (--body FILE | --synthetic-batch N)
                   [--grpc ADDR] [--json FILE] [--allow-remote] [--quiet] [--cpuprofile FILE]

Run "loadtest COMMAND -h" for the flags of a command. Exit status: 0 success,
1 error, 2 bad usage, 3 replay saw lost or duplicated events.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches the subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "gen":
		return runGen(args, stdout, stderr)
	case "replay":
		return runReplay(ctx, args, stdout, stderr)
	case "http":
		return runHTTP(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "loadtest: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// cpuProfileFlag adds --cpuprofile to fs. The load tester shares the
// machine with the bus in most runs; its profile tells how much of the
// figures is its own work.
func cpuProfileFlag(fs *flag.FlagSet) *string {
	return fs.String("cpuprofile", "", "write the load tester's own CPU profile to this file")
}

// startCPUProfile starts profiling into path ("": nothing) and returns the
// function that stops it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func runGen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gen", stderr)
	games := fs.Int("games", 1, "number of sessions (files) to generate")
	duration := fs.Duration("duration", 60*time.Second, "length of each session")
	out := fs.String("out", "", "output directory (created if missing); required")
	seed := fs.Uint64("seed", 1, "seed of the first session; session i uses seed+i")
	outage := fs.Bool("outage", false, "add a bus outage and the resend burst that follows it")
	outageAt := fs.Duration("outage-at", 0, "when the outage starts (default 2/5 of --duration)")
	outageFor := fs.Duration("outage-for", 0, "how long the outage lasts (default min(15s, duration/4))")
	backend := fs.String("backend", loadtest.BackendWinINet, "lua-https backend whose headers to send: wininet, socket or curl")
	keyOrder := fs.String("key-order", loadtest.KeyOrderHash, "key order of the bodies' objects: hash (each session its own, as Lua tables) or captures (the reference captures')")
	gz := fs.Bool("gzip", false, "write .cap.jsonl.gz files")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 || *out == "" || *games < 1 {
		fmt.Fprintln(stderr, "loadtest gen: need --out DIR and --games >= 1, and no positional arguments")
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "loadtest gen:", err)
		return 1
	}
	for i := range *games {
		recs, err := loadtest.Generate(loadtest.GenOptions{
			Seed: *seed + uint64(i), Duration: *duration, Outage: *outage,
			OutageAt: *outageAt, OutageFor: *outageFor, Backend: *backend, KeyOrder: *keyOrder,
		})
		if err != nil {
			fmt.Fprintln(stderr, "loadtest gen:", err)
			return 1
		}
		name := fmt.Sprintf("session-%03d.cap.jsonl", i)
		if *gz {
			name += ".gz"
		}
		path := filepath.Join(*out, name)
		if err := loadtest.WriteFile(path, recs); err != nil {
			fmt.Fprintln(stderr, "loadtest gen:", err)
			return 1
		}
		var posts, polls, bytes int
		for _, r := range recs {
			if r.Method == "GET" {
				polls++
			} else {
				posts++
				bytes += len(r.Body)
			}
		}
		fmt.Fprintf(stdout, "%s: seed %d, %d requests (%d POSTs, %d polls), %d body bytes\n",
			path, *seed+uint64(i), len(recs), posts, polls, bytes)
	}
	return 0
}

// sessionFiles expands directories into the capture files they hold.
func sessionFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".jsonl") || strings.HasSuffix(e.Name(), ".jsonl.gz")) {
				names = append(names, filepath.Join(p, e.Name()))
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s holds no .jsonl or .jsonl.gz capture", p)
		}
		slices.Sort(names)
		out = append(out, names...)
	}
	return out, nil
}

// parseRate accepts "500", "500/s" and "30000/m".
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	unit := 1.0
	switch {
	case strings.HasSuffix(s, "/s"):
		s = strings.TrimSuffix(s, "/s")
	case strings.HasSuffix(s, "/m"):
		s, unit = strings.TrimSuffix(s, "/m"), 1.0/60
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad rate %q: want a positive number of requests per second, e.g. 500/s", s)
	}
	return v * unit, nil
}

func writeJSON(path string, v any, stdout io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", stderr)
	target := fs.String("target", "http://127.0.0.1:8080", "the bus's HTTP base URL")
	grpcAddr := fs.String("grpc", "127.0.0.1:50051", `the bus's gRPC address, subscribed to with ">"; "" for none (no delivery figures)`)
	games := fs.Int("games", 1, "concurrent simulated games; game i plays file i%len(files)")
	speed := fs.Float64("speed", 1, "play at this many times real time (closed loop, each game waits for its answers)")
	rate := fs.String("rate", "", "open loop: total requests per second, e.g. 2000/s (latency counted from the schedule)")
	conns := fs.Int("conns", 0, "--rate: requests in flight at most (default max(games, 64))")
	duration := fs.Duration("duration", 30*time.Second, "stop sending after this long")
	grace := fs.Duration("grace", 3*time.Second, "wait this long after sending for deliveries")
	stagger := fs.Duration("stagger", 0, "spread the games' starts over this long (default min(5s, duration/4))")
	jsonOut := fs.String("json", "", `write the report as JSON to this file ("-": stdout)`)
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not loopback")
	quiet := fs.Bool("quiet", false, "no progress line")
	viewFlag := fs.String("payload-view", "default", "the subscription's payload view: default (the bus's), typed, or json (payload_json only; the bus builds no typed views while no subscriber wants them)")
	noProbe := fs.Bool("no-probe", false, "do not post a probe event to check the subscription first")
	salt := fs.Uint("salt", 0, "id rewriting salt (default random, so reruns are new events)")
	cpuProfile := cpuProfileFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "loadtest replay: give capture files or directories (see loadtest gen)")
		return 2
	}
	r, err := parseRate(*rate)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest replay:", err)
		return 2
	}
	speedSet := false
	fs.Visit(func(f *flag.Flag) { speedSet = speedSet || f.Name == "speed" })
	if speedSet && r > 0 {
		fmt.Fprintln(stderr, "loadtest replay: --speed and --rate exclude each other")
		return 2
	}
	files, err := sessionFiles(pos)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest replay:", err)
		return 1
	}
	var sessions [][]loadtest.Record
	for _, f := range files {
		recs, err := loadtest.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest replay:", err)
			return 1
		}
		if len(recs) == 0 {
			fmt.Fprintf(stderr, "loadtest replay: %s is empty\n", f)
			return 1
		}
		sessions = append(sessions, recs)
	}
	view, err := route.ParseView(*viewFlag)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest replay:", err)
		return 2
	}
	opts := loadtest.ReplayOptions{
		Target: *target, GRPC: *grpcAddr, Sessions: sessions, Games: *games, Speed: *speed, Rate: r,
		Conns: *conns, Duration: *duration, Grace: *grace, Stagger: *stagger, AllowRemote: *allowRemote,
		Salt: uint32(*salt), NoProbe: *noProbe, PayloadView: view,
	}
	if !*quiet {
		opts.Progress = stderr
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest replay:", err)
		return 1
	}
	rep, err := loadtest.Replay(ctx, opts)
	stopProfile()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest replay:", err)
		return 1
	}
	_ = rep.WriteTable(stdout)
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rep, stdout); err != nil {
			fmt.Fprintln(stderr, "loadtest replay:", err)
			return 1
		}
	}
	if rep.Lost > 0 || rep.Duplicates > 0 {
		return 3
	}
	return 0
}

func runHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("http", stderr)
	target := fs.String("target", "http://127.0.0.1:8080", "URL to post to; without a path, "+loadtest.PathBatch)
	grpcAddr := fs.String("grpc", "", "also subscribe here and count the events delivered")
	conns := fs.Int("conns", 16, "keep-alive connections, each posting as soon as its answer arrives")
	duration := fs.Duration("duration", 10*time.Second, "how long to run")
	bodyFile := fs.String("body", "", "file whose bytes are posted every time")
	synthetic := fs.Int("synthetic-batch", 0, "post a synthetic batch of this many events without event_id")
	contentType := fs.String("content-type", "application/json", "Content-Type of the posts")
	jsonOut := fs.String("json", "", `write the report as JSON to this file ("-": stdout)`)
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not loopback")
	quiet := fs.Bool("quiet", false, "no progress line")
	viewFlag := fs.String("payload-view", "default", "the subscription's payload view: default (the bus's), typed, or json (payload_json only; the bus builds no typed views while no subscriber wants them)")
	cpuProfile := cpuProfileFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 || (*bodyFile == "") == (*synthetic <= 0) {
		fmt.Fprintln(stderr, "loadtest http: give exactly one of --body FILE and --synthetic-batch N")
		return 2
	}
	var body []byte
	if *bodyFile != "" {
		if body, err = os.ReadFile(*bodyFile); err != nil {
			fmt.Fprintln(stderr, "loadtest http:", err)
			return 1
		}
		if strings.Contains(string(body), `"event_id"`) {
			fmt.Fprintln(stderr, "loadtest http: warning: the body carries event_id: the bus delivers it once and drops every later post as a resend")
		}
	} else {
		body = loadtest.SyntheticBatch(*synthetic)
	}
	url := *target
	if u := strings.TrimPrefix(url, "http://"); !strings.Contains(strings.TrimSuffix(u, "/"), "/") {
		url = strings.TrimSuffix(url, "/") + loadtest.PathBatch
	}
	view, err := route.ParseView(*viewFlag)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest http:", err)
		return 2
	}
	opts := loadtest.HTTPOptions{
		URL: url, Body: body, Conns: *conns, Duration: *duration, GRPC: *grpcAddr, AllowRemote: *allowRemote, PayloadView: view,
		Header: [][2]string{{"Content-Type", *contentType}, {"User-Agent", "BalatroMCP/1.0"}},
	}
	if !*quiet {
		opts.Progress = stderr
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest http:", err)
		return 1
	}
	rep, err := loadtest.LoadHTTP(ctx, opts)
	stopProfile()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest http:", err)
		return 1
	}
	_ = rep.WriteTable(stdout)
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rep, stdout); err != nil {
			fmt.Fprintln(stderr, "loadtest http:", err)
			return 1
		}
	}
	if rep.Requests == 0 {
		return 1
	}
	return 0
}
