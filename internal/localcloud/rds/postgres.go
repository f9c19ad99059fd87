package rds

// The PostgreSQL side of a DB instance: a data directory and a postmaster
// of Debian's PostgreSQL, run as the postgres user. Everything the service
// does to a server goes through here: initdb, start, stop, base backups
// (for replicas and snapshots), promotion and the hidden superuser's
// connection.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/handover-dev/handover/internal/pgproc"
)

// adminUser is the hidden superuser: it runs replication, backups and the
// service's own bookkeeping, and can connect only over the instance's
// Unix socket, in a directory only the postgres user (and root) can enter.
// The master user never gets superuser, as on RDS.
const adminUser = "rdsadmin"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

// hba lets the hidden superuser in over the socket only, and everyone
// else over TCP or the socket with a password.
const hba = `# written by the handover local cloud's RDS
local   all          rdsadmin                 trust
local   replication  rdsadmin                 trust
host    all          rdsadmin   0.0.0.0/0     reject
host    all          rdsadmin   ::/0          reject
host    replication  all        0.0.0.0/0     reject
host    replication  all        ::/0          reject
local   all          all                      scram-sha-256
host    all          all        127.0.0.1/32  scram-sha-256
host    all          all        ::1/128       scram-sha-256
`

// layout is where one instance keeps its files, under the service's data
// directory: data/ (PGDATA), sock/ (the Unix socket) and server.log.
type layout struct{ root string }

func (l layout) data() string { return filepath.Join(l.root, "data") }
func (l layout) sock() string { return filepath.Join(l.root, "sock") }
func (l layout) log() string  { return filepath.Join(l.root, "server.log") }

// server is a running postmaster.
type server struct {
	l    layout
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster exits
	err  error         // its exit error, once done
}

// pg runs the programs; one per service.
type pg struct {
	bin   pgproc.Bin
	major int
	// version is the server's full version ("15.18"), for EngineVersion.
	version string
}

