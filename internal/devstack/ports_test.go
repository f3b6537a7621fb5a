package devstack_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"heartlog/internal/devstack"
)

// TestCheckFreeNamesTheTakenPortAndItsOwner holds a port as another
// `heartlog dev` would: the error names it, its setting, and (on Linux)
// this process as the owner; a free port passes.
func TestCheckFreeNamesTheTakenPortAndItsOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()

	err = devstack.CheckFree(
		devstack.Addr{Name: "API (HEARTLOG_HTTP_ADDR)", HostPort: freeAddr},
		devstack.Addr{Name: "NATS client port (HEARTLOG_NATS_URL)", HostPort: ln.Addr().String()},
	)
	want := "NATS client port (HEARTLOG_NATS_URL) " + ln.Addr().String() + " is already in use"
	if runtime.GOOS == "linux" {
		want += fmt.Sprintf(" by pid %d (", os.Getpid())
	}
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), freeAddr) {
		t.Fatalf("err = %v, want it to contain %q and not name the free %s", err, want, freeAddr)
	}
	if err := devstack.CheckFree(devstack.Addr{Name: "free", HostPort: freeAddr}); err != nil {
		t.Fatalf("free port: %v", err)
	}
}

// TestNATSAddrsFromConfig reads the ports nats.conf opens.
func TestNATSAddrsFromConfig(t *testing.T) {
	addrs, err := devstack.NATSOptions{ConfigFile: "../../nats.conf", StoreDir: t.TempDir(), Host: "127.0.0.1", Port: 54999}.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(addrs)
	if !strings.Contains(got, "127.0.0.1:54999") || !strings.Contains(got, "127.0.0.1:58222") {
		t.Fatalf("addrs = %v, want the client port 54999 and nats.conf's monitoring port 58222", got)
	}
}
