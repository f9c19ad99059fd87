// Package postgres is the ledger backend for several controllers sharing
// one PostgreSQL database, through a pgx connection pool.
//
// Correctness across processes rests on one rule: every decision is made
// inside a single statement — an UPDATE guarded by the version, an
// INSERT … ON CONFLICT DO NOTHING for creates, a conditional upsert for
// events and leases — so PostgreSQL's row locks, not the caller's reads,
// decide each race. It must never read a row, decide in Go, and write it
// back outside such a statement, and never overwrite a record without
// checking its version.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Ledger is a ledger.Ledger stored in PostgreSQL.
type Ledger struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ ledger.Ledger = (*Ledger)(nil)

// Open connects to the database at dsn (a postgres:// URL or a key=value
// string, with pgxpool's pool_* parameters) and brings the schema up to
// date. A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Ledger, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password; the DSN itself is not
		// repeated here for the same reason.
		return nil, fmt.Errorf("opening postgres ledger: %w", err)
	}
	where := cfg.ConnConfig.Host + ":" + strconv.Itoa(int(cfg.ConnConfig.Port)) + "/" + cfg.ConnConfig.Database
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgres ledger %s: %w", where, err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening postgres ledger %s: %w", where, err)
	}
	logger.Debug("postgres ledger open", "database", where)
	return &Ledger{pool: pool, logger: logger}, nil
}

// Close implements ledger.Ledger. It waits for borrowed connections to be
// returned.
func (l *Ledger) Close() error {
	l.pool.Close()
	return nil
}

// CreateMigration implements ledger.Ledger.
func (l *Ledger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	body, cols, err := migrationRow(m, 1)
	if err != nil {
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	tag, err := l.pool.Exec(ctx, `
		INSERT INTO handover_migrations (id, database_id, instance_id, state, terminal, version, created_at, body)
		VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
		ON CONFLICT (id) DO NOTHING`,
		m.ID, m.Database, m.Instance, cols.state, cols.terminal, cols.createdAt, body)
	if err := changedOne(tag, err); err != nil {
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
	row := l.pool.QueryRow(ctx, `SELECT version, body FROM handover_migrations WHERE id = $1`, id)
	m, err := scanMigration(row)
	if err != nil {
		return nil, fmt.Errorf("getting migration %s: %w", id, err)
	}
	return m, nil
}

// SaveMigration implements ledger.Ledger. Under READ COMMITTED a
// concurrent update of the same row makes this UPDATE wait, then re-check
// the version against the committed row, so exactly one of two racing
// writers at the same version wins.
func (l *Ledger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	next := m.Version + 1
	body, cols, err := migrationRow(m, next)
	if err != nil {
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	tag, err := l.pool.Exec(ctx, `
		UPDATE handover_migrations
		SET database_id = $1, instance_id = $2, state = $3, terminal = $4, version = $5, created_at = $6, body = $7
		WHERE id = $8 AND version = $9`,
		m.Database, m.Instance, cols.state, cols.terminal, next, cols.createdAt, body, m.ID, m.Version)
	if err := changedOne(tag, err); err != nil {
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
		where = append(where, "NOT terminal")
	}
	if q.Database != "" {
		args = append(args, q.Database)
		where = append(where, "database_id = $"+strconv.Itoa(len(args)))
	}
	if q.Instance != "" {
		args = append(args, q.Instance)
		where = append(where, "instance_id = $"+strconv.Itoa(len(args)))
	}
	query := `SELECT version, body FROM handover_migrations`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at, id"
	rows, err := l.pool.Query(ctx, query, args...)
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
	row := l.pool.QueryRow(ctx, `SELECT version, body FROM handover_databases WHERE id = $1`, id)
	d, err := scanDatabase(row)
	if err != nil {
		return nil, fmt.Errorf("getting database %s: %w", id, err)
	}
	return d, nil
}

// SaveDatabase implements ledger.Ledger.
func (l *Ledger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	next := d.Version + 1
	body, updated, err := databaseRow(d, next)
	if err != nil {
		return fmt.Errorf("putting database %s: %w", d.ID, err)
	}
	if d.Version == 0 {
		tag, err := l.pool.Exec(ctx, `
			INSERT INTO handover_databases (id, version, updated_at, body) VALUES ($1, 1, $2, $3)
			ON CONFLICT (id) DO NOTHING`, d.ID, updated, body)
		if err := changedOne(tag, err); err != nil {
			if errors.Is(err, errNoRow) {
				err = ledger.ErrConflict
			}
			return fmt.Errorf("creating database %s: %w", d.ID, err)
		}
	} else {
		tag, err := l.pool.Exec(ctx, `
			UPDATE handover_databases SET version = $1, updated_at = $2, body = $3
			WHERE id = $4 AND version = $5`, next, updated, body, d.ID, d.Version)
		if err := changedOne(tag, err); err != nil {
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
	rows, err := l.pool.Query(ctx, `SELECT version, body FROM handover_databases ORDER BY id`)
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

// whyNotUpdated tells a conditional update that matched no row apart.
// Records are never deleted, so if the id is there now it was there when the
// update ran, and the version was wrong.
func (l *Ledger) whyNotUpdated(ctx context.Context, table, id string, version int64) error {
	var stored int64
	err := l.pool.QueryRow(ctx, `SELECT version FROM `+table+` WHERE id = $1`, id).Scan(&stored)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ledger.ErrNotFound
	case err != nil:
		return fmt.Errorf("checking why the update failed: %w", err)
	}
	return fmt.Errorf("at version %d (stored %d): %w", version, stored, ledger.ErrConflict)
}

// errNoRow marks a conditional write that matched nothing; callers turn it
// into the sentinel that fits.
var errNoRow = errors.New("no row changed")

func changedOne(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errNoRow
	}
	return nil
}
