package objstore_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"heartlog/objstore"
)

// TestConformance runs the Bucket contract against both local buckets, bare
// and instrumented.
func TestConformance(t *testing.T) {
	primary := newS3(t, envConfig(t, primaryEnv))
	backup := newS3(t, envConfig(t, backupEnv))
	// Pagination (more than 1000 keys) is the S3 client's; the decorator
	// only passes keys through, so it lists fewer (and the suite stays fast).
	for _, tc := range []struct {
		name  string
		b     objstore.Bucket
		raw   *objstore.S3
		listN int
	}{
		{"primary", primary, primary, 1100},
		{"backup", backup, backup, 1100},
		{"primary-instrumented", objstore.Instrument(primary, "objstore-test"), primary, 30},
		{"backup-instrumented", objstore.Instrument(backup, "objstore-test"), backup, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testBucket(t, tc.b, tc.raw, tc.listN)
		})
	}
}

// testBucket is the conformance suite: what every Bucket must do. listN
// keys are listed under one prefix; above 1000 that takes several pages.
func testBucket(t *testing.T, b objstore.Bucket, raw *objstore.S3, listN int) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		for _, size := range []int{0, 1, 5 << 10, 3 << 20} {
			key := w.key(fmt.Sprintf("u1/2024-01-%02d.ndjson.gz", size%28+1))
			data := randomBytes(size)
			etag, err := b.Put(ctx, key, data)
			if err != nil {
				t.Fatalf("put %d bytes: %v", size, err)
			}
			if etag == "" {
				t.Errorf("put %d bytes: empty ETag", size)
			}
			got, getETag, err := b.Get(ctx, key)
			if err != nil {
				t.Fatalf("get %d bytes: %v", size, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("get %d bytes: content differs (got %d bytes)", size, len(got))
			}
			if getETag != etag {
				t.Errorf("get ETag %q, put returned %q", getETag, etag)
			}
		}
	})

	t.Run("KeyCharacters", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		for _, name := range []string{"sp ace/plus+sign", "percent%25/and%", "ünï/çødé.ndjson.gz", "q?x=1&y=#frag", "a~b!c'd(e)*f,g;h=i"} {
			key := w.key(name)
			if _, err := b.Put(ctx, key, []byte(name)); err != nil {
				t.Fatalf("put %q: %v", key, err)
			}
			if got, _, err := b.Get(ctx, key); err != nil || string(got) != name {
				t.Fatalf("get %q: %q, %v", key, got, err)
			}
			keys, err := objstore.ListAll(ctx, b, key)
			if err != nil || !slices.Contains(keys, key) {
				t.Fatalf("list %q: %q, %v", key, keys, err)
			}
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		key := w.key("day.ndjson.gz")
		for _, s := range []string{"first", "second, longer"} {
			if _, err := b.Put(ctx, key, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		got, _, err := b.Get(ctx, key)
		if err != nil || string(got) != "second, longer" {
			t.Fatalf("get after overwrite: %q, %v", got, err)
		}
	})

	t.Run("ETag", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		a, c := randomBytes(4096), randomBytes(4096)
		e1, err := b.Put(ctx, w.key("a"), a)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := b.Put(ctx, w.key("a"), a) // same bytes again: idempotent
		if err != nil {
			t.Fatal(err)
		}
		e3, err := b.Put(ctx, w.key("other"), a) // same bytes, other key
		if err != nil {
			t.Fatal(err)
		}
		e4, err := b.Put(ctx, w.key("a"), c) // different bytes
		if err != nil {
			t.Fatal(err)
		}
		if e1 != e2 || e1 != e3 {
			t.Errorf("same bytes gave ETags %q, %q, %q", e1, e2, e3)
		}
		if e4 == e1 {
			t.Errorf("different bytes gave the same ETag %q", e1)
		}
		if sum := md5.Sum(a); e1 != hex.EncodeToString(sum[:]) {
			t.Logf("note: ETag %q is not the hex MD5 of the content", e1)
		}
	})

	t.Run("PutIfMatch", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		key := w.key("u1/2024-02-01.ndjson.gz")
		v1, v2, v3 := []byte("one"), []byte("two"), []byte("three")
		e1, err := b.PutIfMatch(ctx, key, v1, "")
		if err != nil {
			t.Fatalf("create a new key: %v", err)
		}
		if _, err := b.PutIfMatch(ctx, key, v2, ""); !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("create over an existing key: err %v, want ErrPreconditionFailed", err)
		}
		e2, err := b.PutIfMatch(ctx, key, v2, e1)
		if err != nil {
			t.Fatalf("replace under the current ETag: %v", err)
		}
		if _, err := b.PutIfMatch(ctx, key, v3, e1); !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Fatalf("replace under a stale ETag: err %v, want ErrPreconditionFailed", err)
		}
		got, etag, err := b.Get(ctx, key)
		if err != nil || !bytes.Equal(got, v2) || etag != e2 {
			t.Fatalf("after the refused writes: %q etag %q err %v, want %q etag %q", got, etag, err, v2, e2)
		}
		if err := objstore.CheckConditionalWrites(ctx, b); err != nil {
			t.Errorf("CheckConditionalWrites: %v", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		data, etag, err := b.Get(ctx, w.key("never-written"))
		if !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("get of a missing key: err %v, want ErrNotFound", err)
		}
		if data != nil || etag != "" {
			t.Errorf("get of a missing key returned data %q etag %q", data, etag)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		key := w.key("x/y.ndjson.gz")
		if _, err := b.Put(ctx, key, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("get after delete: %v, want ErrNotFound", err)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("second delete: %v, want nil", err)
		}
		if err := b.Delete(ctx, w.key("never-written")); err != nil {
			t.Errorf("delete of a missing key: %v, want nil", err)
		}
		if keys, err := objstore.ListAll(ctx, b, w.prefix); err != nil || len(keys) != 0 {
			t.Errorf("list after delete: %q, %v", keys, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		ctx, w := testContext(t), newWorkspace(t, raw)
		n := listN
		var want []string
		for i := range n {
			// Nested keys like day files: <prefix>/<user>/<day>.
			want = append(want, w.key(fmt.Sprintf("list/u%02d/2024-%04d.ndjson.gz", i%7, i)))
		}
		// A neighbour that shares the string prefix "list" but not "list/".
		other := w.key("listing-not-included")
		for _, err := range parallel(n+1, 64, func(i int) error {
			if i == n {
				_, err := b.Put(ctx, other, []byte("o"))
				return err
			}
			_, err := b.Put(ctx, want[i], []byte{byte(i)})
			return err
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(want)
		got, err := objstore.ListAll(ctx, b, w.prefix+"list/")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list: got %d keys, want %d (first got %q, first want %q)", len(got), len(want), first(got), first(want))
		}
		all, err := objstore.ListAll(ctx, b, w.prefix)
		if err != nil || len(all) != n+1 {
			t.Fatalf("list of the whole prefix: %d keys, %v; want %d", len(all), err, n+1)
		}
		// Breaking out early is allowed.
		seen := 0
		for _, err := range b.List(ctx, w.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			if seen++; seen == 3 {
				break
			}
		}
		if keys, err := objstore.ListAll(ctx, b, w.prefix+"nothing-here/"); err != nil || len(keys) != 0 {
			t.Errorf("list of an empty prefix: %q, %v", keys, err)
		}
		// Objects lists the same keys with the ETags Get gives, which for
		// these single-part uploads are the MD5 of the bytes: what lets a
		// verify compare two buckets by their listings.
		i := 0
		for obj, err := range b.Objects(ctx, w.prefix+"list/") {
			if err != nil {
				t.Fatal(err)
			}
			if obj.Key != want[i] {
				t.Fatalf("objects[%d]: key %q, want %q", i, obj.Key, want[i])
			}
			data, etag, err := b.Get(ctx, obj.Key)
			if err != nil {
				t.Fatal(err)
			}
			if sum := md5.Sum(data); obj.ETag != etag || obj.ETag != hex.EncodeToString(sum[:]) {
				t.Fatalf("objects: %s has ETag %q, Get says %q, the MD5 of its bytes is %x", obj.Key, obj.ETag, etag, sum)
			}
			i++
		}
		if i != len(want) {
			t.Fatalf("objects: %d, want %d", i, len(want))
		}
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
