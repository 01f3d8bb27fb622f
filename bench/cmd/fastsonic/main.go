// Command fastsonic runs the bare fasthttp + sonic decode-and-discard
// baseline (package bench/fastsonic) for load tests: it answers
// {"status":"ok"} to POST /api/v1/events/batch and POST /api/v1/events after
// decoding the body with sonic, or with -discard without decoding (the HTTP
// ceiling). It listens on loopback only and stops by itself after -duration,
// or on SIGINT/SIGTERM.
//
//	go run ./bench/cmd/fastsonic -addr 127.0.0.1:8081
//	then point `loadtest http` (cmd/loadtest) at http://127.0.0.1:8081
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jimbot/jimbus/bench/fastsonic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "HTTP listen address (loopback only)")
	discard := flag.Bool("discard", false, "read and discard bodies without decoding: the HTTP ceiling")
	duration := flag.Duration("duration", 10*time.Minute, "stop after this long (0: only on SIGINT/SIGTERM)")
	flag.Parse()
	if err := run(*addr, *discard, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "fastsonic:", err)
		os.Exit(1)
	}
}

func run(addr string, discard bool, duration time.Duration) error {
	if err := checkLoopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := fastsonic.New(fastsonic.Options{Discard: discard})
	if err := s.Start(ln); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fastsonic: serving http://%s (discard=%v) for %v\n", ln.Addr(), discard, duration)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Stop(sctx)
}

// checkLoopback refuses an address beyond this machine: a benchmark server
// has no authentication and no business on a network.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("address %q is not loopback: benchmark servers listen on 127.0.0.1 only", addr)
	}
	return nil
}
