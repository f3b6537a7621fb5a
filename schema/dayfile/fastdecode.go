package dayfile

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// The fast path reads a line in the form Encode writes it: no white space,
// keys without escapes, strings without escapes or control characters,
// numbers, true, false, null and arrays of strings. That is nearly every
// line of every file (a string needs an escape only for a quote, a
// backslash or a control character), and reading it directly, without
// building fastjson's value tree, takes about a third of the time.
//
// It never fails: at anything else (an escape, white space, an unknown key,
// extra, a value of the wrong type, a number outside the JSON grammar or
// out of range, no id) it gives up, the caller resets the heartbeat, and
// the general path reads the line again, and reports what is wrong with it
// if anything is. So whatever the fast path accepts, it reads exactly as
// the general path would (TestFastPathMatchesGeneral checks this).

// fastLine decodes line into hb, or reports false.
func (d *decoder) fastLine(line []byte, hb *heartlogv1.Heartbeat) bool {
	if len(line) < 2 || line[0] != '{' {
		return false
	}
	i := 1
	for {
		key, j, ok := rawString(line, i)
		if !ok || j >= len(line) || line[j] != ':' {
			return false
		}
		if i, ok = d.fastField(hb, key, line, j+1); !ok || i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i++
		case '}':
			return i == len(line)-1 && hb.Id != ""
		default:
			return false
		}
	}
}

// rawString returns the content of the string that starts at line[i] and
// the index after its closing quote; false if there is no string there or
// it has an escape or a control character.
func rawString(line []byte, i int) ([]byte, int, bool) {
	if i >= len(line) || line[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	// Eight bytes at a time while none of them is special; then one at a
	// time (strings are mostly paths, ids and user agents: tens of bytes).
	for ; j+8 <= len(line) && !special(binary.LittleEndian.Uint64(line[j:])); j += 8 {
	}
	for ; j < len(line); j++ {
		switch c := line[j]; {
		case c == '"':
			return line[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// special reports whether any byte of x is a quote, a backslash or a
// control character, with the bit trick for "some byte is less than n"
// ((x - n×0x01…) &^ x & 0x80…, exact for n <= 128), zero bytes being
// those equal to the character once it is xored out.
func special(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := func(x, n uint64) uint64 { return (x - ones*n) &^ x & highs }
	return less(x, 0x20)|less(x^(ones*'"'), 1)|less(x^(ones*'\\'), 1) != 0
}

// fastField sets the field key from the value at line[i] and returns the
// index after the value.
func (d *decoder) fastField(hb *heartlogv1.Heartbeat, key, line []byte, i int) (int, bool) {
	if bytes.HasPrefix(line[i:], []byte("null")) {
		return i + 4, true // absent, as in field
	}
	if p, slot := stringField(hb, key); p != nil {
		s, j, ok := rawString(line, i)
		if !ok {
			return 0, false
		}
		// Most fields hold the same value as on the line before: compare
		// before hashing.
		if last := d.last[slot]; string(s) == last && last != "" {
			*p = last
		} else {
			*p = d.text(s, slot != slotID)
			d.last[slot] = *p
		}
		return j, true
	}
	if p := intField(hb, key); p != nil {
		num, j := rawNumber(line, i)
		n, err := strconv.ParseInt(string(num), 10, 32)
		if err != nil || !validNumber(num) {
			return 0, false
		}
		*p = d.newInt(int32(n))
		return j, true
	}
	switch string(key) {
	case "time":
		num, j := rawNumber(line, i)
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil || math.IsInf(f, 0) || !validNumber(num) {
			return 0, false
		}
		hb.Time = f
		return j, true
	case "is_write":
		switch {
		case bytes.HasPrefix(line[i:], []byte("true")):
			hb.IsWrite = d.newBool(true)
			return i + 4, true
		case bytes.HasPrefix(line[i:], []byte("false")):
			hb.IsWrite = d.newBool(false)
			return i + 5, true
		}
	case "dependencies":
		return d.fastStrings(hb, line, i)
	}
	return 0, false
}

// Slots of decoder.last, one per string field; the id's values are unique
// and not interned.
const (
	slotID = iota
	slotUserID
	slotEntity
	slotType
	slotCategory
	slotProject
	slotBranch
	slotLanguage
	slotEditor
	slotPlugin
	slotOS
	slotMachine
	slotUserAgent
	numSlots
)

// stringField is the string field named key and its slot.
func stringField(hb *heartlogv1.Heartbeat, key []byte) (*string, int) {
	switch string(key) {
	case "id":
		return &hb.Id, slotID
	case "user_id":
		return &hb.UserId, slotUserID
	case "entity":
		return &hb.Entity, slotEntity
	case "type":
		return &hb.Type, slotType
	case "category":
		return &hb.Category, slotCategory
	case "project":
		return &hb.Project, slotProject
	case "branch":
		return &hb.Branch, slotBranch
	case "language":
		return &hb.Language, slotLanguage
	case "editor":
		return &hb.Editor, slotEditor
	case "plugin":
		return &hb.Plugin, slotPlugin
	case "operating_system":
		return &hb.OperatingSystem, slotOS
	case "machine":
		return &hb.Machine, slotMachine
	case "user_agent":
		return &hb.UserAgent, slotUserAgent
	}
	return nil, 0
}

// intField is the optional integer field named key.
func intField(hb *heartlogv1.Heartbeat, key []byte) **int32 {
	switch string(key) {
	case "project_root_count":
		return &hb.ProjectRootCount
	case "lines":
		return &hb.Lines
	case "line_additions":
		return &hb.LineAdditions
	case "line_deletions":
		return &hb.LineDeletions
	case "lineno":
		return &hb.Lineno
	case "cursorpos":
		return &hb.Cursorpos
	case "ai_line_changes":
		return &hb.AiLineChanges
	case "human_line_changes":
		return &hb.HumanLineChanges
	}
	return nil
}

// rawNumber returns the text of the number at line[i] (any run of the
// characters a number can have; the caller checks the grammar) and the
// index after it.
func rawNumber(line []byte, i int) ([]byte, int) {
	j := i
	for j < len(line) && (line[j] >= '0' && line[j] <= '9' || line[j] == '-' || line[j] == '+' || line[j] == '.' || line[j] == 'e' || line[j] == 'E') {
		j++
	}
	return line[i:j], j
}

// fastStrings reads the dependencies array at line[i]. The lists of a file
// repeat (a file's imports), so each distinct list is made once per Decode
// and shared, with its capacity cut to its length so that an append copies.
func (d *decoder) fastStrings(hb *heartlogv1.Heartbeat, line []byte, i int) (int, bool) {
	if i >= len(line) || line[i] != '[' {
		return 0, false
	}
	start, j := i, i+1
	n := 0
	for j < len(line) && line[j] != ']' {
		if n > 0 {
			if line[j] != ',' {
				return 0, false
			}
			j++
		}
		_, next, ok := rawString(line, j)
		if !ok {
			return 0, false
		}
		j, n = next, n+1
	}
	if j >= len(line) {
		return 0, false
	}
	j++ // past ']'
	if n == 0 {
		return j, true // empty: absent, as in strs
	}
	if list, ok := d.lists[string(line[start:j])]; ok {
		hb.Dependencies = list
		return j, true
	}
	list := make([]string, 0, n)
	for k := start + 1; len(list) < n; k++ {
		s, next, _ := rawString(line, k)
		list = append(list, d.text(s, true))
		k = next
	}
	if d.lists == nil {
		d.lists = make(map[string][]string)
	}
	d.lists[string(line[start:j])] = list
	hb.Dependencies = list
	return j, true
}
