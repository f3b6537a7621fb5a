package dayfile_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"google.golang.org/protobuf/proto"

	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

func protoClone(hb *heartlogv1.Heartbeat) *heartlogv1.Heartbeat {
	return proto.Clone(hb).(*heartlogv1.Heartbeat)
}

// FuzzDecode feeds Decode arbitrary bytes, both as a day file and as the
// content of one (gzipped here, so that the fuzzer's mutations reach the
// NDJSON parser rather than fail the gzip checksum). Decode must not panic,
// and whatever it reads must survive Merge, Encode and Decode unchanged:
// Decode∘Encode∘Decode = Decode, up to merged form. Encode's lines must be
// encoding/json's.
//
// Run it with a short -fuzzminimizetime (go test -fuzz FuzzDecode
// -fuzzminimizetime 5s): minimizing an input costs time quadratic in its
// length, and with the default of a minute the fuzzer spends most of its
// time minimizing the first few inputs that find new coverage.
func FuzzDecode(f *testing.F) {
	// Seeds are small: the fuzzer minimizes each input that finds new
	// coverage, for up to a minute, and a large seed keeps it there.
	edges := mustMerge(edgeCases())
	f.Add(mustEncode(f, edges[:3]))
	f.Add(gunzip(f, mustEncode(f, edges[:6])))
	f.Add(gunzip(f, mustEncode(f, edges[6:])))
	f.Add(gunzip(f, mustEncode(f, mustMerge(realisticDay(2, 1)))))
	for _, s := range []string{
		"",
		"\n\n",
		`{"id":"a","time":1}`,
		`{"id":"a","time":1,"future":[{"x":null}],"extra":{"b":{"c":[1,"\u00e9\ud83d\ude00",true]}}}` + "\n" + `{"id":"b","time":0.5}`,
		`{"id":"a","time":-0,"lineno":-0,"is_write":false,"dependencies":["","\u0000"]}`,
		`{"id":"a\ud800","entity":"\xff\xfe","time":1e-7}` + "\r\n",
		`{"id":"a","time":1,"extra":{"a":+1}}`,
		`{"id":"a","id":"b","time":2,"time":1}`,
		`{"\u0069d":"a","time":1}`,
		`[{"id":"a"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		check(t, gzipFast(data))
	})
}

var fastWriters = sync.Pool{New: func() any {
	zw, _ := kgzip.NewWriterLevel(nil, kgzip.BestSpeed)
	return zw
}}

// gzipFast compresses b cheaply: a standard library compressor clears
// hundreds of kilobytes of tables on every reset, which was most of the
// fuzz target's time.
func gzipFast(b []byte) []byte {
	var buf bytes.Buffer
	zw := fastWriters.Get().(*kgzip.Writer)
	defer fastWriters.Put(zw)
	zw.Reset(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func check(t *testing.T, data []byte) {
	hbs, err := dayfile.Decode(data)
	sameAsGeneral(t, data, hbs, err)
	if err != nil {
		if !errors.Is(err, dayfile.ErrCorrupt) && !errors.Is(err, dayfile.ErrTooLarge) {
			t.Fatalf("Decode error %v wraps neither ErrCorrupt nor ErrTooLarge", err)
		}
		if hbs != nil {
			t.Fatalf("Decode returned %d heartbeats and an error", len(hbs))
		}
		return
	}
	merged, _ := dayfile.Merge(hbs, nil)
	enc, err := dayfile.Encode(merged)
	if err != nil {
		t.Fatalf("Encode refused what Decode read: %v", err)
	}
	if got, ref := gunzip(t, enc), refNDJSON(t, merged); !bytes.Equal(got, ref) {
		t.Fatalf("Encode differs from encoding/json:\n got %s\nwant %s", got, ref)
	}
	again, err := dayfile.Decode(enc)
	if err != nil {
		t.Fatalf("Decode refused what Encode wrote: %v", err)
	}
	equalSets(t, again, merged)
	if _, changed := dayfile.Merge(again, nil); changed {
		t.Fatal("a file Encode wrote is not in merged form")
	}
	if enc2 := mustEncode(t, again); !bytes.Equal(enc2, enc) {
		t.Fatal("Encode∘Decode∘Encode changed the bytes")
	}
}

// sameAsGeneral fails unless Decode's result (hbs, err) is exactly what
// the general path, without the fast path, reads from data.
func sameAsGeneral(t *testing.T, data []byte, hbs []*heartlogv1.Heartbeat, err error) {
	t.Helper()
	want, wantErr := dayfile.DecodeGeneral(data)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("Decode: %v; the general path: %v", err, wantErr)
	}
	if len(hbs) != len(want) {
		t.Fatalf("Decode read %d heartbeats, the general path %d", len(hbs), len(want))
	}
	for i := range hbs {
		if !proto.Equal(hbs[i], want[i]) {
			t.Fatalf("heartbeat %d: Decode read %s, the general path %s", i, describe(hbs[i]), describe(want[i]))
		}
	}
}

// TestFastPathMatchesGeneral reads lines in Encode's form and thousands
// of damaged copies of them (a byte changed, removed or repeated) with and
// without the fast path: the results, or the errors, must be the same.
func TestFastPathMatchesGeneral(t *testing.T) {
	lines := bytes.SplitAfter(gunzip(t, mustEncode(t, mustMerge(append(edgeCases(), realisticDay(20, 3)...)))), []byte("\n"))
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]",:\ -+.eE0123456789aeflnrstu` + "\x00\x1f\x7f\xc3\xff\r\n")
	for _, line := range lines {
		if len(line) == 0 {
			continue
		}
		data := gzipFast(line)
		hbs, err := dayfile.Decode(data)
		sameAsGeneral(t, data, hbs, err)
		for range 300 {
			b := bytes.Clone(line)
			k := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[k] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:k], b[k+1:]...)
			default:
				b = slices.Insert(b, k, b[k])
			}
			data := gzipFast(b)
			hbs, err := dayfile.Decode(data)
			sameAsGeneral(t, data, hbs, err)
		}
	}
}
