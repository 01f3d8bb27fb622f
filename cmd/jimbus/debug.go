package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer serves Go's runtime profiles (net/http/pprof) on
// --debug-addr, a listener of its own, so that an operator can profile a
// running bus (`go tool pprof http://127.0.0.1:6060/debug/pprof/profile`)
// without exposing the profiles on the event port. Off by default.
type debugServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// startDebug listens on addr and serves the profiles; addr "" starts nothing.
func startDebug(addr string, logger *slog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for --debug-addr: %w", err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		logger.Warn("--debug-addr is reachable beyond this machine; the profiles it serves show the bus's internals",
			"addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { d.done <- d.srv.Serve(ln) }()
	logger.Info("serving profiles", "debug_addr", ln.Addr().String())
	return d, nil
}

// stop closes the listener and the open connections (a profile being
// taken is cut short).
func (d *debugServer) stop(context.Context) error {
	if d == nil {
		return nil
	}
	err := d.srv.Close()
	if serr := <-d.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
