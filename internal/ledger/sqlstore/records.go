package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/handover-dev/handover/internal/ledger"
)

// queries are the statements, rebound for the dialect once at Open.
type queries struct {
	create, get, swap, swapBody, version, listAll string
	listKey                                       [ledger.MaxKeys]string
	seen, mark, prune                             string
	acquire, holder, release, leases              string
}

func newQueries(rebind func(string) string) queries {
	q := queries{
		create: `INSERT INTO handover_records (kind, id, version, done, key1, key2, key3, body)
			VALUES (?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO NOTHING`,
		get: `SELECT version, done, key1, key2, key3, body FROM handover_records WHERE kind = ? AND id = ?`,
		swap: `UPDATE handover_records SET version = version + 1, done = ?, key1 = ?, key2 = ?, key3 = ?, body = ?
			WHERE kind = ? AND id = ? AND version = ?`,
		// swapBody leaves the indexed columns, and so their index pages,
		// alone: most saves change only the body.
		swapBody: `UPDATE handover_records SET version = version + 1, body = ? WHERE kind = ? AND id = ? AND version = ?`,
		version:  `SELECT version FROM handover_records WHERE kind = ? AND id = ?`,
		listAll:  `SELECT id, version, done, key1, key2, key3, body FROM handover_records WHERE kind = ?`,

		seen: `SELECT COUNT(*) FROM handover_events WHERE id = ? AND expires > ?`,
		// One upsert: it inserts a new id or replaces a record that had
		// expired at now, and changes nothing for a duplicate — so the row
		// count says which.
		mark: `INSERT INTO handover_events (id, expires) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET expires = excluded.expires
			WHERE handover_events.expires <= ?`,
		prune: `DELETE FROM handover_events WHERE expires <= ?`,
		// The WHERE admits a free, expired or own lease, and the CASE keeps
		// the token for a renewal and bumps it for a new holder. No row
		// back means another holder has it.
		acquire: `INSERT INTO handover_leases (name, holder, token, expires) VALUES (?, ?, 1, ?)
			ON CONFLICT (name) DO UPDATE SET
				token = CASE WHEN handover_leases.holder = excluded.holder
					THEN handover_leases.token ELSE handover_leases.token + 1 END,
				holder = excluded.holder,
				expires = excluded.expires
			WHERE handover_leases.holder = excluded.holder
				OR handover_leases.holder = ''
				OR handover_leases.expires <= ?
			RETURNING holder, token, expires`,
		holder: `SELECT holder, token, expires FROM handover_leases WHERE name = ?`,
		// The row stays with an empty holder, so the next holder's token
		// is still larger.
		release: `UPDATE handover_leases SET holder = '', expires = ?
			WHERE name = ? AND holder = ? AND token = ? AND holder <> ''`,
		leases: `SELECT name, holder, token, expires FROM handover_leases
			WHERE holder <> '' AND expires > ? ORDER BY name`,
	}
	for i := range q.listKey {
		q.listKey[i] = q.listAll + " AND key" + strconv.Itoa(i+1) + " = ?"
	}
	for _, p := range []*string{&q.create, &q.get, &q.swap, &q.swapBody, &q.version, &q.listAll, &q.seen, &q.mark, &q.prune, &q.acquire, &q.holder, &q.release, &q.leases} {
		*p = rebind(*p)
	}
	for i := range q.listKey {
		q.listKey[i] = rebind(q.listKey[i])
	}
	return q
}

// keyArgs spreads r's key values over the key columns.
func keyArgs(r ledger.Record) [ledger.MaxKeys]string {
	var k [ledger.MaxKeys]string
	copy(k[:], r.Keys)
	return k
}

// Create implements ledger.Store.
func (s *Store) Create(ctx context.Context, r ledger.Record) error {
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	k := keyArgs(r)
	return s.write(ctx, recordLock(r.Kind.Name, r.ID), func(ctx context.Context, w *writer) error {
		res, err := w.exec(ctx, s.q.create, r.Kind.Name, r.ID, r.Done, k[0], k[1], k[2], string(r.Body))
		if err := changedOne(res, err); err != nil {
			if errors.Is(err, errNoRow) {
				return ledger.ErrExists
			}
			return err
		}
		return nil
	})
}

// Get implements ledger.Store.
func (s *Store) Get(ctx context.Context, kind *ledger.Kind, id string) (ledger.Record, error) {
	r := ledger.Record{Kind: kind, ID: id}
	st, err := s.prepared(ctx, s.q.get)
	if err != nil {
		return ledger.Record{}, err
	}
	if err := scanRecord(st.QueryRowContext(ctx, kind.Name, id), &r, false); err != nil {
		return ledger.Record{}, err
	}
	return r, nil
}

// Swap implements ledger.Store.
func (s *Store) Swap(ctx context.Context, r ledger.Record) error {
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	k := keyArgs(r)
	return s.write(ctx, recordLock(r.Kind.Name, r.ID), func(ctx context.Context, w *writer) error {
		var res sql.Result
		var err error
		if r.SameKeys {
			res, err = w.exec(ctx, s.q.swapBody, string(r.Body), r.Kind.Name, r.ID, r.Version)
		} else {
			res, err = w.exec(ctx, s.q.swap, r.Done, k[0], k[1], k[2], string(r.Body), r.Kind.Name, r.ID, r.Version)
		}
		if err := changedOne(res, err); !errors.Is(err, errNoRow) {
			return err
		}
		// Records are never deleted: if the id is there now, the version
		// was wrong. Read in the same transaction, so it is the same row.
		row, err := w.queryRow(ctx, s.q.version, r.Kind.Name, r.ID)
		if err != nil {
			return err
		}
		var stored int64
		switch err := row.Scan(&stored); {
		case errors.Is(err, sql.ErrNoRows):
			return ledger.ErrNotFound
		case err != nil:
			return err
		}
		return &ledger.ConflictError{Kind: r.Kind.Name, ID: r.ID, Version: r.Version, Stored: stored}
	})
}

// List implements ledger.Store.
func (s *Store) List(ctx context.Context, kind *ledger.Kind, f ledger.Filter) ([]ledger.Record, error) {
	key, err := ledger.CheckFilter(kind, f)
	if err != nil {
		return nil, err
	}
	q, args := s.q.listAll, []any{kind.Name}
	if key >= 0 {
		q, args = s.q.listKey[key], append(args, f.Value)
	}
	if f.Unfinished {
		q += " AND " + s.d.NotDone
	}
	st, err := s.prepared(ctx, q+" ORDER BY id")
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Record
	for rows.Next() {
		r := ledger.Record{Kind: kind}
		if err := scanRecord(rows, &r, true); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

// scanRecord reads the columns of get (withID: of a list) into r.
func scanRecord(row scanner, r *ledger.Record, withID bool) error {
	var k [ledger.MaxKeys]string
	var body []byte
	dest := []any{&r.Version, &r.Done, &k[0], &k[1], &k[2], &body}
	if withID {
		dest = append([]any{&r.ID}, dest...)
	}
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ledger.ErrNotFound
		}
		return fmt.Errorf("reading a stored record: %w", err)
	}
	n := len(r.Kind.Keys)
	r.Keys = append([]string(nil), k[:n]...)
	r.Body = body
	return nil
}

// errNoRow marks a conditional write that matched nothing; callers turn it
// into the sentinel that fits.
var errNoRow = errors.New("no row changed")

func changedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return errNoRow
	}
	return nil
}

// prepared returns the read statement q, prepared once for the pool: a
// statement parsed on every call costs more than the read itself.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}
