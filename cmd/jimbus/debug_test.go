package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDebugAddr: --debug-addr serves the profiles on a listener of its own;
// without it there is none, and the event port never serves them.
func TestDebugAddr(t *testing.T) {
	b := startBus(t, "--debug-addr", "127.0.0.1:0")
	require.NotNil(t, b.srv.debug)
	base := "http://" + b.srv.debug.ln.Addr().String()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "%s: %s", path, body)
		require.NotEmpty(t, body)
	}
	code, _ := b.do("GET", "/debug/pprof/", "", "")
	require.Equal(t, 404, code, "not on the event port")

	plain := startBus(t)
	require.Nil(t, plain.srv.debug)
}
