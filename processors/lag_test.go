package processors_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// downSink fails every commit: its messages stay unprocessed.
type downSink struct{}

func (downSink) Name() string { return "down" }
func (downSink) Commit(context.Context, []*heartlogv1.Batch) error {
	return errors.New("store down")
}

func gauge(t *testing.T, name, processor string) float64 {
	return heartlogtest.MetricValue(t, name, map[string]string{"processor": processor})
}

func TestLaggingSinkWarnsBeforeMaxAge(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true, Stream: func(c *streams.Config) { c.MaxAge, c.Duplicates = 16*time.Second, time.Second }})
	_, key := svc.CreateUser(t, "alice", "")
	body := `[{"entity":"a.go","type":"file","time":` + strconv.FormatInt(time.Now().Unix(), 10) + `}]`
	if resp, got := svc.Post(t, "/api/v1/users/current/heartbeats.bulk", key, []byte(body)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s)", resp.StatusCode, got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := streams.EnsureConsumer(ctx, svc.JS, svc.Streams, "down")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := svc.JS.Stream(ctx, svc.Streams.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var logs heartlogtest.LogBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		opts := processors.Options{Stream: stream, DeadLetters: streams.NewDeadLetters(svc.JS, svc.Streams), Log: zerolog.New(&logs), RetryMax: time.Second, StopTimeout: time.Second}
		if err := processors.Run(ctx, cons, downSink{}, opts); err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	defer func() { cancel(); <-done }()

	// The watcher looks every 10 s: by its second look the message is
	// past half of MaxAge (16 s), and not yet gone.
	const ratio = "heartlog_processor_oldest_unprocessed_max_age_ratio"
	if !heartlogtest.Eventually(15*time.Second, func() bool { return gauge(t, ratio, "down") >= 0.5 }) {
		t.Fatalf("%s = %v after 15 s of a 16 s MaxAge, want ≥ 0.5", ratio, gauge(t, ratio, "down"))
	}
	if age := gauge(t, "heartlog_processor_oldest_unprocessed_seconds", "down"); age < 8 {
		t.Errorf("oldest unprocessed age %v s, want ≥ 8", age)
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "past half the stream's MaxAge") {
		t.Errorf("no warning logged; log:\n%s", logs.String())
	}
}
