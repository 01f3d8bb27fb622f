package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/jimbot/jimbus/grpcout"
)

// securityFlags are the `jimbus serve` flags of authentication and TLS.
type securityFlags struct {
	authTokenFile   string
	tlsCert, tlsKey string
}

func (c *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.authTokenFile, "auth-token-file", "", "file holding a shared secret (read once at start, surrounding whitespace trimmed): "+
		"HTTP needs 'Authorization: Bearer <secret>' or 'X-API-Key: <secret>' on every path but /health, "+
		"gRPC the same as metadata (authorization / x-api-key) on every service but grpc.health.v1; "+
		"BalatroMCP cannot send it, so leave it unset where an unmodified game posts")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTP and gRPC over TLS (with --tls-key); "+
		"BalatroMCP posts plain http://localhost, so leave it unset where an unmodified game posts")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
}

// security is what the flags load at start: the secret (nil: no
// authentication) and the TLS configuration (nil: plain text).
type security struct {
	secret []byte
	tls    *tls.Config
}

// load reads the secret and the key pair. Errors name the flag and the
// file, never the secret.
func (c *securityFlags) load(logger *slog.Logger) (*security, error) {
	var sec security
	if c.authTokenFile != "" {
		s, err := readSecret(c.authTokenFile, logger)
		if err != nil {
			return nil, err
		}
		sec.secret = s
	}
	switch {
	case c.tlsCert == "" && c.tlsKey == "":
	case c.tlsCert == "" || c.tlsKey == "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	default:
		pair, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("cannot load --tls-cert %s / --tls-key %s: %w", c.tlsCert, c.tlsKey, err)
		}
		sec.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	return &sec, nil
}

// readSecret reads a secret file: surrounding whitespace trimmed; it must be
// printable ASCII without spaces, because HTTP headers and gRPC metadata
// carry it. The secret itself is never logged nor put in an error.
func readSecret(path string, logger *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read --auth-token-file: %w", err)
	}
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return nil, fmt.Errorf("--auth-token-file %s is empty", path)
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f {
			return nil, fmt.Errorf("--auth-token-file %s: the secret must be printable ASCII without spaces "+
				"(it travels in an HTTP header and in gRPC metadata)", path)
		}
	}
	if logger != nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("the auth token file is readable by other users", "path", path, "mode", fi.Mode().Perm().String(),
				"hint", "chmod 600 "+path)
		}
		if len(s) < 16 {
			logger.Warn("the auth token is short and easy to guess", "length", len(s), "hint", "use 32 random bytes, e.g. openssl rand -hex 32")
		}
	}
	return s, nil
}

// authChecker checks gRPC calls for the shared secret.
type authChecker struct {
	sum     [sha256.Size]byte // of the secret: comparing hashes hides its length
	refused *prometheus.CounterVec
}

// Messages of codes.Unauthenticated. They never repeat what the client sent.
const (
	msgAuthMissing = "jimbus: authentication required: send gRPC metadata 'authorization: Bearer <token>' or 'x-api-key: <token>' (the bus runs with --auth-token-file)"
	msgAuthWrong   = "jimbus: invalid token in 'authorization' / 'x-api-key' metadata"
)

// open reports whether method needs no authentication: the gRPC health
// service, so that probes and load balancers work without the secret.
func openMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

func (a *authChecker) equal(v string) bool {
	sum := sha256.Sum256([]byte(v))
	return subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1
}

// check returns nil when ctx carries the secret.
func (a *authChecker) check(ctx context.Context, method string) error {
	if openMethod(method) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	given := false
	for _, v := range md.Get("authorization") {
		given = true
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") && a.equal(strings.TrimSpace(v[7:])) {
			return nil
		}
	}
	for _, v := range md.Get("x-api-key") {
		given = true
		if a.equal(strings.TrimSpace(v)) {
			return nil
		}
	}
	a.refused.WithLabelValues("unauthenticated").Inc()
	if !given {
		return status.Error(codes.Unauthenticated, msgAuthMissing)
	}
	return status.Error(codes.Unauthenticated, msgAuthWrong)
}

func (a *authChecker) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authChecker) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// grpcServerOptions returns the options of the gRPC server: the codec of
// the subscriber streams, TLS, and the interceptors of authentication.
func grpcServerOptions(sec *security, reg prometheus.Registerer) ([]grpc.ServerOption, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jimbus_grpc_refused_total",
		Help: "gRPC calls refused before reaching a service, by reason (unauthenticated).",
	}, []string{"reason"})
	if err := reg.Register(refused); err != nil {
		return nil, fmt.Errorf("cannot register the gRPC metrics: %w", err)
	}
	opts := []grpc.ServerOption{grpcout.ServerOption()}
	if sec.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(sec.tls.Clone())))
	}
	if sec.secret != nil {
		a := &authChecker{sum: sha256.Sum256(sec.secret), refused: refused}
		refused.WithLabelValues("unauthenticated")
		opts = append(opts, grpc.ChainUnaryInterceptor(a.unary), grpc.ChainStreamInterceptor(a.stream))
	}
	return opts, nil
}

// httpTLS is the TLS configuration of the HTTP listener: HTTP/1.1 only.
func httpTLS(sec *security) *tls.Config {
	if sec.tls == nil {
		return nil
	}
	c := sec.tls.Clone()
	c.NextProtos = []string{"http/1.1"}
	return c
}

// clientFlags are the connection flags of `jimbus tail` and `jimbus coord`.
type clientFlags struct {
	authTokenFile string
	tlsCA         string
	tlsServerName string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.authTokenFile, "auth-token-file", os.Getenv("JIMBUS_AUTH_TOKEN_FILE"),
		"file holding the bus's shared secret (--auth-token-file of jimbus serve), sent as 'authorization: Bearer' metadata")
	fs.StringVar(&c.tlsCA, "tls-ca", os.Getenv("JIMBUS_TLS_CA"),
		"PEM CA (or the self-signed) certificate of a bus serving TLS (--tls-cert); connects with TLS when set")
	fs.StringVar(&c.tlsServerName, "tls-server-name", "", "name to verify in the bus's certificate; empty: the host of --addr")
}

// tokenCreds sends the secret with every call.
type tokenCreds struct{ header string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": t.header}, nil
}

// RequireTransportSecurity is false: a bus on loopback serves plain text.
func (t tokenCreds) RequireTransportSecurity() bool { return false }

// caPool reads the PEM certificates of --tls-ca (a CA, or the bus's
// self-signed certificate) into a pool: the clients' roots.
func caPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", path)
	}
	return pool, nil
}

// dialOptions returns the transport and per-call credentials.
func (c *clientFlags) dialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if c.tlsCA != "" {
		pool, err := caPool(c.tlsCA)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{RootCAs: pool, ServerName: c.tlsServerName, MinVersion: tls.VersionTLS12}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if c.authTokenFile != "" {
		s, err := readSecret(c.authTokenFile, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{header: "Bearer " + string(s)}))
	}
	return opts, nil
}
