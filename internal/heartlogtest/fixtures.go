package heartlogtest

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixture is one request that the real wakatime-cli sent, from
// shared/fixtures/wakatime.
type Fixture struct {
	Name   string
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// FixtureDir finds shared/fixtures/wakatime beside the repository (or at
// HEARTLOG_FIXTURES). A missing directory fails the test.
func FixtureDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("HEARTLOG_FIXTURES"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	fixtures := filepath.Join(dir, "..", "shared", "fixtures", "wakatime")
	if _, err := os.Stat(fixtures); err != nil {
		t.Fatalf("WakaTime fixtures not found at %s (set HEARTLOG_FIXTURES): %v", fixtures, err)
	}
	return fixtures
}

// LoadFixtures reads every *.http request in the fixture directory.
func LoadFixtures(t testing.TB) []Fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(FixtureDir(t), "*.http"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no *.http fixtures found: %v", err)
	}
	var out []Fixture
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseFixture(t, filepath.Base(p), raw))
	}
	return out
}

func parseFixture(t testing.TB, name string, raw []byte) Fixture {
	t.Helper()
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	line, err := r.ReadLine()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	parts := strings.Fields(line)
	if len(parts) != 3 {
		t.Fatalf("%s: bad request line %q", name, line)
	}
	hdr, err := r.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("%s: headers: %v", name, err)
	}
	_, body, _ := bytes.Cut(raw, []byte("\n\n"))
	return Fixture{Name: name, Method: parts[0], Path: parts[1], Header: http.Header(hdr), Body: bytes.TrimSpace(body)}
}
