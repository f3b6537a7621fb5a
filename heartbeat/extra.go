package heartbeat

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// What the stores hold of the unknown fields kept in extra_json. Postgres
// keeps them in a jsonb column, whose numbers are numeric: at most 131072
// digits before the decimal point and 16383 after (the scale as written:
// 100e-16385 and 0e-20000 are refused too), or the whole COPY fails with
// "value overflows numeric format". Numbers beyond float64 (1e400) fit
// numeric but decode as ±Inf or not at all in most JSON readers, the
// WakaTime clients' among them, so they are refused as well.
const (
	numericMaxDigitsBefore = 131072
	numericMaxScale        = 16383
	// MaxExtraDepth bounds the nesting of extra_json. jsonb itself takes
	// thousands of levels (up to max_stack_depth), the REST decoder 300;
	// no WakaTime field nests more than two.
	MaxExtraDepth = 64
)

// checkExtra refuses, naming the field, what extra_json (a valid JSON
// object) holds that a store cannot: numbers out of range, deep nesting.
func checkExtra(extra []byte) error {
	d := json.NewDecoder(bytes.NewReader(extra))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return fieldErr("extra_json", "must be a JSON object")
	}
	return walkExtra(v, "", 1) // depth counts objects and arrays
}

func walkExtra(v any, path string, depth int) error {
	switch v.(type) {
	case map[string]any, []any:
		if depth > MaxExtraDepth {
			return fieldErr(path, "nests deeper than %d levels", MaxExtraDepth)
		}
	}
	switch v := v.(type) {
	case json.Number:
		if !storableNumber(string(v)) {
			return fieldErr(path, "is a number out of range: at most %d digits before the decimal point and %d after, and within ±%.1e",
				numericMaxDigitsBefore, numericMaxScale, math.MaxFloat64)
		}
	case map[string]any:
		// Sorted, so that the same heartbeat always names the same field.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := walkExtra(v[k], p, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := walkExtra(e, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// storableNumber reports whether the JSON number s fits both Postgres
// numeric and float64.
func storableNumber(s string) bool {
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return false // ±Inf: beyond float64
	}
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		var err error
		if exp, err = strconv.ParseInt(s[i+1:], 10, 32); err != nil {
			return false
		}
		mant = s[:i]
	}
	mant = strings.TrimPrefix(mant, "-")
	intPart, frac, _ := strings.Cut(mant, ".")
	if scale := int64(len(frac)) - exp; scale > numericMaxScale {
		return false
	}
	digits := intPart + frac
	lead := len(digits) - len(strings.TrimLeft(digits, "0"))
	if lead == len(digits) {
		return true // zero
	}
	return int64(len(intPart))+exp-int64(lead) <= numericMaxDigitsBefore
}
