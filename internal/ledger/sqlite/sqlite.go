// Package sqlite is the embedded ledger backend, the default for a single
// controller: one file, the pure-Go modernc.org/sqlite driver (no cgo), WAL
// mode.
//
// Every write is a single conditional statement (an UPDATE guarded by the
// version, or an upsert guarded by its WHERE), so no read-modify-write can
// interleave with another writer, whether that writer is in this process or
// another one sharing the file. It must never overwrite a record without
// checking its version, and never hold a transaction open across a caller's
// work.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeout is how long a statement waits for another process's write
// lock before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Ledger is a ledger.Ledger stored in an SQLite file.
type Ledger struct {
	db     *sql.DB
	path   string
	logger *slog.Logger
}

var _ ledger.Ledger = (*Ledger)(nil)

// Open opens (creating if absent) the ledger file at path and brings its
// schema up to date. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Ledger, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("opening sqlite ledger: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", abs, err)
	}
	// synchronous(FULL): in WAL mode NORMAL may lose the last commits on a
	// power cut, and handover acknowledges events and lifecycle actions
	// right after a commit, so a lost commit would be a lost step.
	params := url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(FULL)",
	}}
	// A file: URI with an escaped path, so a '?' or '#' in the path cannot
	// be read as the start of the parameters.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: params.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", abs, err)
	}
	// SQLite has one writer at a time anyway; one connection means this
	// process never waits on its own locks (busy_timeout only matters for
	// other processes) and a cancelled statement cannot leave a second
	// connection inside a transaction.
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db, logger); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", abs, err)
	}
	logger.Debug("sqlite ledger open", "path", abs)
	return &Ledger{db: db, path: abs, logger: logger}, nil
}

// Close implements ledger.Ledger.
func (l *Ledger) Close() error {
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("closing sqlite ledger %s: %w", l.path, err)
	}
	return nil
}

// CreateMigration implements ledger.Ledger.
func (l *Ledger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	body, cols, err := migrationRow(m, 1)
	if err != nil {
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	res, err := l.db.ExecContext(ctx, `
		INSERT INTO handover_migrations (id, database_id, instance_id, state, terminal, version, created_at, body)
		VALUES (?, ?, ?, ?, ?, 1, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, m.Database, m.Instance, cols.state, cols.terminal, cols.createdAt, body)
	if err := changedOne(res, err); err != nil {
		if errors.Is(err, errNoRow) {
			err = ledger.ErrExists
		}
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	m.Version = 1
	return nil
}

// GetMigration implements ledger.Ledger.
func (l *Ledger) GetMigration(ctx context.Context, id string) (*ledger.Migration, error) {
	row := l.db.QueryRowContext(ctx, `SELECT version, body FROM handover_migrations WHERE id = ?`, id)
	m, err := scanMigration(row)
	if err != nil {
		return nil, fmt.Errorf("getting migration %s: %w", id, err)
	}
	return m, nil
}

// SaveMigration implements ledger.Ledger.
func (l *Ledger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	next := m.Version + 1
	body, cols, err := migrationRow(m, next)
	if err != nil {
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	res, err := l.db.ExecContext(ctx, `
		UPDATE handover_migrations
		SET database_id = ?, instance_id = ?, state = ?, terminal = ?, version = ?, created_at = ?, body = ?
		WHERE id = ? AND version = ?`,
		m.Database, m.Instance, cols.state, cols.terminal, next, cols.createdAt, body, m.ID, m.Version)
	if err := changedOne(res, err); err != nil {
		if errors.Is(err, errNoRow) {
			err = l.whyNotUpdated(ctx, "handover_migrations", m.ID, m.Version)
		}
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	m.Version = next
	return nil
}

// ListMigrations implements ledger.Ledger.
func (l *Ledger) ListMigrations(ctx context.Context, q ledger.MigrationQuery) ([]*ledger.Migration, error) {
	var where []string
	var args []any
	if q.Unfinished {
		where = append(where, "terminal = 0")
	}
	if q.Database != "" {
		where = append(where, "database_id = ?")
		args = append(args, q.Database)
	}
	if q.Instance != "" {
		where = append(where, "instance_id = ?")
		args = append(args, q.Instance)
	}
	query := `SELECT version, body FROM handover_migrations`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at, id"
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	defer rows.Close()
	var out []*ledger.Migration
	for rows.Next() {
		m, err := scanMigration(rows)
		if err != nil {
			return nil, fmt.Errorf("listing migrations: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	return out, nil
}

// GetDatabase implements ledger.Ledger.
func (l *Ledger) GetDatabase(ctx context.Context, id string) (*ledger.Database, error) {
	row := l.db.QueryRowContext(ctx, `SELECT version, body FROM handover_databases WHERE id = ?`, id)
	d, err := scanDatabase(row)
	if err != nil {
		return nil, fmt.Errorf("getting database %s: %w", id, err)
	}
	return d, nil
}

// SaveDatabase implements ledger.Ledger.
func (l *Ledger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	next := d.Version + 1
	c := *d
	c.Version = next
	body, err := json.Marshal(&c)
	if err != nil {
		return fmt.Errorf("putting database %s: encoding: %w", d.ID, err)
	}
	updated, err := timeKey(d.UpdatedAt)
	if err != nil {
		return fmt.Errorf("putting database %s: %w", d.ID, err)
	}
	if d.Version == 0 {
		res, err := l.db.ExecContext(ctx, `
			INSERT INTO handover_databases (id, version, updated_at, body) VALUES (?, 1, ?, ?)
			ON CONFLICT (id) DO NOTHING`, d.ID, updated, body)
		if err := changedOne(res, err); err != nil {
			if errors.Is(err, errNoRow) {
				err = ledger.ErrConflict
			}
			return fmt.Errorf("creating database %s: %w", d.ID, err)
		}
	} else {
		res, err := l.db.ExecContext(ctx, `
			UPDATE handover_databases SET version = ?, updated_at = ?, body = ?
			WHERE id = ? AND version = ?`, next, updated, body, d.ID, d.Version)
		if err := changedOne(res, err); err != nil {
			if errors.Is(err, errNoRow) {
				err = l.whyNotUpdated(ctx, "handover_databases", d.ID, d.Version)
			}
			return fmt.Errorf("updating database %s: %w", d.ID, err)
		}
	}
	d.Version = next
	return nil
}

// ListDatabases implements ledger.Ledger.
func (l *Ledger) ListDatabases(ctx context.Context) ([]*ledger.Database, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT version, body FROM handover_databases ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	defer rows.Close()
	var out []*ledger.Database
	for rows.Next() {
		d, err := scanDatabase(rows)
		if err != nil {
			return nil, fmt.Errorf("listing databases: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	return out, nil
}

// whyNotUpdated tells a conditional update that matched no row apart:
// records are never deleted, so if the id is there now, the version was
// wrong.
func (l *Ledger) whyNotUpdated(ctx context.Context, table, id string, version int64) error {
	var stored int64
	err := l.db.QueryRowContext(ctx, `SELECT version FROM `+table+` WHERE id = ?`, id).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ledger.ErrNotFound
	case err != nil:
		return fmt.Errorf("checking why the update failed: %w", err)
	}
	return fmt.Errorf("at version %d (stored %d): %w", version, stored, ledger.ErrConflict)
}
