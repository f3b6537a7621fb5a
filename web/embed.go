// Package web is heartlog's dashboard: the single-page app that `make web`
// builds from web/src into web/dist, embedded in the binary, and the
// handler that serves it. Package api mounts Handler at GET / and
// GET /assets/ (api.Options.Web); everything the page loads comes from
// here, so the server's Content-Security-Policy can allow 'self' only.
//
// web/dist is generated and committed, so building heartlog needs no Node;
// `make web-check` fails when it is stale.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed dist
var dist embed.FS

// Cache-Control of the page and of its assets. The build names every
// asset by a hash of its content, so an asset never changes under its
// name and browsers may keep it; index.html, which names them, is
// revalidated on every load (cheaply: it has an ETag).
const (
	indexCache = "no-cache"
	assetCache = "public, max-age=31536000, immutable"
)

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	cache string
	etag  string

	// gz is body gzipped, made on first use: the bundle is text and
	// shrinks about four times, which is most of a cold first paint.
	gzOnce sync.Once
	gz     []byte
}

// embedded maps a request path ("/" and "/assets/NAME") to its file.
var embedded = sync.OnceValue(func() map[string]*asset {
	sub, err := fs.Sub(dist, "dist")
	if err == nil {
		var m map[string]*asset
		if m, err = readAssets(sub); err == nil {
			return m
		}
	}
	panic("web: reading the embedded dist: " + err.Error()) // the embed is fixed at build time
})

// readAssets reads a build's output (index.html and assets/) from fsys.
func readAssets(fsys fs.FS) (map[string]*asset, error) {
	m := map[string]*asset{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, cache: assetCache, etag: `"` + hex.EncodeToString(sum[:16]) + `"`,
			ctype: contentType(p)}
		route := "/" + p
		if route == "/index.html" {
			route, a.cache = "/", indexCache
		}
		m[route] = a
		return nil
	})
	return m, err
}

// types are the content types of what the build writes, fixed here
// rather than taken from the host's mime.types: a module script must be
// served as JavaScript under nosniff.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
}

func contentType(name string) string {
	if t, ok := types[path.Ext(name)]; ok {
		return t
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Handler serves the dashboard: index.html at "/", the bundle under
// "/assets/"; any other path is 404. It answers GET and HEAD, gzipped for
// clients that accept it, with ETags for conditional requests.
func Handler() http.Handler {
	return handler(embedded())
}

// DirHandler is Handler for another build of the page: the output of
// build.mjs (index.html and assets/) in fsys, read once, now. For
// comparing two builds side by side (ops/bench -dashboard-ab).
func DirHandler(fsys fs.FS) (http.Handler, error) {
	m, err := readAssets(fsys)
	if err != nil {
		return nil, err
	}
	if m["/"] == nil {
		return nil, errors.New("web: no index.html in the build")
	}
	return handler(m), nil
}

func handler(assets map[string]*asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		a.serve(w, r)
	})
}

func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", a.cache)
	h.Set("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body, etag = a.gzipped(), strings.TrimSuffix(a.etag, `"`)+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match against the ETag (304), HEAD and
	// Content-Length.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // the level is valid
		_, _ = zw.Write(a.body)                                // writes to a bytes.Buffer cannot fail
		_ = zw.Close()
		a.gz = b.Bytes()
	})
	return a.gz
}

// acceptsGzip says whether an Accept-Encoding header allows gzip: listed,
// and not with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
