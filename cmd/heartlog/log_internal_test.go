package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"heartlog/config"
)

// TestLoggedDurationsCarryUnits logs a duration with .Dur, as the
// processors do, in both formats: the unit must be in the line.
func TestLoggedDurationsCarryUnits(t *testing.T) {
	for format, want := range map[string]string{"console": "flush_age=2s retry_in=6.4s", "json": `"flush_age":"2s","retry_in":"6.4s"`} {
		var out bytes.Buffer
		log := newLoggerTo(config.Config{LogFormat: format, LogLevel: "info"}, &out)
		log.Info().Dur("flush_age", 2*time.Second).Dur("retry_in", 6400*time.Millisecond).Msg("starting")
		line := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out.String(), "") // console colours
		if !strings.Contains(line, want) {
			t.Errorf("%s: %q, want it to contain %q", format, line, want)
		}
	}
}
