package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"heartlog/config"
)

func TestDefaultsParse(t *testing.T) {
	for _, v := range config.Vars {
		t.Setenv(v.Name, v.Default)
	}
	c, err := config.FromEnv()
	if err != nil {
		t.Fatalf("the documented defaults do not parse: %v", err)
	}
	if c.Partitions != 16 || c.StreamMaxAge != 8*7*24*time.Hour || c.MaxBodyBytes != 4<<20 || len(c.Processors) != 4 || c.BackupFlush.Age != 5*time.Minute || c.S3.Name != "heartlog" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestBadValueNamesTheVariable(t *testing.T) {
	t.Setenv("HEARTLOG_STREAM_DUPLICATES", "two minutes")
	_, err := config.FromEnv()
	if err == nil || !strings.Contains(err.Error(), "HEARTLOG_STREAM_DUPLICATES") {
		t.Fatalf("err = %v, want it to name HEARTLOG_STREAM_DUPLICATES", err)
	}
	t.Setenv("HEARTLOG_STREAM_DUPLICATES", "2m")
	t.Setenv("HEARTLOG_PARTITIONS", "0")
	if _, err := config.FromEnv(); err == nil || !strings.Contains(err.Error(), "HEARTLOG_PARTITIONS") {
		t.Fatalf("partitions 0: err = %v", err)
	}
}

// TestREADMEListsEverySetting keeps the README's configuration table equal
// to the variables the code reads (regenerate: heartlog config --markdown).
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), config.Markdown()) {
		t.Fatal("README.md's configuration table is stale: replace it with the output of `go run ./cmd/heartlog config --markdown`")
	}
}

// TestShardURLs: the list parses into its entries; an entry at fault is
// named by its place, and its password is never repeated.
func TestShardURLs(t *testing.T) {
	for _, v := range config.Vars {
		t.Setenv(v.Name, v.Default)
	}
	t.Setenv("HEARTLOG_POSTGRES_SHARD_URLS", " postgres://u:pw1@a:5432/s1 , postgres://u:pw2@b:5432/s2")
	c, err := config.FromEnv()
	if err != nil || len(c.PostgresShardURLs) != 2 || c.PostgresShardURLs[1] != "postgres://u:pw2@b:5432/s2" {
		t.Fatalf("two shard URLs: %q, %v", c.PostgresShardURLs, err)
	}
	for value, want := range map[string]string{
		"postgres://u:hunter2@a:5432/s1,mysql://u:hunter2@b/s2":           "entry 2",
		"postgres://u:hunter2@a:5432/s1,postgres://u:hunter2@a:5432/":     "entry 2",
		"postgres://u:hunter2@a:5432/s1,postgres://v:other@a:5432/s1?x=1": "entries 1 and 2",
	} {
		t.Setenv("HEARTLOG_POSTGRES_SHARD_URLS", value)
		_, err := config.FromEnv()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "other") {
			t.Errorf("%s: %v, want an error naming %s without the password", value, err, want)
		}
	}
}
