package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
BenchmarkIngestBatch50/server=jimbus-2      	   10000	    100000 ns/op	 250.00 MB/s	    500000 events/s	      1000 cpu-ns/event	 1.9 cpus	      97 B/op	       1 allocs/op
BenchmarkIngestBatch50/server=fastsonic-2   	   30000	     40000 ns/op	 600.00 MB/s	   1000000 events/s	       800 cpu-ns/event	 1.9 cpus	      32 B/op	       1 allocs/op
BenchmarkIngestBatch50/server=nethttp-2     	    6000	    180000 ns/op	 127.00 MB/s	    100000 events/s	      3000 cpu-ns/event	 1.9 cpus	  112054 B/op	     310 allocs/op
BenchmarkIngestBatch50/server=jimbus-2      	   10000	    100000 ns/op	 250.00 MB/s	    600000 events/s	      1000 cpu-ns/event	 1.9 cpus	      97 B/op	       1 allocs/op
BenchmarkIngestBatch50/server=fastsonic-2   	   30000	     40000 ns/op	 600.00 MB/s	    600000 events/s	       800 cpu-ns/event	 1.9 cpus	      32 B/op	       1 allocs/op
BenchmarkIngestBatch50/server=nethttp-2     	    6000	    180000 ns/op	 127.00 MB/s	    200000 events/s	      3000 cpu-ns/event	 1.9 cpus	  112054 B/op	     310 allocs/op
--- BENCH: BenchmarkIngestBatch50
    bench_timing_test.go:80: events/s ratios: jimbus/fastsonic=1.00
BenchmarkEndToEnd/server=jimbus             	    2000	    600000 ns/op	     400000 events/s
BenchmarkOther-2                            	 1000	 1 ns/op
PASS
`

func TestParseReport(t *testing.T) {
	fams, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Len(t, fams, 2)
	require.Equal(t, "IngestBatch50", fams[0].name)
	require.Equal(t, []string{"jimbus", "fastsonic", "nethttp"}, fams[0].servers)
	require.Len(t, fams[0].runs["jimbus"], 2)
	require.Equal(t, 600000.0, fams[0].runs["jimbus"][1]["events/s"])
	require.Equal(t, "EndToEnd", fams[1].name)

	var out strings.Builder
	missed := report(&out, fams)
	s := out.String()
	// Paired ratios: 0.5 and 1.0 against fastsonic, 5 and 3 against nethttp.
	require.Contains(t, s, "jimbus/fastsonic events/s 0.75 [0.50-1.00]")
	require.Contains(t, s, "per CPU 0.80")
	require.Contains(t, s, "jimbus/nethttp   events/s 4.00 [3.00-5.00]")
	require.Contains(t, s, "target >= 0.90: MISSED")
	require.Contains(t, s, "target >= 3.00: met")
	require.Contains(t, s, "jimbus events/s 400k  target >= 500k: MISSED")
	require.Equal(t, 2, missed)
}

func TestStat(t *testing.T) {
	f := func(xs []float64, want stat) {
		t.Helper()
		got, ok := statOf(xs)
		require.True(t, ok)
		require.Equal(t, want, got)
	}
	f([]float64{3}, stat{3, 3, 3})
	f([]float64{3, 1, 2}, stat{2, 1, 3})
	f([]float64{4, 1, 2, 3}, stat{2.5, 1, 4})
	_, ok := statOf(nil)
	require.False(t, ok)
}
