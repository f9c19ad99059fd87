package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAPIWithNoControllerRunning: once every controller has exited, API
// still returns a client, and its calls fail with an error naming the
// controller and its log instead of dereferencing nil.
func TestAPIWithNoControllerRunning(t *testing.T) {
	dead := &Controller{N: 3, APIAddr: "127.0.0.1:1", done: make(chan struct{}), LogPath: "/data/controller-3.log",
		waitErr: errors.New("signal: killed")}
	close(dead.done)
	e := &Env{controllers: []*Controller{dead}}

	_, err := e.API().Migrations(t.Context(), url.Values{"database": {database}})
	var exited *ControllerExitedError
	if !errors.As(err, &exited) {
		t.Fatalf("Migrations with no controller running: %v, want a *ControllerExitedError", err)
	}
	for _, want := range []string{"controller 3 exited", "signal: killed", "/data/controller-3.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// No controller at all: still an error, not a nil client.
	if _, err := (&Env{}).API().Databases(t.Context()); err == nil || !strings.Contains(err.Error(), "no controller") {
		t.Errorf("Databases with no controller started: %v", err)
	}
}

// TestWatchControllers: the watched context ends, with the exit as its
// cause, only when the last running controller has exited.
func TestWatchControllers(t *testing.T) {
	a := &Controller{N: 1, done: make(chan struct{}), LogPath: "a.log"}
	b := &Controller{N: 2, done: make(chan struct{}), LogPath: "b.log"}
	e := &Env{controllers: []*Controller{a, b}}
	ctx, stop := e.WatchControllers(t.Context())
	defer stop()

	close(a.done)
	select {
	case <-ctx.Done():
		t.Fatalf("context ended while controller 2 still runs: %v", context.Cause(ctx))
	case <-time.After(100 * time.Millisecond):
	}
	close(b.done)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context still alive 5s after the last controller exited")
	}
	var exited *ControllerExitedError
	if !errors.As(context.Cause(ctx), &exited) || exited.N != 2 || exited.LogPath != "b.log" {
		t.Errorf("cause = %v, want controller 2's exit", context.Cause(ctx))
	}
}

// TestDemoControllerKilled runs `handover demo` as a user would and kills
// its controller with SIGKILL in the middle of the handover: the demo must
// say that the controller exited and which log to read, keep that log,
// exit 1, and not panic.
func TestDemoControllerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	hb, kv := binaries(t)
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hb, "demo", "--scenario", "update", "--state-size", "1MiB", "--kvstore", kv, "--data-dir", dir)
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	killed := false
	sc := bufio.NewScanner(io.TeeReader(stderr, &errOut))
	for sc.Scan() {
		// The handover has started: the demo polls the controller's API
		// for it from now on.
		if !killed && strings.Contains(sc.Text(), "[update] handover to ") {
			pid, err := childController(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	out := errOut.String()
	t.Logf("stderr:\n%s", tail(out, 15))
	if !killed {
		t.Fatal("the demo never started the handover")
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Fatalf("the demo panicked")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	log := filepath.Join(dir, "controller-1.log")
	for _, want := range []string{"controller 1 exited", "signal: killed", log} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
	if _, err := os.Stat(log); err != nil {
		t.Errorf("the controller's log is gone: %v", err)
	}
}

// childController finds the controller process the demo with pid parent
// started.
func childController(parent int) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			// pid (comm) state ppid …; comm may hold spaces, so split
			// after its closing parenthesis.
			i := bytes.LastIndexByte(b, ')')
			f := strings.Fields(string(b[i+1:]))
			if len(f) < 2 || f[1] != strconv.Itoa(parent) {
				continue
			}
			dir := filepath.Dir(p)
			cl, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
			if args := strings.Split(string(cl), "\x00"); len(args) > 1 && args[1] == "controller" {
				return strconv.Atoi(filepath.Base(dir))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, errors.New("no controller process under the demo")
}
