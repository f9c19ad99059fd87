package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// CreateUpdate implements ledger.Ledger.
func (l *Ledger) CreateUpdate(ctx context.Context, u *ledger.Update) error {
	body, created, err := updateRow(u, 1)
	if err != nil {
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	tag, err := l.pool.Exec(ctx, `
		INSERT INTO handover_updates (id, group_name, terminal, version, created_at, body)
		VALUES ($1, $2, $3, 1, $4, $5)
		ON CONFLICT (id) DO NOTHING`,
		u.ID, u.Group, u.State.Terminal(), created, body)
	if err := changedOne(tag, err); err != nil {
		if errors.Is(err, errNoRow) {
			err = ledger.ErrExists
		}
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	u.Version = 1
	return nil
}

// GetUpdate implements ledger.Ledger.
func (l *Ledger) GetUpdate(ctx context.Context, id string) (*ledger.Update, error) {
	row := l.pool.QueryRow(ctx, `SELECT version, body FROM handover_updates WHERE id = $1`, id)
	u, err := scanUpdate(row)
	if err != nil {
		return nil, fmt.Errorf("getting update %s: %w", id, err)
	}
	return u, nil
}

// SaveUpdate implements ledger.Ledger. As with SaveMigration, READ
// COMMITTED makes a racing UPDATE of the same row wait and re-check the
// version, so exactly one of several writers at one version wins.
func (l *Ledger) SaveUpdate(ctx context.Context, u *ledger.Update) error {
	next := u.Version + 1
	body, created, err := updateRow(u, next)
	if err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	tag, err := l.pool.Exec(ctx, `
		UPDATE handover_updates
		SET group_name = $1, terminal = $2, version = $3, created_at = $4, body = $5
		WHERE id = $6 AND version = $7`,
		u.Group, u.State.Terminal(), next, created, body, u.ID, u.Version)
	if err := changedOne(tag, err); err != nil {
		if errors.Is(err, errNoRow) {
			err = l.whyNotUpdated(ctx, "handover_updates", u.ID, u.Version)
		}
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	u.Version = next
	return nil
}

// ListUpdates implements ledger.Ledger.
func (l *Ledger) ListUpdates(ctx context.Context, q ledger.UpdateQuery) ([]*ledger.Update, error) {
	var where []string
	var args []any
	if q.Unfinished {
		where = append(where, "NOT terminal")
	}
	if q.Group != "" {
		args = append(args, q.Group)
		where = append(where, "group_name = $"+strconv.Itoa(len(args)))
	}
	query := `SELECT version, body FROM handover_updates`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at, id"
	rows, err := l.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing updates: %w", err)
	}
	defer rows.Close()
	var out []*ledger.Update
	for rows.Next() {
		u, err := scanUpdate(rows)
		if err != nil {
			return nil, fmt.Errorf("listing updates: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing updates: %w", err)
	}
	return out, nil
}

// updateRow encodes u as stored at version, with the body carrying the new
// version so that it always agrees with the column, and u's creation time
// as an ordering key.
func updateRow(u *ledger.Update, version int64) (body []byte, created string, err error) {
	created, err = timeKey(u.CreatedAt)
	if err != nil {
		return nil, "", fmt.Errorf("created at: %w", err)
	}
	c := *u
	c.Version = version
	body, err = json.Marshal(&c)
	if err != nil {
		return nil, "", fmt.Errorf("encoding: %w", err)
	}
	return body, created, nil
}

func scanUpdate(row pgx.Row) (*ledger.Update, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ledger.ErrNotFound
		}
		return nil, err
	}
	u := new(ledger.Update)
	if err := json.Unmarshal(body, u); err != nil {
		return nil, fmt.Errorf("decoding stored update: %w", err)
	}
	u.Version = version
	return u, nil
}
