package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/handover-dev/handover/internal/pgproc"
	"github.com/handover-dev/handover/internal/testenv"

	"github.com/jackc/pgx/v5"
)

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

type server struct {
	dir  string // temporary root: data/, the log and the socket
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster exits
	err  error         // its exit error, once done

	adminMu   sync.Mutex
	adminConn *pgx.Conn
}

func startServer() (*server, error) {
	pg, err := pgproc.Find(fmt.Sprintf("run `make deps` (it installs the postgresql package), or set %s=1 to skip these tests", SkipEnv))
	if err != nil {
		return nil, err
	}
	cred := pg.Cred
	// As root, under /tmp: a TMPDIR such as /root/tmp may not be
	// traversable by the postgres user.
	parent := os.TempDir()
	if cred != nil {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "handover-pgtest-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if err := pg.Own(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}

	data := filepath.Join(dir, "data")
	if err := initCluster(pg, dir, data); err != nil {
		return nil, err
	}

	// A free port can be taken between probing and binding; try a few.
	for attempt := 1; ; attempt++ {
		s, err := launch(pg, dir, data)
		if err == nil {
			ok = true
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
	}
}

// initCluster creates the data directory. Databases default to a
// linguistic ICU collation (en-US), as production databases usually do, so
// that code relying on bytewise ORDER BY without COLLATE "C" fails here
// rather than in production. Without ICU support it falls back to C.
func initCluster(pg pgproc.Bin, dir, data string) error {
	base := []string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"}
	icu := append(slices.Clip(base), "--locale=C", "--locale-provider=icu", "--icu-locale=en-US")
	out, err := pg.Command(dir, "initdb", icu...).CombinedOutput()
	if err == nil {
		return nil
	}
	_ = os.RemoveAll(data)
	out2, err := pg.Command(dir, "initdb", append(base, "--locale=C")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s\n(with ICU: %s)", err, out2, out)
	}
	return nil
}

// launch runs the postmaster directly (not through pg_ctl) so that this
// process owns it: it can wait for it and kill it, and the kernel kills it
// if the test binary dies first.
func launch(pg pgproc.Bin, dir, data string) (*server, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := pg.Command(dir, "postgres",
		"-D", data,
		"-p", strconv.Itoa(port),
		"-k", dir, // unix socket inside the temp dir, not /var/run/postgresql
		"-c", "listen_addresses=127.0.0.1",
		// Throwaway data: durability only costs time.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	s := &server{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("postgres exited at startup (%v):\n%s", s.err, testenv.LogTail(logPath))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			s.adminConn = c
			return s, nil
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return nil, fmt.Errorf("postgres did not accept connections within %s (last error: %v):\n%s", startTimeout, err, testenv.LogTail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the server down at once (SIGQUIT is PostgreSQL's immediate
// shutdown: nothing here needs to survive) and deletes its directory.
// Stop implements testenv.Server.
func (s *server) Stop() error {
	s.adminMu.Lock()
	if s.adminConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.adminConn.Close(ctx)
		cancel()
	}
	s.adminMu.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("removing %s: %w", s.dir, err)
	}
	return nil
}
