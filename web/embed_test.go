package web_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"heartlog/api"
	"heartlog/web"
)

// get requests path from h and returns the response with its body read.
func get(t *testing.T, h http.Handler, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

func TestDashboardThroughAPI(t *testing.T) {
	srv := api.New(nil, nil, api.Options{Web: web.Handler()})

	res, index := get(t, srv, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d %s", res.StatusCode, index)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /: Content-Type %q", ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q, want script-src and style-src 'self'", csp)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /: Cache-Control %q, want no-cache", cc)
	}
	if !bytes.HasPrefix(index, []byte("<!doctype html>")) {
		t.Errorf("GET / is not index.html: %.80q", index)
	}

	refs := assetRef.FindAllSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html references %d assets, want the script and the style sheet:\n%s", len(refs), index)
	}
	wantType := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for _, m := range refs {
		path := string(m[1])
		res, body := get(t, srv, path, nil)
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, res.StatusCode, len(body))
			continue
		}
		ext := path[strings.LastIndex(path, "."):]
		if want, ct := wantType[ext], res.Header.Get("Content-Type"); want != "" && ct != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, ct, want)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q, want immutable (the name is content-hashed)", path, cc)
		}

		// Gzipped on request, to the same bytes; revalidated by ETag.
		zres, zbody := get(t, srv, path, http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
		if zres.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s with Accept-Encoding gzip: Content-Encoding %q", path, zres.Header.Get("Content-Encoding"))
		} else if plain := gunzip(t, zbody); !bytes.Equal(plain, body) {
			t.Errorf("GET %s: gzipped body differs from the plain one", path)
		}
		nres, nbody := get(t, srv, path, http.Header{"If-None-Match": {res.Header.Get("ETag")}})
		if nres.StatusCode != http.StatusNotModified || len(nbody) != 0 {
			t.Errorf("GET %s with If-None-Match its ETag: %d, %d bytes; want 304, empty", path, nres.StatusCode, len(nbody))
		}
	}

	for _, path := range []string{"/assets/missing.js", "/index.html"} {
		if res, body := get(t, srv, path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", path, res.StatusCode, body)
		}
	}
	// Other paths keep the API's JSON 404.
	if res, body := get(t, srv, "/api/v1/nothing", nil); res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/v1/nothing: %d %s %s, want the JSON 404", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
}

func TestNoDashboardWithoutWeb(t *testing.T) {
	srv := api.New(nil, nil, api.Options{})
	if res, body := get(t, srv, "/", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET / without Options.Web: %d %s, want 404", res.StatusCode, body)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// DirHandler serves a build from a directory as Handler serves the
// embedded one; a directory without index.html is refused.
func TestDirHandler(t *testing.T) {
	h, err := web.DirHandler(os.DirFS("dist"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append([]string{"/"}, assetPaths(t)...) {
		res, got := get(t, h, path, nil)
		want, wantRes := get(t, web.Handler(), path, nil)
		if res.StatusCode != http.StatusOK || !bytes.Equal(got, wantRes) || res.Header.Get("Content-Type") != want.Header.Get("Content-Type") {
			t.Errorf("%s from the directory: %s, %d bytes, %s; embedded: %d bytes, %s", path, res.Status, len(got),
				res.Header.Get("Content-Type"), len(wantRes), want.Header.Get("Content-Type"))
		}
	}
	if _, err := web.DirHandler(os.DirFS(t.TempDir())); err == nil {
		t.Error("DirHandler of an empty directory: no error")
	}
}

// assetPaths are the assets index.html names.
func assetPaths(t *testing.T) []string {
	_, index := get(t, web.Handler(), "/", nil)
	var out []string
	for _, m := range assetRef.FindAllSubmatch(index, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) == 0 {
		t.Fatal("index.html names no asset")
	}
	return out
}
