// Package pgproc runs PostgreSQL's server programs (initdb, postgres,
// pg_basebackup …) the way this project runs them everywhere: Debian's
// binaries, found in PATH or /usr/lib/postgresql/*/bin, run as the
// postgres OS user when we are root (the server refuses to run as root),
// in a clean environment so that PGDATA, PGPORT and friends from the
// caller's shell cannot redirect them.
//
// It holds no server behaviour: the test helper (testenv/pgtest) and the
// local cloud's RDS decide what to run.
package pgproc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Bin is a directory holding the server programs, and who runs them.
type Bin struct {
	Dir string
	// Cred is the postgres user's when we are root, nil otherwise.
	Cred *syscall.Credential
}

// Find returns the directory holding initdb, postgres and pg_basebackup:
// PATH first (following symlinks such as Debian's /usr/local/bin ones),
// then the newest /usr/lib/postgresql/*/bin. hint ends the error that says
// none was found ("run `make deps`").
func Find(hint string) (Bin, error) {
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
	slices.SortFunc(versioned, func(a, b string) int { return Major(b) - Major(a) })
	dirs = append(dirs, versioned...)
	dirs = append(dirs, "/usr/local/pgsql/bin")
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			cred, err := runAs()
			if err != nil {
				return Bin{}, err
			}
			return Bin{Dir: d, Cred: cred}, nil
		}
	}
	return Bin{}, fmt.Errorf("PostgreSQL server binaries (initdb and postgres) not found in PATH or /usr/lib/postgresql/*/bin: %s", hint)
}

// Major is the major version of a /usr/lib/postgresql/N/bin directory, 0
// when the path does not say.
func Major(binDir string) int {
	v := filepath.Base(filepath.Dir(binDir))
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// runAs returns the credential to run PostgreSQL with: as root, the
// postgres OS user; otherwise ourselves (nil).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; there is no postgres OS user to run it as (%v): install Debian's postgresql package (make deps), which makes that user", err)
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

// Command returns program (a name in b.Dir, or an absolute path) with args, to run in dir as
// b's user with a clean environment. dir is also HOME: the caller's
// working directory may be closed to the postgres user.
func (b Bin) Command(dir, program string, args ...string) *exec.Cmd {
	if !filepath.IsAbs(program) {
		program = filepath.Join(b.Dir, program)
	}
	cmd := exec.Command(program, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: b.Cred}
	return cmd
}

// Own hands path to b's user (a no-op when not root), so the server can
// write where we made a directory for it.
func (b Bin) Own(path string) error {
	if b.Cred == nil {
		return nil
	}
	if err := os.Chown(path, int(b.Cred.Uid), int(b.Cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to the postgres user: %w", path, err)
	}
	return nil
}
