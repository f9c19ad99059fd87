package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	_ "modernc.org/sqlite"
)

// testDialect is SQLite with just the tables the store needs (the real
// dialects live in the sqlite and postgres packages, which import this one).
var testDialect = &Dialect{
	Name:    "sqlite",
	Begin:   "BEGIN IMMEDIATE",
	NotDone: "done = 0",
	Schema: []string{`
CREATE TABLE handover_records (kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, done INTEGER NOT NULL,
	key1 TEXT NOT NULL DEFAULT '', key2 TEXT NOT NULL DEFAULT '', key3 TEXT NOT NULL DEFAULT '', body TEXT NOT NULL,
	PRIMARY KEY (kind, id));
CREATE TABLE handover_events (id TEXT PRIMARY KEY, expires TEXT NOT NULL);
CREATE TABLE handover_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires TEXT NOT NULL);
`},
	Transient: func(error) bool { return false },
}

var testKind = &ledger.Kind{Name: "thing", Keys: []string{"owner"}}

func openTest(t *testing.T) *Store {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "l.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), db, testDialect, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rec(id string) ledger.Record {
	return ledger.Record{Kind: testKind, ID: id, Keys: []string{"o"}, Body: []byte(`{"id":"` + id + `"}`)}
}

// TestGroupCommitFailure: writes queued while a transaction is open commit
// together in the next one; when one of them fails the database, that
// transaction is rolled back whole, the others are written one by one,
// and the failed write — including what it wrote before failing — is not
// stored and says it may be retried.
func TestGroupCommitFailure(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	hold := make(chan struct{})
	holding := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.write(ctx, recordLock(testKind.Name, "a"), func(ctx context.Context, w *writer) error {
			close(holding)
			<-hold // the committer is busy: later writes queue up
			_, err := w.exec(ctx, s.q.create, testKind.Name, "a", false, "o", "", "", `{}`)
			return err
		})
	}()
	<-holding

	results := make(chan struct {
		id  string
		err error
	}, 3)
	send := func(id string, f func() error) {
		go func() {
			results <- struct {
				id  string
				err error
			}{id, f()}
		}()
	}
	boom := errors.New("disk on fire")
	send("b", func() error { return s.Create(ctx, rec("b")) })
	send("c", func() error {
		return s.write(ctx, recordLock(testKind.Name, "c"), func(ctx context.Context, w *writer) error {
			if _, err := w.exec(ctx, s.q.create, testKind.Name, "c", false, "o", "", "", `{}`); err != nil {
				return err
			}
			return boom // after a statement that succeeded
		})
	})
	send("d", func() error { return s.Create(ctx, rec("d")) })
	// Let all three reach the queue before the committer is released.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.writes) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(s.writes) != 3 {
		t.Fatalf("%d writes queued, want 3", len(s.writes))
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatalf("first write: %v", err)
	}
	for range 3 {
		r := <-results
		switch r.id {
		case "c":
			if !errors.Is(r.err, boom) || !errors.Is(r.err, ledger.ErrRetry) {
				t.Errorf("failed write: %v, want %v marked ErrRetry", r.err, boom)
			}
		default:
			if r.err != nil {
				t.Errorf("write %s, batched with a failing one: %v", r.id, r.err)
			}
		}
	}
	for _, id := range []string{"a", "b", "d"} {
		if _, err := s.Get(ctx, testKind, id); err != nil {
			t.Errorf("record %s: %v", id, err)
		}
	}
	if _, err := s.Get(ctx, testKind, "c"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the failed write's own statement: %v, want it rolled back (ErrNotFound)", err)
	}
	// a alone, then b and d one by one after the batch of three failed.
	if st := s.Stats(); st.Commits != 3 || st.Writes != 3 {
		t.Errorf("stats %+v, want 3 commits of 3 writes", st)
	}
}

// TestGroupCommitBatches: writers racing each other share transactions.
func TestGroupCommitBatches(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const n = 200
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Create(ctx, rec(string(rune('A'+i%26))+string(rune('0'+i/26)))) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Writes != n {
		t.Fatalf("%d writes committed, want %d", st.Writes, n)
	}
	if st.Commits >= n {
		t.Errorf("%d commits for %d racing writes: nothing was grouped", st.Commits, n)
	}
	t.Logf("%d writes in %d commits", st.Writes, st.Commits)
}

// TestCancelledBeforeCommit: a write whose caller gave up before the
// committer reached it is not made.
func TestCancelledBeforeCommit(t *testing.T) {
	s := openTest(t)
	hold := holdCommitter(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Create(ctx, rec("late")) }()
	for len(s.writes) < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v", err)
	}
	close(hold)
	// A write after it is committed only once the queue is drained.
	if err := s.Create(context.Background(), rec("next")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), testKind, "late"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a write cancelled before its commit: %v, want ErrNotFound", err)
	}
}

// TestBatchRunsInLockOrder: the writes of one transaction run in the order
// of the rows they lock, whatever order they arrived in, so two stores on
// one database never take two rows' locks in opposite orders.
func TestBatchRunsInLockOrder(t *testing.T) {
	s := openTest(t)
	hold := holdCommitter(s)
	var ran []string // only the committer goroutine appends
	errs := make(chan error, 3)
	for i, id := range []string{"c", "a", "b"} {
		go func() {
			errs <- s.write(context.Background(), recordLock(testKind.Name, id), func(ctx context.Context, w *writer) error {
				ran = append(ran, id)
				return nil
			})
		}()
		for len(s.writes) < i+1 { // queued one after the other, in this order
			time.Sleep(time.Millisecond)
		}
	}
	close(hold)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(ran, ","); got != "a,b,c" {
		t.Errorf("writes ran as %s, want a,b,c (lock order)", got)
	}
}

// TestTransientFaultRunsAgain: a transaction the database rolled back as a
// deadlock victim (a Transient error) is run again, and its write lands
// instead of failing.
func TestTransientFaultRunsAgain(t *testing.T) {
	deadlock := errors.New("deadlock detected")
	d := *testDialect
	d.Transient = func(err error) bool { return errors.Is(err, deadlock) }
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "l.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), db, &d, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tries := 0
	err = s.write(t.Context(), recordLock(testKind.Name, "x"), func(ctx context.Context, w *writer) error {
		tries++
		if _, err := w.exec(ctx, s.q.create, testKind.Name, "x", false, "o", "", "", `{}`); err != nil {
			return err
		}
		if tries < 3 {
			return deadlock
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write after two deadlocks: %v", err)
	}
	if tries != 3 {
		t.Errorf("ran %d times, want 3", tries)
	}
	if _, err := s.Get(t.Context(), testKind, "x"); err != nil {
		t.Errorf("the write did not land: %v", err)
	}

	// One that never stops failing gives up with ErrRetry.
	err = s.write(t.Context(), recordLock(testKind.Name, "y"), func(ctx context.Context, w *writer) error { return deadlock })
	if !errors.Is(err, ledger.ErrRetry) {
		t.Errorf("a write that always deadlocks: %v, want ErrRetry", err)
	}
}

// holdCommitter keeps s's committer busy in a transaction until the
// returned channel is closed, so the writes sent meanwhile queue up.
func holdCommitter(s *Store) chan struct{} {
	hold := make(chan struct{})
	holding := make(chan struct{})
	go s.write(context.Background(), recordLock(testKind.Name, "hold"), func(ctx context.Context, w *writer) error {
		close(holding)
		<-hold
		return nil
	})
	<-holding
	return hold
}
