package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// runHealthcheck asks a running bus's GET /health and exits 0 when it
// answers 200. The Docker HEALTHCHECK uses it: the runtime image has no
// shell, curl or wget. /health needs no secret, even with --auth-token-file.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jimbus healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "health URL of the bus; default: the bus this environment would start, "+
		"http://127.0.0.1:<port of JIMBUS_HTTP_ADDR, else 8080>/health, "+
		"https without verifying the certificate when JIMBUS_TLS_CERT is set (the bus's own certificate, on loopback)")
	caFile := fs.String("tls-ca", os.Getenv("JIMBUS_TLS_CA"),
		"PEM CA (or the self-signed) certificate to verify an https bus against (env JIMBUS_TLS_CA)")
	skipVerify := fs.Bool("insecure-skip-verify", false,
		"do not verify the bus's certificate, e.g. a container probing itself on 127.0.0.1 with a certificate for its public name; "+
			"this checks liveness only, not who answers")
	timeout := fs.Duration("timeout", 3*time.Second, "longest wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" {
		var own bool
		*url, own = defaultHealthURL()
		*skipVerify = *skipVerify || own
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: *skipVerify}
	if *caFile != "" && !*skipVerify {
		var err error
		if cfg.RootCAs, err = caPool(*caFile); err != nil {
			fmt.Fprintln(stderr, "jimbus healthcheck:", err)
			return 2
		}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "jimbus healthcheck:", err)
		return 2
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "jimbus healthcheck:", err)
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			fmt.Fprintln(stderr, "jimbus healthcheck: give the bus's CA with --tls-ca, or --insecure-skip-verify to check liveness only")
		}
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "jimbus healthcheck: %s: %s\n", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return 0
}

// defaultHealthURL is the /health of the bus that `jimbus serve` would start
// in this environment: the port of JIMBUS_HTTP_ADDR (8080 when unset), on
// loopback unless it names one host, and https when JIMBUS_TLS_CERT is set.
// ownTLS is true for https: the certificate is the process's own, whose
// names need not include the loopback address, so it is not verified.
func defaultHealthURL() (url string, ownTLS bool) {
	host, port := "127.0.0.1", "8080"
	if h, p, err := net.SplitHostPort(os.Getenv("JIMBUS_HTTP_ADDR")); err == nil {
		port = p
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			host = h
		}
	}
	scheme := "http"
	if os.Getenv("JIMBUS_TLS_CERT") != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/health", scheme == "https"
}
