package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
)

// CreateUpdate implements ledger.Ledger.
func (l *Ledger) CreateUpdate(ctx context.Context, u *ledger.Update) error {
	body, created, err := updateRow(u, 1)
	if err != nil {
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	res, err := l.db.ExecContext(ctx, `
		INSERT INTO handover_updates (id, group_name, terminal, version, created_at, body)
		VALUES (?, ?, ?, 1, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		u.ID, u.Group, u.State.Terminal(), created, body)
	if err := changedOne(res, err); err != nil {
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
	row := l.db.QueryRowContext(ctx, `SELECT version, body FROM handover_updates WHERE id = ?`, id)
	u, err := scanUpdate(row)
	if err != nil {
		return nil, fmt.Errorf("getting update %s: %w", id, err)
	}
	return u, nil
}

// SaveUpdate implements ledger.Ledger.
func (l *Ledger) SaveUpdate(ctx context.Context, u *ledger.Update) error {
	next := u.Version + 1
	body, created, err := updateRow(u, next)
	if err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	res, err := l.db.ExecContext(ctx, `
		UPDATE handover_updates
		SET group_name = ?, terminal = ?, version = ?, created_at = ?, body = ?
		WHERE id = ? AND version = ?`,
		u.Group, u.State.Terminal(), next, created, body, u.ID, u.Version)
	if err := changedOne(res, err); err != nil {
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
		where = append(where, "terminal = 0")
	}
	if q.Group != "" {
		where = append(where, "group_name = ?")
		args = append(args, q.Group)
	}
	query := `SELECT version, body FROM handover_updates`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at, id"
	rows, err := l.db.QueryContext(ctx, query, args...)
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

func scanUpdate(row scanner) (*ledger.Update, error) {
	var version int64
	var body []byte
	if err := row.Scan(&version, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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
