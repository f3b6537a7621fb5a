package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrMalformed means a request body is not the JSON it must be. The whole
// request is refused; nothing in it is stored.
var ErrMalformed = errors.New("malformed request")

// ErrTooMany means a request carries more heartbeats than Limits allow.
var ErrTooMany = errors.New("too many heartbeats")

// Decoded is one heartbeat of a request: either Heartbeat or Err is set.
type Decoded struct {
	Heartbeat *heartlogv1.Heartbeat
	Err       error // a *FieldError
}

// DecodeBulk decodes the body of POST .../heartbeats.bulk: a JSON array of
// WakaTime heartbeats. A heartbeat whose fields have the wrong type gets its
// own error; only a body that is not a JSON array of objects fails as a whole.
func (l Limits) DecodeBulk(body []byte) ([]Decoded, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("%w: body must be a JSON array of heartbeats: %s", ErrMalformed, jsonReason(err))
	}
	if items == nil { // the body is null, which json.Unmarshal takes for an empty array
		return nil, fmt.Errorf("%w: body must be a JSON array of heartbeats, not null", ErrMalformed)
	}
	if len(items) > l.MaxHeartbeats {
		return nil, fmt.Errorf("%w: %d heartbeats in one request, at most %d", ErrTooMany, len(items), l.MaxHeartbeats)
	}
	out := make([]Decoded, len(items))
	for i, raw := range items {
		hb, err := l.decodeObject(raw)
		out[i] = Decoded{Heartbeat: hb, Err: err}
	}
	return out, nil
}

// DecodeOne decodes the body of POST .../heartbeats: one JSON object.
func (l Limits) DecodeOne(body []byte) (Decoded, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Decoded{}, fmt.Errorf("%w: body must be a JSON object", ErrMalformed)
	}
	if !json.Valid(trimmed) {
		var v any
		return Decoded{}, fmt.Errorf("%w: %s", ErrMalformed, jsonReason(json.Unmarshal(trimmed, &v)))
	}
	hb, err := l.decodeObject(trimmed)
	return Decoded{Heartbeat: hb, Err: err}, nil
}

func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("expected %s, got %s", typ.Type, typ.Value)
	}
	return err.Error()
}

// fieldSetter stores one known WakaTime field into the heartbeat.
type fieldSetter func(hb *heartlogv1.Heartbeat, raw json.RawMessage) error

// ignored are fields the server sets itself; a client's value is dropped so
// that no client can choose its heartbeat's id or owner.
var ignored = map[string]bool{"id": true, "user_id": true}

var fields = map[string]fieldSetter{
	"entity":             str(func(h *heartlogv1.Heartbeat, v string) { h.Entity = v }),
	"type":               str(func(h *heartlogv1.Heartbeat, v string) { h.Type = v }),
	"category":           str(func(h *heartlogv1.Heartbeat, v string) { h.Category = v }),
	"project":            str(func(h *heartlogv1.Heartbeat, v string) { h.Project = v }),
	"branch":             str(func(h *heartlogv1.Heartbeat, v string) { h.Branch = v }),
	"language":           str(func(h *heartlogv1.Heartbeat, v string) { h.Language = v }),
	"user_agent":         str(func(h *heartlogv1.Heartbeat, v string) { h.UserAgent = v }),
	"machine":            str(func(h *heartlogv1.Heartbeat, v string) { h.Machine = v }),
	"time":               setTime,
	"project_root_count": integer(func(h *heartlogv1.Heartbeat, v *int32) { h.ProjectRootCount = v }),
	"lines":              integer(func(h *heartlogv1.Heartbeat, v *int32) { h.Lines = v }),
	"line_additions":     integer(func(h *heartlogv1.Heartbeat, v *int32) { h.LineAdditions = v }),
	"line_deletions":     integer(func(h *heartlogv1.Heartbeat, v *int32) { h.LineDeletions = v }),
	"lineno":             integer(func(h *heartlogv1.Heartbeat, v *int32) { h.Lineno = v }),
	"cursorpos":          integer(func(h *heartlogv1.Heartbeat, v *int32) { h.Cursorpos = v }),
	"ai_line_changes":    integer(func(h *heartlogv1.Heartbeat, v *int32) { h.AiLineChanges = v }),
	"human_line_changes": integer(func(h *heartlogv1.Heartbeat, v *int32) { h.HumanLineChanges = v }),
	"is_write":           setIsWrite,
	"dependencies":       setDependencies,
}

func (l Limits) decodeObject(raw json.RawMessage) (*heartlogv1.Heartbeat, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fieldErr("heartbeat", "must be a JSON object")
	}
	hb := &heartlogv1.Heartbeat{}
	var extra []string
	extraBytes := 0
	for name, value := range obj {
		if set, ok := fields[name]; ok {
			if err := set(hb, value); err != nil {
				return nil, &FieldError{Field: name, Reason: err.Error()}
			}
			continue
		}
		if !ignored[name] {
			extra = append(extra, name)
			extraBytes += len(name) + len(value)
		}
	}
	if extraBytes > l.MaxExtraBytes {
		return nil, fieldErr("heartbeat", "carries more than %d bytes of unknown fields", l.MaxExtraBytes)
	}
	if len(extra) > 0 {
		hb.ExtraJson = canonicalExtra(obj, extra)
	}
	return hb, nil
}

// canonicalExtra keeps unknown fields as compact JSON with keys sorted at
// every depth, so that the same heartbeat resent with other whitespace or
// key order keeps its id. Decoding and re-encoding also turns invalid UTF-8
// and lone surrogates into U+FFFD, which Postgres jsonb then accepts.
func canonicalExtra(obj map[string]json.RawMessage, keys []string) []byte {
	vals := make(map[string]any, len(keys))
	for _, k := range keys {
		d := json.NewDecoder(bytes.NewReader(obj[k]))
		d.UseNumber() // keep numbers exactly as sent
		var v any
		_ = d.Decode(&v) // valid: it came out of json.Unmarshal
		vals[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(vals) // maps of decoded JSON always encode
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func str(set func(*heartlogv1.Heartbeat, string)) fieldSetter {
	return func(hb *heartlogv1.Heartbeat, raw json.RawMessage) error {
		if isNull(raw) {
			return nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.New("must be a string")
		}
		set(hb, s)
		return nil
	}
}

func integer(set func(*heartlogv1.Heartbeat, *int32)) fieldSetter {
	return func(hb *heartlogv1.Heartbeat, raw json.RawMessage) error {
		if isNull(raw) {
			return nil
		}
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) {
			return errors.New("must be an integer")
		}
		if f < math.MinInt32 || f > math.MaxInt32 {
			return errors.New("is out of range")
		}
		v := int32(f)
		set(hb, &v)
		return nil
	}
}

func setTime(hb *heartlogv1.Heartbeat, raw json.RawMessage) error {
	if err := json.Unmarshal(raw, &hb.Time); err != nil {
		return errors.New("must be a number of seconds since 1970")
	}
	return nil
}

func setIsWrite(hb *heartlogv1.Heartbeat, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return errors.New("must be true or false")
	}
	hb.IsWrite = &b
	return nil
}

func setDependencies(hb *heartlogv1.Heartbeat, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, &hb.Dependencies); err != nil {
		return errors.New("must be an array of strings")
	}
	return nil
}
