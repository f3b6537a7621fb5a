package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// daemon is one OS process of the private stack (a server or a heartlog
// command) that the suite starts, kills and starts again. Its output goes
// to a log file under the work directory, appended across restarts.
type daemon struct {
	name    string
	path    string
	args    []string
	env     []string // nil: the driver's environment
	cred    *syscall.Credential
	dir     string
	logPath string

	cmd    *exec.Cmd
	exited chan struct{}
	exit   *exit // how the process started last exited, once exited is closed
	starts int
}

// start runs the process; it does not wait for it to be ready.
func (d *daemon) start() error {
	if d.alive() {
		return fmt.Errorf("%s is already running (pid %d)", d.name, d.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s: chaos starts %s (start %d)\n", time.Now().UTC().Format(time.RFC3339Nano), d.name, d.starts+1)
	cmd := exec.Command(d.path, d.args...)
	cmd.Env = d.env
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a Ctrl-C in the terminal reaches the driver
	// only, which stops everything in order), and killed with the driver
	// if the driver dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: d.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	exited := make(chan struct{})
	ex := new(exit)
	go func() {
		ex.err = cmd.Wait()
		ex.at = time.Now()
		logf.Close()
		close(exited)
	}()
	d.cmd, d.exited, d.exit = cmd, exited, ex
	d.starts++
	return nil
}

// alive reports whether the process started last is still running.
func (d *daemon) alive() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// exit is how and when a process ended.
type exit struct {
	err error
	at  time.Time
}

// wait waits until the process started last exits and returns how it
// exited (nil: status 0) and when, or ctx's error.
func (d *daemon) wait(ctx context.Context) (time.Time, error) {
	if d.cmd == nil {
		return time.Time{}, fmt.Errorf("%s was never started", d.name)
	}
	select {
	case <-d.exited:
		return d.exit.at, d.exit.err
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// pid is the running process's id, 0 if none.
func (d *daemon) pid() int {
	if !d.alive() {
		return 0
	}
	return d.cmd.Process.Pid
}

// kill sends SIGKILL and waits until the process is gone.
func (d *daemon) kill() error { return d.signal(syscall.SIGKILL, 10*time.Second) }

// stop sends sig (SIGTERM, or SIGINT for Postgres' fast shutdown) and
// waits up to timeout, then kills.
func (d *daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	if err := d.signal(sig, timeout); err == nil {
		return nil
	}
	return d.kill()
}

func (d *daemon) signal(sig syscall.Signal, timeout time.Duration) error {
	if !d.alive() {
		return nil
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) did not exit within %s of %s", d.name, d.cmd.Process.Pid, timeout, sig)
	}
}

// restart kills the process and starts it again.
func (d *daemon) restart() error {
	if err := d.kill(); err != nil {
		return err
	}
	return d.start()
}

// waitPort waits until something accepts TCP connections on
// 127.0.0.1:port, failing early if the process exits.
func (d *daemon) waitPort(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if !d.alive() {
			return fmt.Errorf("%s exited before listening on %s; see %s", d.name, addr, d.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %s; see %s", d.name, addr, timeout, d.logPath)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return tcp.Port, nil
}
