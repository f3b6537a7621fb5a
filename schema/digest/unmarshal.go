package digest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// unmarshal is proto.Unmarshal of a DayDigest without reflection, each
// packed column allocated once at its size: half of what decoding a digest
// costs otherwise. It accepts what proto.Unmarshal accepts for this
// message (packed or unpacked repeated fields, unknown fields skipped),
// except that it does not check that strings are valid UTF-8; the tests
// check the two against each other.
func unmarshal(b []byte, d *heartlogv1.DayDigest) error {
	var strs [][]byte // the dictionary, aliasing b until the end
	defer func() {
		d.Strings = oneBlock(strs)
	}()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			strs = append(strs, v)
			n = m
		case num == 2:
			n = column(b, typ, &d.TimeDeltaMicros, protowire.DecodeZigZag)
		case num == 4:
			n = column(b, typ, &d.IsWrite, func(x uint64) bool { return x != 0 })
		case uint32Column(d, num) != nil:
			n = column(b, typ, uint32Column(d, num), func(x uint64) uint32 { return uint32(x) })
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		switch {
		case n == errBadWireType:
			return fmt.Errorf("field %d: %w", num, errWireType)
		case n < 0:
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// errBadWireType is column's code for a wire type a column cannot have
// (below protowire's own negative codes).
const errBadWireType = -1000

var errWireType = errors.New("a column with a wire type other than varint or packed")

// column appends a repeated varint field's value (unpacked) or values
// (packed) from b to dst and returns the bytes read, or a negative
// protowire error code, or errBadWireType.
func column[T any](b []byte, typ protowire.Type, dst *[]T, conv func(uint64) T) int {
	switch typ {
	case protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		if n >= 0 {
			*dst = append(*dst, conv(x))
		}
		return n
	case protowire.BytesType:
	default:
		return errBadWireType
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return n
	}
	count := 0
	for _, c := range v {
		if c < 0x80 {
			count++
		}
	}
	*dst = slices.Grow(*dst, count)
	for len(v) > 0 {
		x, m := protowire.ConsumeVarint(v)
		if m < 0 {
			return m
		}
		*dst = append(*dst, conv(x))
		v = v[m:]
	}
	return n
}

// uint32Column is the uint32 column of field num, or nil.
func uint32Column(d *heartlogv1.DayDigest, num protowire.Number) *[]uint32 {
	switch num {
	case 3:
		return &d.Attrs
	case 5:
		return &d.Entity
	case 6:
		return &d.Type
	case 7:
		return &d.Category
	case 8:
		return &d.Project
	case 9:
		return &d.Branch
	case 10:
		return &d.Language
	case 11:
		return &d.Editor
	case 12:
		return &d.OperatingSystem
	case 13:
		return &d.Machine
	case 14:
		return &d.Dependencies
	case 15:
		return &d.DependencyListEnds
	case 16:
		return &d.DependencyItems
	}
	return nil
}

// oneBlock returns the strings of bs backed by one allocation: a day's
// dictionary costs one allocation instead of one a string.
func oneBlock(bs [][]byte) []string {
	if len(bs) == 0 {
		return nil
	}
	size := 0
	for _, b := range bs {
		size += len(b)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, b := range bs {
		sb.Write(b)
	}
	all := sb.String()
	out := make([]string, len(bs))
	off := 0
	for i, b := range bs {
		out[i] = all[off : off+len(b)]
		off += len(b)
	}
	return out
}
