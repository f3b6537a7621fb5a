package heartlogtest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded servers routed to each other
// over loopback, as ops/cluster deploys it on three machines: each node
// has its own store and fsyncs every write (sync_interval always).
type Cluster struct {
	Nodes []*ClusterNode
}

// ClusterNode is one server of a Cluster. Server is nil while it is down.
type ClusterNode struct {
	Name     string
	URL      string
	StoreDir string
	Server   *server.Server
	opts     server.Options
}

// StartCluster starts size servers and waits until their JetStream meta
// group has a leader and every node is current with it. Every node routes
// to every other, so a node that is shut down and restarted rejoins.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	ports := freePorts(t, size)
	routes := make([]string, size)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	dir := t.TempDir()
	c := &Cluster{}
	t.Cleanup(c.shutdownAll)
	for i := range size {
		n := &ClusterNode{Name: fmt.Sprintf("heartlog-%d", i+1), StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
		n.opts = server.Options{
			ServerName: n.Name,
			Host:       "127.0.0.1",
			Port:       -1,
			NoSigs:     true,
			JetStream:  true,
			SyncAlways: true,
			StoreDir:   n.StoreDir,
			MaxPayload: 1 << 20,
			Cluster:    server.ClusterOpts{Name: "heartlog-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.Nodes = append(c.Nodes, n)
		n.start(t)
	}
	c.WaitFormed(t)
	return c
}

// freePorts reserves n distinct loopback ports and releases them for the
// route listeners, which must be known before any server starts.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (n *ClusterNode) start(t testing.TB) {
	t.Helper()
	opts := n.opts
	ns, err := server.NewServer(&opts)
	if err != nil {
		t.Fatalf("nats server %s: %v", n.Name, err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		t.Fatalf("nats server %s did not start listening within 30s", n.Name)
	}
	n.Server = ns
	n.URL = ns.ClientURL()
	// A restart comes back on the same client port, which clients have in
	// their server lists.
	n.opts.Port = ns.Addr().(*net.TCPAddr).Port
}

// URLs is every node's client URL, comma-separated: what HEARTLOG_NATS_URL
// holds in a cluster deployment.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Node is the node with the given server name, or nil.
func (c *Cluster) Node(name string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Shutdown stops the node; its store stays for Restart.
func (n *ClusterNode) Shutdown() {
	if n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Server = nil
}

// Restart starts a node that was shut down again, on its ports and store,
// and waits until it has rejoined the cluster.
func (c *Cluster) Restart(t testing.TB, n *ClusterNode) {
	t.Helper()
	n.start(t)
	c.WaitFormed(t)
}

// WaitFormed waits until the running nodes have a JetStream meta leader
// and each of them is current with it.
func (c *Cluster) WaitFormed(t testing.TB) {
	t.Helper()
	formed := Eventually(45*time.Second, func() bool {
		leaders := 0
		for _, n := range c.Nodes {
			if n.Server == nil {
				continue
			}
			if !n.Server.JetStreamIsCurrent() {
				return false
			}
			if n.Server.JetStreamIsLeader() {
				leaders++
			}
		}
		return leaders == 1
	})
	if !formed {
		t.Fatal("the NATS cluster did not elect a JetStream meta leader within 45s")
	}
}

func (c *Cluster) shutdownAll() {
	for _, n := range c.Nodes {
		n.Shutdown()
	}
}
