// Package devstack starts the parts of heartlog's local stack that run in
// process or beside it: the NATS server that `heartlog dev` and the tests
// embed, configured from nats.conf, and throwaway Postgres clusters for
// the tests' outages and the benchmarks' second server. It must never be
// used by `heartlog serve` or `heartlog process`, which connect to real
// deployments.
package devstack

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions choose what the embedded server changes from nats.conf.
type NATSOptions struct {
	// ConfigFile is a nats-server config; empty means built-in defaults
	// with JetStream on and sync_interval always.
	ConfigFile string
	// StoreDir overrides the JetStream store directory (required without a
	// config file).
	StoreDir string
	// Host and Port override the client listener; Port -1 picks a free one.
	Host string
	Port int
	// NoMonitoring turns the HTTP monitoring port off (tests run many servers).
	NoMonitoring bool
	// SyncAlways, when set, overrides the config's sync_interval: always
	// (benchmarks compare both).
	SyncAlways *bool
}

// StartNATS starts an embedded nats-server with JetStream and waits until
// it accepts connections.
func StartNATS(o NATSOptions) (*server.Server, error) {
	opts, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("devstack: nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("devstack: nats server did not start listening on %s:%d within 30s", opts.Host, opts.Port)
	}
	return ns, nil
}

// Addrs are the TCP addresses the server would listen on: its client
// port and, where configured, its monitoring, cluster, leaf node and
// websocket ports. Check them with CheckFree before StartNATS, which
// otherwise waits its 30 s for a port another process holds.
func (o NATSOptions) Addrs() ([]Addr, error) {
	opts, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	var addrs []Addr
	port := opts.Port
	if port == 0 {
		port = server.DEFAULT_PORT
	}
	if port > 0 { // -1: a free one, picked at start
		addrs = append(addrs, Addr{"NATS client port (HEARTLOG_NATS_URL)", hostPort(opts.Host, port)})
	}
	for _, a := range []struct {
		name string
		host string
		port int
	}{
		{"NATS monitoring port (http in " + o.configName() + ")", opts.HTTPHost, opts.HTTPPort},
		{"NATS cluster port (cluster in " + o.configName() + ")", opts.Cluster.Host, opts.Cluster.Port},
		{"NATS leaf node port (leafnodes in " + o.configName() + ")", opts.LeafNode.Host, opts.LeafNode.Port},
		{"NATS websocket port (websocket in " + o.configName() + ")", opts.Websocket.Host, opts.Websocket.Port},
	} {
		if a.port > 0 {
			addrs = append(addrs, Addr{a.name, hostPort(a.host, a.port)})
		}
	}
	return addrs, nil
}

func (o NATSOptions) configName() string {
	if o.ConfigFile == "" {
		return "the defaults"
	}
	return o.ConfigFile
}

func hostPort(host string, port int) string {
	if host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// serverOptions are nats.conf's options with o's overrides applied.
func (o NATSOptions) serverOptions() (*server.Options, error) {
	opts := &server.Options{JetStream: true, SyncAlways: true, ServerName: "heartlog-embedded"}
	if o.ConfigFile != "" {
		var err error
		opts, err = server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("devstack: read %s: %w", o.ConfigFile, err)
		}
	}
	if o.StoreDir != "" {
		opts.StoreDir = o.StoreDir
	}
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("devstack: no JetStream store directory")
	}
	if o.Host != "" {
		opts.Host = o.Host
	}
	if o.Port != 0 {
		opts.Port = o.Port
	}
	if o.NoMonitoring {
		opts.HTTPPort, opts.HTTPHost = 0, ""
	}
	if o.SyncAlways != nil {
		opts.SyncAlways = *o.SyncAlways
	}
	opts.JetStream = true
	opts.NoSigs = true
	return opts, nil
}
