// Package wiring builds heartlog's connections and HTTP servers: the NATS
// connection with its JetStream context, the Postgres pool with the
// migrations, and the API and admin servers with their timeouts. Every
// entry point connects through it (cmd/heartlog, ops/bench, ops/chaos and
// the test kit in internal/heartlogtest), so that a setting that matters in
// production (a reconnect policy, the async publish window, a header
// limit) is written once, and the benchmarks and tests measure the service
// as it runs.
//
// Callers pass values, not the environment: cmd/heartlog reads config and
// names the HEARTLOG_* variable in its errors; the bench and the tests pass
// the URLs of the servers they started.
package wiring

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

const (
	// DefaultReconnectWait is the pause between reconnect attempts.
	DefaultReconnectWait = 500 * time.Millisecond
	// PublishAsyncMaxPending bounds the asynchronous publishes awaiting
	// their acks on one JetStream context (nats.go's default is 4,000).
	// Every flush of the streams.Publisher in flight shares it, one
	// message per (day, partition); past it a publish stalls and then
	// fails, and ingest answers 503.
	PublishAsyncMaxPending = 8192
)

// NATSOptions configure ConnectNATS. The zero value is heartlog's own
// connection, unnamed and unlogged.
type NATSOptions struct {
	// Name is shown by the server (connz, logs) as "heartlog <Name>".
	// Default: "heartlog".
	Name string
	// Creds is a NATS credentials file (HEARTLOG_NATS_CREDS). Default: none.
	Creds string
	// ReconnectWait is the pause between reconnect attempts. Default:
	// DefaultReconnectWait. Tests that restart their server set it shorter.
	ReconnectWait time.Duration
	// Log gets a warning when the connection drops and a line when it is
	// back. Default: the zero Logger, which logs nothing.
	Log zerolog.Logger
}

// ConnectNATS connects to the servers in url (comma-separated) with
// unlimited reconnects: a NATS restart must not take heartlog down, only
// make ingest answer 503 meanwhile. The JetStream context has
// PublishAsyncMaxPending. Errors name the URL without its credentials.
func ConnectNATS(url string, o NATSOptions) (*nats.Conn, jetstream.JetStream, error) {
	name := "heartlog"
	if o.Name != "" {
		name += " " + o.Name
	}
	wait := o.ReconnectWait
	if wait <= 0 {
		wait = DefaultReconnectWait
	}
	log := o.Log
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own Close at exit, not an outage
			}
			log.Warn().Err(err).Msg("NATS disconnected; ingest answers 503 until it is back")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(url), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(PublishAsyncMaxPending))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// RedactURL drops the credentials from each URL of a comma-separated list,
// for errors and log lines.
func RedactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
