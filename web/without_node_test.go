package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
)

// nodeTools are the commands a machine without Node lacks.
var nodeTools = []string{"node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg", "pnpm", "pnpx"}

// TestMakeRunServesThePageWithoutNode is the issue's "make run on a
// machine without Node serves the page": in a copy of the repository's
// tracked files (what a fresh clone has: no web/node_modules, nothing
// built), with a PATH that has every command of this one but Node's, it
// checks that make run's recipe asks nothing of Node, builds heartlog with
// `make build` as make run does, runs `heartlog dev` against the local
// stack, and fetches the page and every asset it names.
func TestMakeRunServesThePageWithoutNode(t *testing.T) {
	heartlogtest.PostgresURL(t) // fails at once without the stack, not after the build
	src := trackedCopy(t)
	path := pathWithoutNode(t)

	// make run's recipe, as make prints it (-n also runs the $(MAKE) build
	// it calls, printing that recipe in turn): no Node, no `make web`.
	recipe := runIn(t, src, path, "make", "--no-print-directory", "-n", "run")
	for _, w := range append(nodeTools, "build.mjs", "node_modules", "make web", "web-check") {
		if regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(w) + `($|[^\w.-])`).MatchString(recipe) {
			t.Errorf("make run's recipe mentions %q, which needs Node:\n%s", w, recipe)
		}
	}
	if !strings.Contains(recipe, "go build -o bin/heartlog ./cmd/heartlog") || !strings.Contains(recipe, "exec bin/heartlog dev") {
		t.Fatalf("make run's recipe no longer builds bin/heartlog and execs `heartlog dev`; update this test:\n%s", recipe)
	}
	start := time.Now()
	runIn(t, src, path, "make", "--no-print-directory", "build")
	t.Logf("make build in a clean copy with no Node on PATH: %v", time.Since(start).Round(time.Second))

	base := startDev(t, src, path)
	resp, index := httpGet(t, base+"/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!bytes.Contains(index, []byte(`id="signin-view"`)) {
		t.Fatalf("GET /: %d %q (%d bytes), want 200 and the dashboard's page", resp.StatusCode, resp.Header.Get("Content-Type"), len(index))
	}
	// Every asset index.html names is served, with its type, as it was
	// committed under web/dist.
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllSubmatch(index, -1)
	kinds := map[string]int{}
	for _, m := range refs {
		ref := string(m[1])
		want, err := os.ReadFile(filepath.Join(src, "web", "dist", filepath.FromSlash(ref)))
		if err != nil {
			t.Errorf("index.html names %s, which is not among the tracked files: %v", ref, err)
			continue
		}
		ctype := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}[filepath.Ext(ref)]
		resp, body := httpGet(t, base+ref)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype || !bytes.Equal(body, want) {
			t.Errorf("GET %s: %d %q, %d bytes (the tracked file has %d), want 200 %q and the same bytes",
				ref, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(want), ctype)
		}
		kinds[filepath.Ext(ref)]++
	}
	if kinds[".js"] == 0 || kinds[".css"] == 0 {
		t.Errorf("index.html names assets %v, want a script and a style sheet", kinds)
	}
	t.Logf("heartlog dev at %s served / and %d assets %v, with no Node on PATH", base, len(refs), kinds)
}

// trackedCopy copies the repository's tracked files (as they are in the
// working tree) into a directory and returns it. The directory is named
// for the repository, the same on every run, so that the build cache (whose
// keys include the sources' directory) serves the next run; a lock keeps
// two runs for one repository apart, and the test's end removes it.
func trackedCopy(t *testing.T) string {
	t.Helper()
	root := strings.TrimSpace(runIn(t, ".", os.Getenv("PATH"), "git", "rev-parse", "--show-toplevel"))
	list := runIn(t, root, os.Getenv("PATH"), "git", "ls-files", "-z")
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "heartlog-without-node-"+hex.EncodeToString(sum[:6]))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		_ = lock.Close() // releases the lock
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "heartlog")
	for _, name := range strings.Split(strings.TrimSuffix(list, "\x00"), "\x00") {
		from := filepath.Join(root, name)
		info, err := os.Lstat(from)
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, name), b, info.Mode().Perm())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// pathWithoutNode is a PATH of one directory holding a link to every
// command on this PATH (the first of each name, as a shell finds it) but
// Node's; it fails the test if a shell still finds Node under it.
func pathWithoutNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{}
	for _, n := range nodeTools {
		skip[n] = true
	}
	// Go's own directory too, which the Makefile appends to PATH anyway.
	for _, dir := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/local/go/bin") {
		entries, _ := os.ReadDir(dir) // a missing directory on PATH holds nothing
		for _, e := range entries {
			link := filepath.Join(bin, e.Name())
			if skip[e.Name()] || e.IsDir() {
				continue
			}
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier directory had it
			}
			if err := os.Symlink(filepath.Join(dir, e.Name()), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodeTools {
		cmd := exec.Command("/bin/sh", "-c", "command -v "+n)
		cmd.Env = append(os.Environ(), "PATH="+bin)
		if out, err := cmd.Output(); err == nil {
			t.Fatalf("the PATH without Node still finds %s at %s", n, out)
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "go")); err != nil {
		t.Fatalf("no go on PATH or in /usr/local/go/bin: %v", err)
	}
	return bin
}

// runIn runs a command in dir with PATH set to path and returns its
// standard output; it fails the test, with the output, if the command
// fails.
func runIn(t *testing.T, dir, path string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+path)
	if p, err := lookIn(path, name); err == nil {
		cmd.Path = p // exec.Command looked on this process's PATH
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// lookIn finds name in the directories of path.
func lookIn(path, name string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, path)
}

// startDev runs bin/heartlog dev in src as make run does (its environment
// is the local stack's, as `. var/env` gives it), with a fresh database,
// an embedded NATS on a free port without its monitoring port, and the API
// on a free port; it returns the API's base URL once it serves, and stops
// the process when the test ends.
func startDev(t *testing.T, src, path string) string {
	t.Helper()
	_, dbURL := heartlogtest.NewDatabase(t)
	conf, err := os.ReadFile(filepath.Join(src, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The monitoring port is fixed in nats.conf; tests run many servers.
	conf = regexp.MustCompile(`(?m)^http:.*$`).ReplaceAll(conf, nil)
	confPath := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(filepath.Join(src, "bin", "heartlog"), "dev")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "PATH="+path, "HEARTLOG_POSTGRES_URL="+dbURL,
		"HEARTLOG_NATS_URL=nats://"+freePort(t), "HEARTLOG_NATS_CONFIG="+confPath, "HEARTLOG_NATS_STORE_DIR="+t.TempDir(),
		"HEARTLOG_HTTP_ADDR="+addr, "HEARTLOG_ADMIN_ADDR=", "HEARTLOG_LOG_LEVEL=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("heartlog dev did not exit within 30 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("heartlog dev's output:\n%s", out.String())
		}
	})
	base := "http://" + addr
	ready := heartlogtest.Eventually(60*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("heartlog dev exited: %v\n%s", err, out.String())
	default:
	}
	if !ready {
		t.Fatalf("heartlog dev's /readyz never answered 200 within 60 s\n%s", out.String())
	}
	return base
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpGet fetches url and returns the response and its body.
func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}
