package objstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"heartlog/objstore"
)

const secret = "s3cr3t-value-that-must-not-leak"

func setEnv(t *testing.T, prefix string, vars map[string]string) {
	for _, name := range []string{"ENDPOINT", "REGION", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "PATH_STYLE"} {
		t.Setenv(prefix+name, vars[name])
	}
}

func TestConfigFromEnv(t *testing.T) {
	const p = "OBJSTORE_TEST_S3_"
	setEnv(t, p, map[string]string{
		"ENDPOINT": "http://127.0.0.1:1", "REGION": "eu-west-1", "BUCKET": "b",
		"ACCESS_KEY_ID": "id", "SECRET_ACCESS_KEY": secret, "PATH_STYLE": "true",
	})
	cfg, err := objstore.ConfigFromEnv(p)
	if err != nil {
		t.Fatal(err)
	}
	want := objstore.S3Config{Endpoint: "http://127.0.0.1:1", Region: "eu-west-1", Bucket: "b",
		AccessKeyID: "id", SecretAccessKey: secret, PathStyle: true}
	if cfg != want {
		t.Fatalf("got %v, want %v", cfg, want)
	}

	// Every way of printing the config redacts the secret.
	j, _ := json.Marshal(cfg)
	for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), string(j), fmt.Sprint(&cfg)} {
		if strings.Contains(s, secret) {
			t.Errorf("secret in %q", s)
		}
		if !strings.Contains(s, "redacted") {
			t.Errorf("no redaction marker in %q", s)
		}
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	const p = "OBJSTORE_TEST_S3_"
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"ENDPOINT": "http://x"}, p + "BUCKET is not set"},
		{map[string]string{"BUCKET": "b", "PATH_STYLE": "maybe"}, p + "PATH_STYLE"},
		{map[string]string{"BUCKET": "b", "ENDPOINT": "127.0.0.1:9000"}, p + "ENDPOINT"},
		{map[string]string{"BUCKET": "b", "ACCESS_KEY_ID": "id"}, p + "SECRET_ACCESS_KEY is not"},
		{map[string]string{"BUCKET": "b", "SECRET_ACCESS_KEY": secret}, p + "ACCESS_KEY_ID is not"},
	} {
		setEnv(t, p, tc.vars)
		_, err := objstore.ConfigFromEnv(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want one containing %q", tc.vars, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("secret in error %q", err)
		}
	}
}

func TestNewS3RejectsBadConfig(t *testing.T) {
	for _, cfg := range []objstore.S3Config{
		{},
		{Bucket: "b", SecretAccessKey: secret},
		{Bucket: "b", Endpoint: "localhost:9000"},
		{Bucket: "b", MaxAttempts: -1},
	} {
		_, err := objstore.NewS3(context.Background(), cfg)
		if err == nil {
			t.Errorf("NewS3(%v) succeeded", cfg)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("secret in error %q", err)
		}
	}
}

// TestWrongCredentials: an authentication failure is an error (not
// ErrNotFound, not retried for long) and does not leak the secret.
func TestWrongCredentials(t *testing.T) {
	cfg := envConfig(t, primaryEnv)
	cfg.SecretAccessKey = secret
	b := newS3(t, cfg)
	_, _, err := b.Get(testContext(t), "objstore-test/any")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get with a wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("secret in error %q", err)
	}
	t.Logf("wrong secret: %v", err)
}

// TestMissingBucket: a bucket that does not exist is not ErrNotFound.
func TestMissingBucket(t *testing.T) {
	cfg := envConfig(t, primaryEnv)
	cfg.Bucket = "heartlog-no-such-bucket-" + randomHex(4)
	b := newS3(t, cfg)
	_, _, err := b.Get(testContext(t), "any")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get from a missing bucket: %v, want an error that is not ErrNotFound", err)
	}
	t.Logf("missing bucket: %v", err)
}