func findPG() (*pg, error) {
	bin, err := pgproc.Find("install Debian's postgresql package (`make deps` does), which the local cloud's RDS runs for its DB instances")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(filepath.Join(bin.Dir, "postgres"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("asking %s/postgres for its version: %w", bin.Dir, err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return nil, fmt.Errorf("unexpected postgres --version output %q", out)
	}
	v := fields[2]
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return &pg{bin: bin, major: major, version: v}, nil
}

// reachable checks that the user the servers run as can enter dir: as
// root they run as postgres, and a data directory under a home that is
// closed to others (/root is 0700) would fail every instance later.
func (p *pg) reachable(dir string) error {
	if p.bin.Cred == nil {
		return nil
	}
	if out, err := p.bin.Command("/", "/usr/bin/test", "-x", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("the postgres user, which runs the DB instances' servers, cannot enter %s (%v%s): put the local cloud's data directory where that user can reach it (under /tmp, say), or open its parent directories with chmod o+x", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// prepare makes the instance's directories, owned by the postgres user;
// sock/ is closed to everyone else, since the hidden superuser needs no
// password there.
func (p *pg) prepare(l layout) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{l.root, 0o755}, {l.sock(), 0o700}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("creating %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
		if err := p.bin.Own(d.path); err != nil {
			return err
		}
	}
	return nil
}

// initdb creates a new cluster whose bootstrap superuser is the hidden
// one.
func (p *pg) initdb(l layout) error {
	_ = os.RemoveAll(l.data())
	if err := p.prepare(l); err != nil {
		return err
	}
	out, err := p.bin.Command(l.root, "initdb", "-D", l.data(), "-U", adminUser, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 5))
	}
	return p.writeHBA(l)
}

func (p *pg) writeHBA(l layout) error {
	path := filepath.Join(l.data(), "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return p.bin.Own(path)
}

// start runs the postmaster for l on port and waits until the hidden
// superuser can connect. name becomes cluster_name, which a replica's WAL
// receiver also sends as its application_name.
func (p *pg) start(ctx context.Context, l layout, port int, name string) (*server, error) {
	if err := p.prepare(l); err != nil {
		return nil, err
	}
	// A postmaster killed with the local cloud leaves its pid file; the
	// server removes a stale one itself, so nothing to do here.
	logFile, err := os.OpenFile(l.log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := p.bin.Command(l.root, "postgres",
		"-D", l.data(),
		"-p", strconv.Itoa(port),
		"-k", l.sock(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "cluster_name="+name,
		"-c", "wal_level=replica",
		"-c", "max_wal_senders=25",
		"-c", "max_replication_slots=25",
		"-c", "hot_standby=on",
		"-c", "hot_standby_feedback=off",
		"-c", "wal_keep_size=64MB",
		"-c", "max_connections=100",
		"-c", "shared_buffers=16MB",
		// The local cloud's durability is against its processes dying,
		// not the machine losing power: the OS keeps what was written.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "log_min_messages=warning",
		"-c", "log_connections=off",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The servers die with the local cloud (and come back, as after a
	// reboot, when it starts again).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	s := &server{l: l, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("postgres exited at startup (%v): %s", s.err, lastLines(readTail(l.log()), 5))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		c, err := s.connect(ctx, "postgres")
		if err == nil {
			_ = c.Close(ctx)
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("postgres did not accept connections within %s (last error: %v): %s", startTimeout, err, lastLines(readTail(l.log()), 5))
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// connect opens a connection as the hidden superuser.
func (s *server) connect(ctx context.Context, database string) (*pgx.Conn, error) {
	return connectSocket(ctx, s.l.sock(), s.port, database)
}

func connectSocket(ctx context.Context, sock string, port int, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = sock, uint16(port), adminUser, database
	cfg.ConnectTimeout = 5 * time.Second
	cfg.RuntimeParams = map[string]string{"application_name": "localcloud-rds"}
	return pgx.ConnectConfig(ctx, cfg)
}

// exec runs statements as the hidden superuser in database.
func (s *server) exec(ctx context.Context, database string, stmts ...string) error {
	c, err := s.connect(ctx, database)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, q := range stmts {
		if _, err := c.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// alive reports whether the postmaster is still running.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// stop asks for a fast shutdown (SIGINT: clients are disconnected, a
// checkpoint is written) and waits; after stopTimeout it kills.
func (s *server) stop() {
	if s == nil || !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// baseBackup copies the running server src into dir with pg_basebackup:
// online and consistent, with the WAL it needs streamed alongside. For a
// replica, slot names the replication slot to create and standby makes
// the copy a standby of src (-R: standby.signal and primary_conninfo).
func (p *pg) baseBackup(ctx context.Context, src *server, dir, slot string, standby bool) error {
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// pg_basebackup creates dir itself, as the postgres user, in a parent
	// that user can write.
	if err := p.bin.Own(filepath.Dir(dir)); err != nil {
		return err
	}
	args := []string{"-h", src.l.sock(), "-p", strconv.Itoa(src.port), "-U", adminUser, "-D", dir,
		"-X", "stream", "-c", "fast", "--no-sync", "--no-password"}
	if slot != "" {
		args = append(args, "-C", "-S", slot)
	}
	if standby {
		args = append(args, "-R")
	}
	cmd := p.bin.Command(filepath.Dir(dir), "pg_basebackup", args...)
	out, err := runCtx(ctx, cmd)
	if err != nil {
		return fmt.Errorf("pg_basebackup from %s: %w: %s", src.l.root, err, lastLines(out, 5))
	}
	return nil
}

// copyTree copies a data directory (a snapshot into a new instance) with
// cp -a, as the postgres user, keeping modes.
func (p *pg) copyTree(ctx context.Context, from, to string) error {
	_ = os.RemoveAll(to)
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := p.bin.Own(filepath.Dir(to)); err != nil {
		return err
	}
	cmd := p.bin.Command(filepath.Dir(to), "/bin/cp", "-a", from, to)
	if out, err := runCtx(ctx, cmd); err != nil {
		return fmt.Errorf("copying %s to %s: %w: %s", from, to, err, lastLines(out, 3))
	}
	return nil
}

// unStandby turns a copied data directory into a primary's: no
// standby.signal, no primary_conninfo or slot pointing at its source.
func (p *pg) unStandby(data string) error {
	if err := os.Remove(filepath.Join(data, "standby.signal")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	auto := filepath.Join(data, "postgresql.auto.conf")
	b, err := os.ReadFile(auto)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "primary_conninfo") || strings.HasPrefix(t, "primary_slot_name") {
			continue
		}
		keep = append(keep, line)
	}
	if err := os.WriteFile(auto, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		return err
	}
	return p.bin.Own(auto)
}

func runCtx(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return out.String(), ctx.Err()
	}
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// quoteIdent and quoteLiteral build SQL for names and passwords the
// service was given; pgx's sanitizer covers identifiers, and literals are
// escaped by doubling quotes (standard_conforming_strings is on).
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
