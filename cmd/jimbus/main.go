// Command jimbus is the JimBot event bus and resource coordinator in one
// binary.
//
//	jimbus [serve] [flags]     run the service (HTTP :8080, gRPC :50051 on loopback)
//	jimbus tail [PATTERN...]   print the events of a running bus, one JSON line each
//	jimbus coord status|watch  show the coordinator's allocations
//	jimbus healthcheck         exit 0 when GET /health answers 200 (Docker)
//	jimbus version
//
// Every serve flag can also be set through the environment as
// JIMBUS_<FLAG>, the flag's name in upper case with '-' as '_'
// (--http-addr is JIMBUS_HTTP_ADDR); a flag on the command line wins.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches the subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr)
	case "tail":
		return runTail(ctx, args, stdout, stderr)
	case "coord":
		return runCoordCommand(ctx, args, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "jimbus", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "jimbus: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

const usage = `Usage:
  jimbus [serve] [flags]      run the event bus (and the resource coordinator)
  jimbus tail [flags] [PATTERN...]
                              print events from a running bus as JSON lines
  jimbus coord status|watch   show the coordinator's allocations
  jimbus healthcheck [flags]  exit 0 when a running bus answers GET /health (http or https)
  jimbus version

Run 'jimbus serve --help' for the service's flags; each can also be set
through the environment as JIMBUS_<FLAG> (--http-addr: JIMBUS_HTTP_ADDR).
`
