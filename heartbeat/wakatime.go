package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/valyala/fastjson"

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

// The request body is parsed once, by fastjson, and each field is read from
// the parsed tree: encoding/json needed a pass per heartbeat and per field
// to give per-field errors, and decoding was most of ingest's CPU.
var parsers fastjson.ParserPool

// DecodeBulk decodes the body of POST .../heartbeats.bulk: a JSON array of
// WakaTime heartbeats. A heartbeat whose fields have the wrong type gets its
// own error; only a body that is not a JSON array fails as a whole.
func (l Limits) DecodeBulk(body []byte) ([]Decoded, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: body must be a JSON array of heartbeats: %v", ErrMalformed, err)
	}
	items, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("%w: body must be a JSON array of heartbeats, not %s", ErrMalformed, v.Type())
	}
	if len(items) > l.MaxHeartbeats {
		return nil, fmt.Errorf("%w: %d heartbeats in one request, at most %d", ErrTooMany, len(items), l.MaxHeartbeats)
	}
	out := make([]Decoded, len(items))
	for i, item := range items {
		hb, err := l.decodeObject(item, false)
		out[i] = Decoded{Heartbeat: hb, Err: err}
	}
	return out, nil
}

// DecodeOne decodes the body of POST .../heartbeats: one JSON object.
func (l Limits) DecodeOne(body []byte) (Decoded, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return Decoded{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.Type() != fastjson.TypeObject {
		return Decoded{}, fmt.Errorf("%w: body must be a JSON object, not %s", ErrMalformed, v.Type())
	}
	hb, err := l.decodeObject(v, false)
	return Decoded{Heartbeat: hb, Err: err}, nil
}

// DecodeValue decodes one heartbeat from an already parsed JSON value, as
// DecodeOne decodes a body: for readers that parse records themselves (an
// import of a WakaTime data dump). With stored, it also reads the fields
// heartlog itself writes into day files and exports (package
// schema/dayfile): editor, plugin and operating_system, and extra, the
// unknown fields a client sent, kept as one object; so a heartbeat read back
// from a day file is the heartbeat that went in, and gets the same id. The
// error is a *FieldError.
func (l Limits) DecodeValue(v *fastjson.Value, stored bool) (*heartlogv1.Heartbeat, error) {
	return l.decodeObject(v, stored)
}

// fieldSetter stores one known WakaTime field into the heartbeat.
type fieldSetter func(hb *heartlogv1.Heartbeat, v *fastjson.Value) error

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

// storedFields are what a day file holds beside the WakaTime fields; see
// DecodeValue. extra is read apart: its members are the unknown fields.
var storedFields = map[string]fieldSetter{
	"editor":           str(func(h *heartlogv1.Heartbeat, v string) { h.Editor = v }),
	"plugin":           str(func(h *heartlogv1.Heartbeat, v string) { h.Plugin = v }),
	"operating_system": str(func(h *heartlogv1.Heartbeat, v string) { h.OperatingSystem = v }),
}

func (l Limits) decodeObject(v *fastjson.Value, stored bool) (*heartlogv1.Heartbeat, error) {
	obj, err := v.Object()
	if err != nil {
		return nil, fieldErr("heartbeat", "must be a JSON object")
	}
	hb := &heartlogv1.Heartbeat{}
	var extra map[string][]byte
	extraBytes := 0
	var failed error
	keep := func(key string, value *fastjson.Value) {
		if extra == nil {
			extra = map[string][]byte{}
		}
		raw := value.MarshalTo(nil)
		extra[key] = raw
		extraBytes += len(key) + len(raw)
	}
	// Fields are visited in order, so a repeated key's last value wins, as
	// with encoding/json.
	obj.Visit(func(key []byte, value *fastjson.Value) {
		if failed != nil {
			return
		}
		if set, ok := fields[string(key)]; ok {
			if err := set(hb, value); err != nil {
				failed = &FieldError{Field: string(key), Reason: err.Error()}
			}
			return
		}
		if ignored[string(key)] {
			return
		}
		if stored {
			if set, ok := storedFields[string(key)]; ok {
				if err := set(hb, value); err != nil {
					failed = &FieldError{Field: string(key), Reason: err.Error()}
				}
				return
			}
			if string(key) == "extra" {
				members, err := value.Object()
				if err != nil {
					failed = fieldErr("extra", "must be a JSON object")
					return
				}
				members.Visit(func(key []byte, value *fastjson.Value) {
					keep(string(key), value)
				})
				return
			}
		}
		keep(string(key), value)
	})
	if failed != nil {
		return nil, failed
	}
	if extraBytes > l.MaxExtraBytes {
		return nil, fieldErr("heartbeat", "carries more than %d bytes of unknown fields", l.MaxExtraBytes)
	}
	if len(extra) > 0 {
		hb.ExtraJson = canonicalExtra(extra)
	}
	return hb, nil
}

// canonicalExtra keeps unknown fields as compact JSON with keys sorted at
// every depth, so that the same heartbeat resent with other whitespace or
// key order keeps its id. Decoding and re-encoding also turns invalid UTF-8
// and lone surrogates into U+FFFD, which Postgres jsonb then accepts.
func canonicalExtra(extra map[string][]byte) []byte {
	vals := make(map[string]any, len(extra))
	for k, raw := range extra {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber() // keep numbers exactly as sent
		var v any
		_ = d.Decode(&v) // valid: fastjson parsed and re-encoded it
		vals[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(vals) // maps of decoded JSON always encode
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func str(set func(*heartlogv1.Heartbeat, string)) fieldSetter {
	return func(hb *heartlogv1.Heartbeat, v *fastjson.Value) error {
		switch v.Type() {
		case fastjson.TypeNull:
			return nil
		case fastjson.TypeString:
			set(hb, string(v.GetStringBytes()))
			return nil
		}
		return errors.New("must be a string")
	}
}

func integer(set func(*heartlogv1.Heartbeat, *int32)) fieldSetter {
	return func(hb *heartlogv1.Heartbeat, v *fastjson.Value) error {
		if v.Type() == fastjson.TypeNull {
			return nil
		}
		f, err := number(v)
		if err != nil || f != math.Trunc(f) {
			return errors.New("must be an integer")
		}
		if f < math.MinInt32 || f > math.MaxInt32 {
			return errors.New("is out of range")
		}
		n := int32(f)
		set(hb, &n)
		return nil
	}
}

func setTime(hb *heartlogv1.Heartbeat, v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	f, err := number(v)
	if err != nil {
		return errors.New("must be a number of seconds since 1970")
	}
	hb.Time = f
	return nil
}

func setIsWrite(hb *heartlogv1.Heartbeat, v *fastjson.Value) error {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeTrue, fastjson.TypeFalse:
		b := v.Type() == fastjson.TypeTrue
		hb.IsWrite = &b
		return nil
	}
	return errors.New("must be true or false")
}

func setDependencies(hb *heartlogv1.Heartbeat, v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	items, err := v.Array()
	if err != nil {
		return errors.New("must be an array of strings")
	}
	deps := make([]string, len(items))
	for i, item := range items {
		s, err := item.StringBytes()
		if err != nil {
			return errors.New("must be an array of strings")
		}
		deps[i] = string(s)
	}
	hb.Dependencies = deps
	return nil
}

// number parses a JSON number with strconv: fastjson's own conversion is
// off by one bit for some exponent forms, and a heartbeat's time must read
// back exactly (its id hashes it).
func number(v *fastjson.Value) (float64, error) {
	if v.Type() != fastjson.TypeNumber {
		return 0, errors.New("not a number")
	}
	return strconv.ParseFloat(string(v.MarshalTo(nil)), 64)
}
