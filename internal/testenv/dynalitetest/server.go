package dynalitetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handover-dev/handover/internal/testenv"
)

// Version is the dynalite release the tests run against. scripts/deps.sh
// installs the same one into the same directory: change both together.
const Version = "4.0.0"

const (
	installTimeout = 5 * time.Minute
	startTimeout   = 30 * time.Second
	stopTimeout    = 10 * time.Second
	// tableDelay is how long dynalite keeps a table CREATING (or DELETING,
	// UPDATING): long enough that code waiting for ACTIVE really waits,
	// short enough for a table per test.
	tableDelay = "100"
)

type server struct {
	port    int
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when dynalite exits
	err     error         // its exit error, once done
}

func (s *server) endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// InstallDir is where dynalite Version lives (or will be installed):
// $XDG_CACHE_HOME or ~/.cache, then handover/dynalite-<Version>. The
// version in the name means a new one never mixes with an old install.
func InstallDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory for dynalite: %w", err)
	}
	return filepath.Join(cache, "handover", "dynalite-"+Version), nil
}

// findOrInstall returns the dynalite executable, installing it first if
// it is missing.
func findOrInstall() (string, error) {
	dir, err := InstallDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "node_modules", ".bin", "dynalite")
	if isExec(bin) {
		return bin, nil
	}
	if err := install(dir); err != nil {
		return "", err
	}
	if !isExec(bin) {
		return "", fmt.Errorf("npm installed dynalite@%s into %s but %s is missing", Version, dir, bin)
	}
	return bin, nil
}

// install runs npm into a temporary sibling of dir and renames it into
// place, so an interrupted install never leaves a half-filled dir that
// looks installed. A lock file serialises test binaries of several
// packages that start at once (go test runs packages in parallel).
func install(dir string) error {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("dynalite is not installed in %s and npm is not in PATH to install it: run `make deps`, or set %s=1 to skip these tests", dir, SkipEnv)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExec(filepath.Join(dir, "node_modules", ".bin", "dynalite")) {
		return nil // another test binary installed it while we waited
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	// --ignore-scripts: dynalite runs in memory, so the LevelDB native
	// addon that one dependency would build (or fetch) is never loaded.
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp,
		"--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error",
		"dynalite@"+Version)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install dynalite@%s: %w\n%s", Version, err, bytes.TrimSpace(out))
	}
	// A leftover without the executable (an old, broken install) would
	// make the rename fail.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("moving the dynalite install into place: %w", err)
	}
	return nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func startServer() (*server, error) {
	bin, err := findOrInstall()
	if err != nil {
		return nil, err
	}
	// A free port can be taken between probing and binding; try a few.
	for attempt := 1; ; attempt++ {
		s, err := launch(bin)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "EADDRINUSE") {
			return nil, err
		}
	}
}

// launch runs dynalite in memory on a free loopback port and waits until it
// answers. It is this process's child, killed by the kernel if the test
// binary dies first.
func launch(bin string) (*server, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "handover-dynalite-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--createTableMs", tableDelay,
		"--deleteTableMs", tableDelay,
		"--updateTableMs", tableDelay,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.Remove(logFile.Name())
		return nil, fmt.Errorf("starting dynalite: %w", err)
	}
	s := &server{port: port, logPath: logFile.Name(), cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.done:
			msg := testenv.LogTail(s.logPath)
			os.Remove(s.logPath)
			return nil, fmt.Errorf("dynalite exited at startup (%v):\n%s", s.err, msg)
		default:
		}
		// dynalite answers a GET with "healthy: …" once it listens.
		err := ping(client, s.endpoint())
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			msg := testenv.LogTail(s.logPath)
			_ = s.Stop()
			return nil, fmt.Errorf("dynalite did not answer within %s (last error: %v):\n%s", startTimeout, err, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ping(c *http.Client, endpoint string) error {
	resp, err := c.Get(endpoint)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("healthy")) {
		return fmt.Errorf("GET %s: %s %q", endpoint, resp.Status, body)
	}
	return nil
}

// stop ends dynalite (its data is in memory: nothing to keep) and removes
// its log.
// Stop implements testenv.Server.
func (s *server) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if err := os.Remove(s.logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", s.logPath, err)
	}
	return nil
}
