package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// op is one write waiting for a transaction. run makes the write with w
// inside the open transaction; it returns a ledger sentinel (ErrExists,
// ErrConflict, …) as the write's outcome, and any other error when the
// database failed, which fails the transaction. run may be called more than
// once (the batch is retried one write at a time), so it must set its
// results afresh each time.
type op struct {
	ctx context.Context
	// lock names the row the write locks. A batch runs its writes in lock
	// order, so two stores committing into one database (two controllers
	// on PostgreSQL) take their row locks in the same order and cannot
	// deadlock each other.
	lock string
	run  func(ctx context.Context, w *writer) error
	done chan error
}

// Lock names, by table. pruneLock sorts after every row name: a prune
// touches many event rows, so it goes last.
func recordLock(kind, id string) string { return "r\x00" + kind + "\x00" + id }
func eventLock(id string) string        { return "e\x00" + id }
func leaseLock(name string) string      { return "l\x00" + name }

const pruneLock = "\xff"

// write queues run, which locks the row lock, for the next transaction and
// waits until that transaction has committed or failed.
func (s *Store) write(ctx context.Context, lock string, run func(ctx context.Context, w *writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{ctx: ctx, lock: lock, run: run, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%s ledger %s is closed", s.d.Name, s.where)
	}
	s.writes <- o
	s.mu.RUnlock()
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		// The write may still commit: the caller must re-read, as after
		// any error whose outcome is unknown.
		return fmt.Errorf("waiting for the ledger commit (it may still land): %w", ctx.Err())
	}
}

// commitLoop is the committer: it takes every write queued while the last
// transaction was committing into the next one.
func (s *Store) commitLoop() {
	defer close(s.done)
	for {
		first, ok := <-s.writes
		if !ok {
			return
		}
		batch := []*op{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.writes:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit runs batch in one transaction, falling back to one transaction
// per write if that fails.
func (s *Store) commit(batch []*op) {
	live := batch[:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- err // never started: nothing was written
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	// Stable: two writes to one row keep the order they arrived in.
	slices.SortStableFunc(live, func(a, b *op) int { return strings.Compare(a.lock, b.lock) })
	results, err := s.transact(live)
	if err == nil {
		s.commits.Add(1)
		s.committed.Add(int64(len(live)))
		for i, o := range live {
			o.done <- results[i]
		}
		return
	}
	if len(live) > 1 {
		s.log.Debug("group commit failed; retrying its writes one by one", "writes", len(live), "err", err)
		for _, o := range live {
			results, err := s.transact([]*op{o})
			if err != nil {
				o.done <- err
				continue
			}
			s.commits.Add(1)
			s.committed.Add(1)
			o.done <- results[0]
		}
		return
	}
	live[0].done <- err
}

// outcome reports whether err is a write's own result rather than a
// failure of the database.
func outcome(err error) bool {
	return err == nil || errors.Is(err, ledger.ErrExists) || errors.Is(err, ledger.ErrNotFound) ||
		errors.Is(err, ledger.ErrConflict) || errors.Is(err, ledger.ErrLeaseHeld)
}

// transientTries bounds how often a transaction that lost a deadlock or a
// busy lock is run again before its writes are failed with ErrRetry.
const transientTries = 5

// transact runs ops in one transaction and commits it, running it again
// when the database reports a passing fault (Dialect.Transient): such a
// transaction was rolled back whole, so nothing of it is stored.
func (s *Store) transact(ops []*op) ([]error, error) {
	for try := 1; ; try++ {
		results, err := s.transactOnce(ops)
		if err == nil || try == transientTries || !errors.Is(err, ledger.ErrRetry) || s.d.Transient == nil || !s.d.Transient(err) {
			return results, err
		}
		s.log.Debug("ledger transaction hit a passing fault; running it again", "writes", len(ops), "attempt", try, "err", err)
		time.Sleep(time.Duration(try) * time.Millisecond)
	}
}

// transactOnce runs ops in one transaction and commits it. Statements run
// on a context of their own: one caller giving up must not abort the writes
// of the others.
func (s *Store) transactOnce(ops []*op) ([]error, error) {
	ctx := context.Background()
	if err := s.w.begin(ctx); err != nil {
		return nil, s.failed("beginning a transaction", err)
	}
	results := make([]error, len(ops))
	for i, o := range ops {
		err := o.run(ctx, &s.w)
		if !outcome(err) {
			s.w.rollback()
			return nil, s.failed("writing", err)
		}
		results[i] = err
	}
	if err := s.w.commit(ctx); err != nil {
		s.w.rollback()
		// Not ErrRetry: a commit that failed on the way back may have
		// landed.
		return nil, fmt.Errorf("committing to the %s ledger %s (the write may have landed; re-read): %w", s.d.Name, s.where, err)
	}
	return results, nil
}

// failed wraps an error from before the commit: the transaction was rolled
// back, so nothing of it is stored and the write may be repeated.
func (s *Store) failed(what string, err error) error {
	s.w.reset()
	return fmt.Errorf("%s in the %s ledger %s: %w (%w)", what, s.d.Name, s.where, ledger.ErrRetry, err)
}

// writer is the committer's connection and its prepared statements.
type writer struct {
	db    *sql.DB
	d     *Dialect
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func (w *writer) begin(ctx context.Context) error {
	if w.conn == nil {
		c, err := w.db.Conn(ctx)
		if err != nil {
			return err
		}
		w.conn, w.stmts = c, make(map[string]*sql.Stmt)
	}
	_, err := w.conn.ExecContext(ctx, w.d.Begin)
	return err
}

func (w *writer) commit(ctx context.Context) error {
	_, err := w.conn.ExecContext(ctx, "COMMIT")
	return err
}

// rollback ends a failed transaction; if even that fails, the connection
// is dropped so the next transaction starts clean.
func (w *writer) rollback() {
	if w.conn == nil {
		return
	}
	if _, err := w.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		w.reset()
	}
}

// reset drops the connection and its statements.
func (w *writer) reset() {
	for _, st := range w.stmts {
		st.Close()
	}
	if w.conn != nil {
		w.conn.Close()
	}
	w.conn, w.stmts = nil, nil
}

// stmt returns q prepared on the writer's connection.
func (w *writer) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = st
	return st, nil
}

func (w *writer) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (w *writer) queryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// Stats counts the store's committed transactions and the writes they
// carried since Open: their ratio is the group commit's batch size.
type Stats struct {
	Commits, Writes int64
}

// Stats returns the counts so far.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Writes: s.committed.Load()}
}
