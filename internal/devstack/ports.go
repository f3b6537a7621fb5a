package devstack

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Addr is a TCP address a part of the local stack listens on, with a name
// that tells the developer where it is configured.
type Addr struct {
	Name     string
	HostPort string
}

// CheckFree reports, in one error, every address that another process
// already listens on, and which process that is where /proc tells (Linux,
// and a process this user may inspect). Addresses with port 0 are skipped.
// It is a check before starting, not a reservation: the ports are released
// again at once.
func CheckFree(addrs ...Addr) error {
	var taken []string
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a.HostPort); err == nil && port == "0" {
			continue
		}
		ln, err := net.Listen("tcp", a.HostPort)
		if err == nil {
			ln.Close()
			continue
		}
		msg := fmt.Sprintf("%s %s: %v", a.Name, a.HostPort, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			msg = fmt.Sprintf("%s %s is already in use%s", a.Name, a.HostPort, owner(a.HostPort))
		}
		taken = append(taken, msg)
	}
	if len(taken) == 0 {
		return nil
	}
	return errors.New(strings.Join(taken, "; ") + " (is another `heartlog dev` running?)")
}

// owner is " by pid N (command)" for the process listening on the port of
// hostPort, or "" when it cannot tell.
func owner(hostPort string) string {
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return ""
	}
	inodes := listeningInodes(port)
	if len(inodes) == 0 {
		return ""
	}
	pids, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range pids {
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // another user's process, or gone
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				pid := filepath.Base(filepath.Dir(fdDir))
				return fmt.Sprintf(" by pid %s (%s)", pid, command(pid))
			}
		}
	}
	return ""
}

// listeningInodes are the socket inodes of the TCP listeners on port, from
// /proc/net/tcp and tcp6 (columns: sl local rem st ... inode; st 0A is
// LISTEN; local is hex IP:hex port).
func listeningInodes(port int) map[string]bool {
	inodes := map[string]bool{}
	want := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && strings.HasSuffix(fields[1], want) {
				inodes[fields[9]] = true
			}
		}
		f.Close()
	}
	return inodes
}

// command is the process's command line, shortened for an error message.
func command(pid string) string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
	if err != nil || len(b) == 0 {
		return "command unknown"
	}
	cmd := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " ")
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	return cmd
}
