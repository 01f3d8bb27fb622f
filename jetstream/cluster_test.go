package jetstream

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// testCluster is a three-node NATS cluster with JetStream in this process,
// on loopback ports chosen by the kernel.
type testCluster struct {
	nodes []*server.Server
	once  []sync.Once
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	// The routes must name every node's cluster port before any starts:
	// reserve free ports, then hand them to the servers.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &testCluster{once: make([]sync.Once, n)}
	dir := t.TempDir()
	for i := range n {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Cluster: server.ClusterOpts{
				Name: "jimbus-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
			NoLog:  true,
			NoSigs: true,
		})
		require.NoError(t, err)
		srv.Start()
		c.nodes = append(c.nodes, srv)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for _, srv := range c.nodes {
		require.True(t, srv.ReadyForConnections(10*time.Second))
	}
	require.Eventually(t, func() bool {
		for _, srv := range c.nodes {
			if srv.JetStreamIsLeader() {
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no JetStream meta leader")
	return c
}

func (c *testCluster) stop(i int) {
	c.once[i].Do(func() {
		c.nodes[i].Shutdown()
		c.nodes[i].WaitForShutdown()
	})
}

// urls lists the client URLs starting at node first.
func (c *testCluster) urls(first int) string {
	var out []string
	for k := range c.nodes {
		out = append(out, c.nodes[(first+k)%len(c.nodes)].ClientURL())
	}
	return strings.Join(out, ",")
}

// TestClusterTwoInstances: two jimbus instances on one three-node NATS
// cluster form one bus: events posted over HTTP to the first reach a
// durable subscriber of the second over gRPC. One NATS node (the stream's
// leader) is stopped in the middle of a bounded load, the posting clients
// resend what was not answered ok (as BalatroMCP does); every event that was
// answered ok is received, counted per event id.
func TestClusterTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	t0 := time.Now()
	c := startCluster(t, 3)
	t.Logf("cluster up after %v", time.Since(t0))
	opts := func() Options {
		// Events delivered while the consumer's leader goes away come again
		// after AckWait: keep it short.
		return Options{Replicas: 3, AckTimeout: 2 * time.Second, AckWait: 2 * time.Second, pullExpiry: 2 * time.Second}
	}
	oa := opts()
	oa.URL = c.urls(0)
	a := startEnv(t, oa, true)
	ob := opts()
	ob.URL = c.urls(1)
	b := startEnv(t, ob, false)

	t.Logf("instances up after %v", time.Since(t0))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	st := subscribe(t, ctx, b.client, &jimbotpb.SubscribeRequest{SubscriberId: "analytics"})

	received := make(map[string]int)
	var recvMu sync.Mutex
	recvDone := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			recvMu.Lock()
			for _, ev := range m.GetEvents() {
				received[ev.GetEventId()]++
			}
			recvMu.Unlock()
		}
	}()

	const (
		clients  = 4
		requests = 50 // per client
		per      = 5  // events per request
		attempts = 40 // resends of one request before the client gives up on it
	)
	var (
		okMu      sync.Mutex
		okIDs     []string
		okReqs    atomic.Int64
		resends   atomic.Int64
		abandoned atomic.Int64
		stopped   = make(chan string, 1)
	)
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			for r := range requests {
				list := ids(fmt.Sprintf("c%d-r%d", cl, r), 0, per)
				ok := false
				for range attempts {
					code, err := a.post(list)
					if err == nil && code == 200 {
						ok = true
						break
					}
					resends.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
				if !ok {
					abandoned.Add(1)
					continue
				}
				okMu.Lock()
				okIDs = append(okIDs, list...)
				okMu.Unlock()
				okReqs.Add(1)
			}
		})
	}
	// Stop the stream's leader once a third of the requests were answered.
	wg.Go(func() {
		for okReqs.Load() < clients*requests/3 {
			time.Sleep(5 * time.Millisecond)
		}
		info, err := a.bus.js.Stream(ctx, a.bus.opts.Stream)
		if err != nil {
			stopped <- "cannot look up the stream: " + err.Error()
			return
		}
		leader := info.CachedInfo().Cluster.Leader
		for i, n := range c.nodes {
			if n.Name() == leader {
				c.stop(i)
			}
		}
		stopped <- leader
	})
	wg.Wait()
	leader := <-stopped
	t.Logf("load done after %v", time.Since(t0))
	t.Logf("stopped stream leader %s; %d requests ok, %d resends, %d abandoned", leader, okReqs.Load(), resends.Load(), abandoned.Load())
	require.True(t, strings.HasPrefix(leader, "n"), leader)
	require.Greater(t, okReqs.Load(), int64(clients*requests/2), "most requests are answered ok across the failover")

	okMu.Lock()
	want := okIDs
	okMu.Unlock()
	missing := func() []string {
		recvMu.Lock()
		defer recvMu.Unlock()
		var out []string
		for _, id := range want {
			if received[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		select {
		case err := <-recvDone:
			t.Fatalf("the subscription ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("received after %v", time.Since(t0))
	m := missing()
	require.Empty(t, m, "%d of %d events answered ok were not received", len(m), len(want))
	recvMu.Lock()
	dups := 0
	for _, n := range received {
		if n > 1 {
			dups++
		}
	}
	recvMu.Unlock()
	t.Logf("%d events answered ok, all received; %d received more than once", len(want), dups)
}
