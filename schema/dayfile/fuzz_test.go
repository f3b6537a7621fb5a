package dayfile_test

import (
	"bytes"
	"errors"
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
	if err != nil {
		if !errors.Is(err, dayfile.ErrCorrupt) {
			t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
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
