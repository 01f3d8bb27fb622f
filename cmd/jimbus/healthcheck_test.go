package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// healthcheck runs `jimbus healthcheck args...` and returns its exit code,
// stdout and stderr.
func healthcheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"healthcheck", "--timeout", "5s"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHealthcheckTLS: against a bus serving TLS (and a secret, which /health
// does not need), plain http fails; https succeeds with the CA (flag or
// JIMBUS_TLS_CA) or --insecure-skip-verify, and fails without either.
func TestHealthcheckTLS(t *testing.T) {
	checkLeaks(t)
	t.Setenv("JIMBUS_TLS_CA", "")
	cert, key, pool := selfSigned(t, t.TempDir())
	_, secretFile := writeSecret(t)
	b := startBusWith(t, busOpts{roots: pool}, "--tls-cert", cert, "--tls-key", key, "--auth-token-file", secretFile)
	addr := b.srv.httpLn.Addr().String()
	https := "https://" + addr + "/health"

	code, _, stderr := healthcheck(t, "--url", "http://"+addr+"/health")
	require.Equal(t, 1, code, stderr)

	code, stdout, stderr := healthcheck(t, "--url", https, "--tls-ca", cert)
	require.Equal(t, 0, code, stderr)
	require.NotEmpty(t, strings.TrimSpace(stdout))

	code, _, stderr = healthcheck(t, "--url", https)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--tls-ca")

	code, _, stderr = healthcheck(t, "--url", https, "--insecure-skip-verify")
	require.Equal(t, 0, code, stderr)

	t.Setenv("JIMBUS_TLS_CA", cert)
	code, _, stderr = healthcheck(t, "--url", https)
	require.Equal(t, 0, code, stderr)

	code, _, stderr = healthcheck(t, "--url", https, "--tls-ca", key)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "holds no PEM certificate")
}

// TestHealthcheckEnvDefault: without --url the check finds the bus that the
// container's environment starts (what the Docker HEALTHCHECK relies on):
// JIMBUS_HTTP_ADDR's port, https unverified when JIMBUS_TLS_CERT is set.
func TestHealthcheckEnvDefault(t *testing.T) {
	checkLeaks(t)
	t.Setenv("JIMBUS_TLS_CA", "")
	cert, key, pool := selfSigned(t, t.TempDir())

	tlsBus := startBusWith(t, busOpts{roots: pool}, "--tls-cert", cert, "--tls-key", key)
	_, port, err := net.SplitHostPort(tlsBus.srv.httpLn.Addr().String())
	require.NoError(t, err)
	t.Setenv("JIMBUS_HTTP_ADDR", "0.0.0.0:"+port)
	t.Setenv("JIMBUS_TLS_CERT", "/nonexistent/cert.pem") // only its presence counts
	code, _, stderr := healthcheck(t)
	require.Equal(t, 0, code, stderr)
	t.Setenv("JIMBUS_TLS_CERT", "")
	code, _, stderr = healthcheck(t)
	require.Equal(t, 1, code, "plain http against the TLS bus: %s", stderr)

	plainBus := startBusWith(t, busOpts{})
	_, port, err = net.SplitHostPort(plainBus.srv.httpLn.Addr().String())
	require.NoError(t, err)
	t.Setenv("JIMBUS_HTTP_ADDR", ":"+port)
	code, _, stderr = healthcheck(t)
	require.Equal(t, 0, code, stderr)
}

// TestHealthcheckDefaultURL: the URL derived from the environment.
func TestHealthcheckDefaultURL(t *testing.T) {
	for _, c := range []struct {
		addr, cert, want string
		ownTLS           bool
	}{
		{"", "", "http://127.0.0.1:8080/health", false},
		{"0.0.0.0:9000", "", "http://127.0.0.1:9000/health", false},
		{":9000", "c.pem", "https://127.0.0.1:9000/health", true},
		{"[::]:9000", "", "http://127.0.0.1:9000/health", false},
		{"[::1]:9000", "c.pem", "https://[::1]:9000/health", true},
		{"127.0.0.2:9000", "", "http://127.0.0.2:9000/health", false},
	} {
		t.Setenv("JIMBUS_HTTP_ADDR", c.addr)
		t.Setenv("JIMBUS_TLS_CERT", c.cert)
		url, own := defaultHealthURL()
		require.Equal(t, c.want, url, "JIMBUS_HTTP_ADDR=%q", c.addr)
		require.Equal(t, c.ownTLS, own)
	}
}
