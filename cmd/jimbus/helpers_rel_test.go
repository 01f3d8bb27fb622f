package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// lockedBuffer is a log sink for tests: slog writes from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// busOpts configure startBusWith.
type busOpts struct {
	log   io.Writer      // receives every log line at debug level; nil: discarded
	roots *x509.CertPool // the bus serves TLS: the HTTP client trusts these
}

// startBusWith is startBus with a log sink and TLS.
func startBusWith(t *testing.T, o busOpts, args ...string) *testBus {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var cfg config
	cfg.register(fs)
	args = append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--nvml=false"}, args...)
	require.NoError(t, fs.Parse(args))
	w := o.log
	if w == nil {
		w = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newServer(cfg, logger)
	require.NoError(t, err)
	require.NoError(t, s.start(context.Background()))
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	scheme := "http://"
	if o.roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: o.roots}
		scheme = "https://"
	}
	b := &testBus{
		t: t, srv: s,
		httpURL: scheme + s.httpLn.Addr().String(),
		grpc:    s.grpcLn.Addr().String(),
		client:  &http.Client{Timeout: 30 * time.Second, Transport: tr},
	}
	t.Cleanup(func() { b.stop() })
	code, body := b.do("GET", "/health", "", "")
	require.Equal(t, 200, code, body)
	return b
}

// checkLeaks makes the test fail if it leaves goroutines behind. Call it
// first: its cleanup then runs after every other one (the bus's stop, the
// clients' Close).
func checkLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			// fasthttp's process-wide Date header clock, started once.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
	})
}

// dial opens a gRPC client connection to the bus, closed at cleanup.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// metricSum sums every series of a metric family whose labels include
// match (name=value pairs); 0 when the family is absent.
func metricSum(t *testing.T, g prometheus.Gatherer, name string, match ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(match); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == match[i] && lp.GetValue() == match[i+1]
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key into dir, and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jimbus test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	pool = x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	return certFile, keyFile, pool
}

// tlsCreds are the gRPC transport credentials trusting pool.
func tlsCreds(pool *x509.CertPool) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))
}

// postEvents posts body to the batch endpoint with the given headers
// (name, value pairs) and returns the status, Retry-After and body; err is a
// transport error.
func postEvents(client *http.Client, url, body string, headers ...string) (code int, retryAfter, out string, err error) {
	req, err := http.NewRequest("POST", url+"/api/v1/events/batch", strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), err
}

// idBatch is a batch body of the events with ids prefix0..prefix(n-1),
// each with a payload of pad bytes.
func idBatch(prefix string, from, n, pad int) string {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	p := strings.Repeat("p", pad)
	for i := from; i < from+n; i++ {
		if i > from {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"type":"HEARTBEAT","source":"rel","event_id":"%s%d","payload":{"i":%d,"pad":"%s"}}`, prefix, i, i, p)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
