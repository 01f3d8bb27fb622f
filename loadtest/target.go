package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// httpTarget is a parsed --target: the base URL without a trailing slash and
// the host:port to dial.
type httpTarget struct {
	base string // http://host:port
	addr string // host:port
	path string // the URL's path, "" when none
}

func parseHTTPTarget(raw string, allowRemote bool) (httpTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return httpTarget{}, fmt.Errorf("cannot parse target %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return httpTarget{}, fmt.Errorf("target %q: only http:// is supported", raw)
	}
	if u.Host == "" {
		return httpTarget{}, fmt.Errorf("target %q has no host", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if err := checkLoopback(u.Hostname(), allowRemote); err != nil {
		return httpTarget{}, err
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return httpTarget{base: "http://" + addr, addr: addr, path: path}, nil
}

// checkGRPCAddr checks a host:port gRPC address.
func checkGRPCAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("gRPC address %q: %w", addr, err)
	}
	return checkLoopback(host, allowRemote)
}

// checkLoopback refuses a host that is not loopback (every address it
// resolves to must be) unless allowRemote is set.
func checkLoopback(host string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("refusing non-loopback host %s; pass --allow-remote (ReplayOptions.AllowRemote) to load another machine", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("refusing host %s: it resolves to non-loopback %s; pass --allow-remote to load another machine", host, ip.IP)
		}
	}
	return nil
}

// dialTCP dials addr (host:port) directly: fasthttp's default dialer keeps
// a process-wide DNS cache with a goroutine that never ends, which a load
// tester aimed at loopback does not need.
func dialTCP(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	return d.Dial("tcp", addr)
}
