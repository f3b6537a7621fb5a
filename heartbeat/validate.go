package heartbeat

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// FieldError is why one heartbeat was refused. Its message names the field,
// because a plugin author reading it has nothing else to go on.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits bound what one request and one heartbeat may carry. The zero value
// is not useful; start from DefaultLimits.
type Limits struct {
	// MaxHeartbeats per request (default 1000).
	MaxHeartbeats int
	// MaxEntityBytes is the longest entity accepted (default 1 KiB).
	MaxEntityBytes int
	// MaxStringBytes is the longest other string field (default 1 KiB).
	MaxStringBytes int
	// MaxDependencies per heartbeat (default 1000).
	MaxDependencies int
	// MaxExtraBytes is the size of unknown optional fields kept (default 4 KiB).
	MaxExtraBytes int
	// MaxFuture is how far ahead of the server's clock a heartbeat may be (default 24h).
	MaxFuture time.Duration
}

// DefaultLimits are the limits DESIGN.md names.
var DefaultLimits = Limits{
	MaxHeartbeats:   1000,
	MaxEntityBytes:  1024,
	MaxStringBytes:  1024,
	MaxDependencies: 1000,
	MaxExtraBytes:   4096,
	MaxFuture:       24 * time.Hour,
}

// Earliest is the oldest heartbeat accepted: 2000-01-01T00:00:00Z.
var Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var validTypes = map[string]bool{"file": true, "app": true, "domain": true, "url": true, "event": true}

// Validate checks one heartbeat against the limits at the given time and
// fills in defaults (category "coding"). It returns a *FieldError.
func (l Limits) Validate(hb *heartlogv1.Heartbeat, now time.Time) error {
	if hb.Entity == "" {
		return fieldErr("entity", "is required")
	}
	if len(hb.Entity) > l.MaxEntityBytes {
		return fieldErr("entity", "is longer than %d bytes", l.MaxEntityBytes)
	}
	if hb.Type == "" {
		hb.Type = "file"
	}
	if !validTypes[hb.Type] {
		return fieldErr("type", "must be one of file, app, domain, url, event (got %.40q)", hb.Type)
	}
	if hb.Category == "" {
		hb.Category = "coding"
	}
	if err := l.checkTime(hb.Time, now); err != nil {
		return err
	}
	if err := l.checkStrings(hb); err != nil {
		return err
	}
	if len(hb.ExtraJson) > 0 {
		if !isJSONObject(hb.ExtraJson) {
			return fieldErr("extra_json", "must be a JSON object in valid UTF-8, without \\u0000 or unpaired surrogates")
		}
		if err := checkExtra(hb.ExtraJson); err != nil {
			return err
		}
	}
	return nil
}

func (l Limits) checkStrings(hb *heartlogv1.Heartbeat) error {
	if !cleanText(hb.Entity) {
		return fieldErr("entity", "must be valid UTF-8 without NUL characters")
	}
	for _, f := range []struct{ name, value string }{
		{"category", hb.Category}, {"project", hb.Project}, {"branch", hb.Branch},
		{"language", hb.Language}, {"machine", hb.Machine}, {"user_agent", hb.UserAgent},
		{"editor", hb.Editor}, {"plugin", hb.Plugin}, {"operating_system", hb.OperatingSystem},
	} {
		if len(f.value) > l.MaxStringBytes {
			return fieldErr(f.name, "is longer than %d bytes", l.MaxStringBytes)
		}
		// Postgres text holds neither NUL nor invalid UTF-8; refusing them
		// here keeps them out of the log, where they would block the sink.
		if !cleanText(f.value) {
			return fieldErr(f.name, "must be valid UTF-8 without NUL characters")
		}
	}
	if len(hb.Dependencies) > l.MaxDependencies {
		return fieldErr("dependencies", "has more than %d items", l.MaxDependencies)
	}
	for _, d := range hb.Dependencies {
		if len(d) > l.MaxStringBytes {
			return fieldErr("dependencies", "has an item longer than %d bytes", l.MaxStringBytes)
		}
		if !cleanText(d) {
			return fieldErr("dependencies", "must be valid UTF-8 without NUL characters")
		}
	}
	if len(hb.ExtraJson) > l.MaxExtraBytes {
		return fieldErr("heartbeat", "carries more than %d bytes of unknown fields", l.MaxExtraBytes)
	}
	return nil
}

// cleanText reports whether Postgres text can hold s: valid UTF-8, no NUL.
func cleanText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// isJSONObject reports whether b is a JSON object that Postgres jsonb takes.
// encoding/json accepts invalid UTF-8 and lone surrogate escapes in strings;
// jsonb refuses both, and with them the sink's whole COPY.
func isJSONObject(b []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil && obj != nil && utf8.Valid(b) && jsonbEscapes(b)
}

// jsonbEscapes reports whether the valid JSON b is free of the \u escapes
// jsonb refuses: \u0000, and UTF-16 surrogates that are not a high-low pair.
func jsonbEscapes(b []byte) bool {
	high := false // the previous escape was a high surrogate
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || b[i+1] != 'u' {
			if high {
				return false
			}
			if b[i] == '\\' {
				i++ // skip the escaped character
			}
			continue
		}
		r, _ := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		i += 5
		switch {
		case r == 0:
			return false
		case r >= 0xd800 && r < 0xdc00:
			if high {
				return false
			}
			high = true
		case r >= 0xdc00 && r < 0xe000:
			if !high {
				return false
			}
			high = false
		default:
			if high {
				return false
			}
		}
	}
	return !high
}

func (l Limits) checkTime(sec float64, now time.Time) error {
	if math.IsNaN(sec) || math.IsInf(sec, 0) {
		return fieldErr("time", "must be a finite number")
	}
	if sec == 0 {
		return fieldErr("time", "is required")
	}
	if sec < float64(Earliest.Unix()) {
		return fieldErr("time", "is before 2000")
	}
	if sec > float64(now.Add(l.MaxFuture).Unix()) {
		return fieldErr("time", "is more than one day in the future")
	}
	return nil
}
