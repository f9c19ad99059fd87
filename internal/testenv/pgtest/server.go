package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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

// findBinaries returns the directory holding both initdb and postgres:
// PATH first (following symlinks such as Debian's /usr/local/bin ones), then
// the newest /usr/lib/postgresql/*/bin.
func findBinaries() (string, error) {
	var dirs []string
	for _, name := range []string{"initdb", "postgres"} {
		if p, err := exec.LookPath(name); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(real))
			}
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: compare numerically, so 16 beats 9.6.
	slices.SortFunc(versioned, func(a, b string) int {
		return majorOf(b) - majorOf(a)
	})
	dirs = append(dirs, versioned...)
	dirs = append(dirs, "/usr/local/pgsql/bin")
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb and postgres) not found in PATH or /usr/lib/postgresql/*/bin: run `make deps` (it installs the postgresql package), or set %s=1 to skip these tests", SkipEnv)
}

func majorOf(binDir string) int {
	v := filepath.Base(filepath.Dir(binDir))
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// runAs returns the credential to run PostgreSQL with: it refuses to run as
// root, so as root it runs as the postgres OS user; otherwise as ourselves.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; there is no postgres OS user to run it as (%v): run `make deps`, which installs the postgresql package and its user", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func startServer() (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
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
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("handing %s to the postgres user: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}

	data := filepath.Join(dir, "data")
	if err := initCluster(cred, bin, dir, data); err != nil {
		return nil, err
	}

	// A free port can be taken between probing and binding; try a few.
	for attempt := 1; ; attempt++ {
		s, err := launch(cred, bin, dir, data)
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
func initCluster(cred *syscall.Credential, bin, dir, data string) error {
	base := []string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"}
	icu := append(slices.Clip(base), "--locale=C", "--locale-provider=icu", "--icu-locale=en-US")
	out, err := command(cred, dir, filepath.Join(bin, "initdb"), icu...).CombinedOutput()
	if err == nil {
		return nil
	}
	_ = os.RemoveAll(data)
	out2, err := command(cred, dir, filepath.Join(bin, "initdb"), append(base, "--locale=C")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s\n(with ICU: %s)", err, out2, out)
	}
	return nil
}

// launch runs the postmaster directly (not through pg_ctl) so that this
// process owns it: it can wait for it and kill it, and the kernel kills it
// if the test binary dies first.
func launch(cred *syscall.Credential, bin, dir, data string) (*server, error) {
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
	cmd := command(cred, dir, filepath.Join(bin, "postgres"),
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

func command(cred *syscall.Credential, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir // the test's working directory may be closed to the postgres user
	// A clean environment: PGDATA, PGPORT and friends from the caller's
	// shell must not redirect the server.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd
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
