package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	f := func(addr string, ok bool) {
		t.Helper()
		err := checkLoopback(addr)
		require.Equal(t, ok, err == nil, "%s: %v", addr, err)
	}
	f("127.0.0.1:8081", true)
	f("localhost:0", true)
	f("[::1]:80", true)
	f(":8081", false)
	f("0.0.0.0:8081", false)
	f("192.168.1.2:8081", false)
	f("no-port", false)
}

// TestRunStopsByItself: the program serves, then stops after -duration.
func TestRunStopsByItself(t *testing.T) {
	start := time.Now()
	require.NoError(t, run("127.0.0.1:0", false, 50*time.Millisecond))
	require.Less(t, time.Since(start), 5*time.Second)
}
