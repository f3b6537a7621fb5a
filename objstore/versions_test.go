package objstore_test

import (
	"bytes"
	"errors"
	"testing"

	"heartlog/objstore"
)

// TestVersions checks the backup bucket's history, through the bare and the
// instrumented bucket (Instrument keeps Versioned).
func TestVersions(t *testing.T) {
	raw := newS3(t, envConfig(t, backupEnv))
	for name, b := range map[string]objstore.Bucket{
		"bare":         raw,
		"instrumented": objstore.Instrument(raw, "objstore-test"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testVersions(t, b, raw)
		})
	}
}

func testVersions(t *testing.T, b objstore.Bucket, raw *objstore.S3) {
	v, ok := b.(objstore.Versioned)
	if !ok {
		t.Fatalf("%T does not implement Versioned", b)
	}
	ctx, w := testContext(t), newWorkspace(t, raw)
	key := w.key("u1/2024-03-01.ndjson.gz")
	// A key that has key as its prefix must not show up in key's versions.
	neighbour := w.key("u1/2024-03-01.ndjson.gz.bak")
	if _, err := b.Put(ctx, neighbour, []byte("other")); err != nil {
		t.Fatal(err)
	}
	nvs, err := v.Versions(ctx, neighbour)
	if err != nil || len(nvs) != 1 {
		t.Fatalf("versions of the neighbour: %+v, %v", nvs, err)
	}

	contents := [][]byte{[]byte("version one"), []byte("version two"), []byte("version three")}
	var etags []string
	for _, c := range contents {
		etag, err := b.Put(ctx, key, c)
		if err != nil {
			t.Fatal(err)
		}
		etags = append(etags, etag)
	}
	vs, err := v.Versions(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("3 puts of different content: %d versions, want 3: %+v", len(vs), vs)
	}
	// Newest first; only the newest is latest; each old version reads back
	// exactly as written.
	for i, ver := range vs {
		want := len(contents) - 1 - i
		if ver.ID == "" || ver.LastModified.IsZero() {
			t.Errorf("version %d: empty ID or LastModified: %+v", i, ver)
		}
		if ver.IsLatest != (i == 0) {
			t.Errorf("version %d: IsLatest %v", i, ver.IsLatest)
		}
		if ver.ETag != etags[want] {
			t.Errorf("version %d: ETag %q, want %q (put #%d)", i, ver.ETag, etags[want], want+1)
		}
		got, err := v.GetVersion(ctx, key, ver.ID)
		if err != nil {
			t.Fatalf("get version %s: %v", ver.ID, err)
		}
		if !bytes.Equal(got, contents[want]) {
			t.Errorf("version %d (%s): %q, want %q", i, ver.ID, got, contents[want])
		}
		if i > 0 && ver.LastModified.After(vs[i-1].LastModified) {
			t.Errorf("version %d is newer than version %d", i, i-1)
		}
	}

	// The same bytes again. S3 creates a new version for every PUT, even of
	// identical content; this records what the server here does.
	if _, err := b.Put(ctx, key, contents[2]); err != nil {
		t.Fatal(err)
	}
	vs2, err := v.Versions(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	switch len(vs2) {
	case 4:
		t.Logf("a put of identical bytes created a new version (like S3): %d versions, newest %s, ETag %q == %q",
			len(vs2), vs2[0].ID, vs2[0].ETag, vs2[1].ETag)
	case 3:
		t.Logf("a put of identical bytes created NO new version (unlike S3)")
	default:
		t.Fatalf("after a put of identical bytes: %d versions", len(vs2))
	}
	if len(vs2) != 4 {
		t.Errorf("expected S3 behaviour (a new version per put): the processor's skip of identical writes is what keeps one version per change")
	}

	// Delete adds a delete marker: Get says not found, the history stays.
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get after delete on a versioned bucket: %v, want ErrNotFound", err)
	}
	vs3, err := v.Versions(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs3) != len(vs2) {
		t.Errorf("after delete: %d versions, want %d (delete markers are not versions)", len(vs3), len(vs2))
	}
	for _, ver := range vs3 {
		if ver.IsLatest {
			t.Errorf("after delete, version %s is still latest", ver.ID)
		}
	}
	if got, err := v.GetVersion(ctx, key, vs[2].ID); err != nil || !bytes.Equal(got, contents[0]) {
		t.Errorf("oldest version after delete: %q, %v", got, err)
	}

	// Unknown versions and keys.
	if vs, err := v.Versions(ctx, w.key("never-written")); err != nil || len(vs) != 0 {
		t.Errorf("versions of a missing key: %+v, %v", vs, err)
	}
	if _, err := v.GetVersion(ctx, w.key("never-written"), vs[0].ID); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("get version of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := v.GetVersion(ctx, key, nvs[0].ID); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("get of another key's version id: %v, want ErrNotFound", err)
	}
}
