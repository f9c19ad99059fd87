package sqlstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

// childEnv makes the test binary a writer child: "sqlite:PATH" or
// "postgres:DSN".
const childEnv = "HANDOVER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if target := os.Getenv(childEnv); target != "" {
		os.Exit(crashChild(target))
	}
	pgtest.Main(m)
}

// crashWriters is how many goroutines of the child write at once, so the
// group commit has batches to form.
const crashWriters = 8

// crashChild writes until it is killed: each writer creates records and
// saves each several times, and prints "ack ID VERSION" only after the
// ledger call returned. Every save moves the record to another database
// key and sets Attempts to the version it is stored at, so a half-applied
// write — the body of one version with the key columns of another — shows.
func crashChild(target string) int {
	ctx := context.Background()
	backend, where, _ := strings.Cut(target, ":")
	var l ledger.Ledger
	var err error
	switch backend {
	case "sqlite":
		l, err = sqlite.Open(ctx, where, nil)
	case "postgres":
		l, err = postgres.Open(ctx, where, nil)
	default:
		err = fmt.Errorf("unknown backend %q", backend)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: opening the ledger:", err)
		return 2
	}
	run := strconv.Itoa(os.Getpid())
	var mu sync.Mutex // one line at a time on stdout
	ack := func(id string, v int64) {
		mu.Lock()
		fmt.Printf("ack %s %d\n", id, v)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; ; i++ {
				m := &ledger.Migration{ID: fmt.Sprintf("%s-%d-%d", run, w, i), State: ledger.Launching,
					Database: "db-1", Instance: "i-" + run, Attempts: 1, CreatedAt: time.Now()}
				if err := l.CreateMigration(ctx, m); err != nil {
					fmt.Fprintln(os.Stderr, "child: create:", err)
					continue
				}
				ack(m.ID, m.Version)
				for v := 2; v <= 5; v++ {
					m.Attempts = v
					m.Database = fmt.Sprintf("db-%d", v)
					if v == 5 {
						m.State = ledger.Committed
					}
					if err := l.SaveMigration(ctx, m); err != nil {
						fmt.Fprintln(os.Stderr, "child: save:", err)
						break
					}
					ack(m.ID, m.Version)
				}
			}
		})
	}
	wg.Wait()
	return 0
}

// TestKilledMidCommit kills a writer process (SIGKILL) while its group
// commits are in flight, three times over the same ledger, and checks that
// every write it acknowledged is stored and that no write is half-applied.
func TestKilledMidCommit(t *testing.T) {
	targets := map[string]func(t *testing.T) (string, func(t *testing.T) ledger.Ledger){
		"sqlite": func(t *testing.T) (string, func(t *testing.T) ledger.Ledger) {
			path := filepath.Join(t.TempDir(), "ledger.db")
			return "sqlite:" + path, func(t *testing.T) ledger.Ledger {
				l, err := sqlite.Open(t.Context(), path, nil)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
		},
		"postgres": func(t *testing.T) (string, func(t *testing.T) ledger.Ledger) {
			dsn := pgtest.Start(t)
			return "postgres:" + dsn, func(t *testing.T) ledger.Ledger {
				l, err := postgres.Open(t.Context(), dsn, nil)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			target, open := targets[name](t)
			acked := map[string]int64{}
			for round := range 3 {
				n := killChild(t, target, 300+round*100, acked)
				t.Logf("round %d: %d writes acknowledged before the kill", round, n)
			}
			l := open(t)
			defer l.Close()
			checkAcked(t, l, acked)
		})
	}
}

// killChild starts a writer child on target, lets it acknowledge at least
// after writes, kills it, and then reads what it printed before dying into
// acked (the highest version acknowledged per id).
func killChild(t *testing.T, target string, after int, acked map[string]int64) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+target)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n := 0
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		v, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		if v > acked[f[1]] {
			acked[f[1]] = v
		}
		n++
		if n == after && !killed {
			// Mid-batch: the other writers are waiting on a commit.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before %d acknowledgements (%d): %v\n%s", after, n, err, stderr.String())
	}
	return n
}

// checkAcked fails unless every acknowledged write is stored and every
// stored record is whole.
func checkAcked(t *testing.T, l ledger.Ledger, acked map[string]int64) {
	t.Helper()
	ctx := t.Context()
	all, err := l.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*ledger.Migration{}
	for _, m := range all {
		byID[m.ID] = m
		// Whole: the body was written at the version it is stored at, and
		// the index agrees with the body.
		if int64(m.Attempts) != m.Version {
			t.Errorf("%s: version %d holds the body of version %d", m.ID, m.Version, m.Attempts)
		}
		if want := fmt.Sprintf("db-%d", max(m.Version, 1)); m.Version > 1 && m.Database != want {
			t.Errorf("%s: version %d has database %s, want %s", m.ID, m.Version, m.Database, want)
		}
		if m.State.Terminal() != (m.Version == 5) {
			t.Errorf("%s: version %d in state %s", m.ID, m.Version, m.State)
		}
	}
	for id, v := range acked {
		m, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("%s: acknowledged at version %d, not stored", id, v)
		case m.Version < v:
			t.Errorf("%s: acknowledged at version %d, stored at %d", id, v, m.Version)
		}
	}
	// The indexes agree with the bodies.
	for v := int64(2); v <= 5; v++ {
		db := fmt.Sprintf("db-%d", v)
		ms, err := l.ListMigrations(ctx, ledger.MigrationQuery{Database: db})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Database != db || m.Version != v {
				t.Errorf("listed under %s: %s at version %d with database %s", db, m.ID, m.Version, m.Database)
			}
		}
	}
	open, err := l.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range open {
		if m.State.Terminal() {
			t.Errorf("listed as unfinished: %s in state %s", m.ID, m.State)
		}
	}
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	t.Logf("%d records, %d acknowledged ids, all stored and whole", len(all), len(acked))
}
