// Package sqlstore is the ledger.Store that SQLite and PostgreSQL share:
// one set of statements over database/sql, with a small Dialect for what
// differs (placeholders, how a write transaction begins, the partial-index
// predicate, the schema history, which errors are passing faults).
//
// # Rules
//
// Every decision is made inside a single statement — an UPDATE guarded by
// the version, an INSERT … ON CONFLICT DO NOTHING for creates, a
// conditional upsert for events and leases — so the database's locks, not a
// read in Go, decide each race, whether the other writer is in this process
// or another one. It must never read a row, decide in Go and write it back,
// and never overwrite a record without checking its version.
//
// # Group commit
//
// All writes of one Store go through one writer connection. Writes that
// arrive while a transaction commits wait, and then go into the next
// transaction together: one fsync (SQLite with synchronous=FULL, or
// PostgreSQL's WAL flush) for many writes. A write returns only once the
// transaction holding it has committed. A batch whose transaction fails is
// rolled back whole and its writes are tried again one per transaction, so
// one write's failure is never another's, and none is ever half-applied; a
// write that still fails before its commit was sent matches ledger.ErrRetry.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Dialect is what differs between the SQL databases the store runs on.
type Dialect struct {
	Name string
	// Numbered placeholders ($1, $2, …) instead of ?.
	Numbered bool
	// Begin starts a write transaction. SQLite's BEGIN IMMEDIATE takes the
	// write lock at once, so a batch never fails half-way upgrading a
	// read lock.
	Begin string
	// NotDone is the predicate of the unfinished-records index, written
	// the same way in queries so the planner can use it.
	NotDone string
	// Schema[i] upgrades schema version i to i+1. Append-only: never edit
	// a shipped entry.
	Schema []string
	// LockSchema, if set, runs first in the upgrade transaction so that
	// processes opening one database together upgrade it once.
	LockSchema string
	// Transient reports an error that is a passing fault: the database
	// was busy, or chose this transaction as a deadlock victim.
	Transient func(error) bool
}

// maxBatch caps the writes of one transaction, so one commit's latency
// stays bounded under a burst.
const maxBatch = 256

// Store is a ledger.Store in a SQL database.
type Store struct {
	db    *sql.DB
	d     *Dialect
	where string
	log   *slog.Logger
	q     queries

	mu     sync.RWMutex // guards closed against sends on writes
	closed bool
	writes chan *op
	done   chan struct{}
	w      writer   // the committer's; only its goroutine touches it
	reads  sync.Map // query → *sql.Stmt

	commits, committed atomic.Int64
}

var _ ledger.Store = (*Store)(nil)

// Open upgrades the schema of db and starts the committer. where names the
// database in errors and logs (never with a password). The Store owns db:
// Close closes it.
func Open(ctx context.Context, db *sql.DB, d *Dialect, where string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, d: d, where: where, log: logger, writes: make(chan *op, maxBatch), done: make(chan struct{})}
	s.q = newQueries(s.rebind)
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("opening %s ledger %s: %w", d.Name, where, err)
	}
	s.w = writer{db: db, d: d}
	go s.commitLoop()
	return s, nil
}

// Close waits for the writes in flight, then closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.writes)
	s.mu.Unlock()
	<-s.done
	s.w.reset()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing %s ledger %s: %w", s.d.Name, s.where, err)
	}
	return nil
}

// rebind turns ? placeholders into the dialect's. The statements here have
// no ? inside literals.
func (s *Store) rebind(q string) string {
	if !s.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// timeLayout is fixed width with nanoseconds in UTC, so the text sorts
// bytewise in time order and round-trips exactly.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// timeKey formats t for a column that is compared or ordered. Years outside
// 1..9999 would break the fixed width, so they are refused.
func timeKey(t time.Time) (string, error) {
	u := t.UTC()
	if y := u.Year(); y < 1 || y > 9999 {
		return "", fmt.Errorf("time %s is outside the years 1 to 9999", t)
	}
	return u.Format(timeLayout), nil
}

func parseTimeKey(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// SchemaVersion implements ledger.Store.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM handover_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return int(v.Int64), nil
}

// migrate brings the schema up to date in one transaction.
func (s *Store) migrate(ctx context.Context) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, s.d.Begin); err != nil {
		return fmt.Errorf("locking the database: %w", err)
	}
	defer func() {
		if err != nil {
			// A fresh context: a cancelled ctx must not leave the
			// connection inside a transaction.
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if s.d.LockSchema != "" {
		if _, err := conn.ExecContext(ctx, s.d.LockSchema); err != nil {
			return fmt.Errorf("locking the schema: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS handover_schema (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var have sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version) FROM handover_schema`).Scan(&have); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	v := int(have.Int64)
	if v > len(s.d.Schema) {
		return fmt.Errorf("the ledger has schema version %d but this handover knows only up to %d: upgrade handover", v, len(s.d.Schema))
	}
	for ; v < len(s.d.Schema); v++ {
		if _, err := conn.ExecContext(ctx, s.d.Schema[v]); err != nil {
			return fmt.Errorf("upgrading the schema to version %d: %w", v+1, err)
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM handover_schema`); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, s.rebind(`INSERT INTO handover_schema (version) VALUES (?)`), v+1); err != nil {
			return err
		}
		s.log.Info("ledger schema upgraded", "schema-version", v+1, "backend", s.d.Name)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("committing the schema: %w", err)
	}
	return nil
}
