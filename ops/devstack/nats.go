// Package devstack starts the parts of heartlog's local stack that run in
// process: today the NATS server that `heartlog dev` and the tests embed,
// configured from nats.conf. It must never be used by `heartlog serve` or
// `heartlog process`, which connect to a real NATS deployment.
package devstack

import (
	"fmt"
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
