package streams_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/internal/devstack"
	"heartlog/internal/heartlogtest"
	"heartlog/streams"
)

// TestEnsureFitsTheServersStoreWithTheDefaultMaxBytes runs Ensure with the
// default HEARTLOG_STREAM_MAX_BYTES (16 GiB) against a server configured
// from nats.conf (max_file_store 20G). The server reserves each stream's
// MaxBytes against max_file_store, so a dead-letter stream that inherited
// the main stream's limit would ask for 32 GiB and never be created.
func TestEnsureFitsTheServersStoreWithTheDefaultMaxBytes(t *testing.T) {
	ns, err := devstack.StartNATS(devstack.NATSOptions{ConfigFile: "../nats.conf", StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1, NoMonitoring: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := heartlogtest.Connect(t, ns.ClientURL())
	cfg := streams.DefaultConfig()
	cfg.MaxBytes = 16 << 30
	if err := streams.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatalf("Ensure with a 16 GiB stream under max_file_store 20G: %v", err)
	}
	dlq, err := js.Stream(context.Background(), cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := dlq.CachedInfo().Config.MaxBytes; got > 0 && got+cfg.MaxBytes > 20<<30 {
		t.Errorf("dead-letter stream reserves %d bytes beside the main stream's %d: over max_file_store", got, cfg.MaxBytes)
	}
	// The sessions bucket is bounded too, inside the same store: a flood
	// of sign-ins fills it, not the log's room.
	kv, err := js.KeyValue(context.Background(), cfg.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxBytes; got != streams.SessionsMaxBytes {
		t.Errorf("sessions bucket MaxBytes %d, want %d", got, streams.SessionsMaxBytes)
	}
}
