package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// EventSeen implements ledger.Ledger.
func (l *Ledger) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	var one int
	err = l.db.QueryRowContext(ctx, `SELECT 1 FROM handover_events WHERE id = ? AND expires > ?`, id, nowKey).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	return true, nil
}

// MarkEvent implements ledger.Ledger. One upsert: it inserts a new id, or
// replaces a record that had expired at now, and changes nothing for a
// duplicate — so the row count says which.
func (l *Ledger) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("marking event %s: now: %w", id, err)
	}
	expKey, err := timeKey(expires)
	if err != nil {
		return false, fmt.Errorf("marking event %s: expires: %w", id, err)
	}
	res, err := l.db.ExecContext(ctx, `
		INSERT INTO handover_events (id, expires) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET expires = excluded.expires
		WHERE handover_events.expires <= ?`, id, expKey, nowKey)
	switch err := changedOne(res, err); {
	case errors.Is(err, errNoRow):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("marking event %s: %w", id, err)
	}
	return true, nil
}

// PruneEvents implements ledger.Ledger.
func (l *Ledger) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	res, err := l.db.ExecContext(ctx, `DELETE FROM handover_events WHERE expires <= ?`, nowKey)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return int(n), nil
}

// AcquireLease implements ledger.Ledger with one conditional upsert: the
// WHERE admits a free, expired or own lease, and the CASE keeps the token
// for a renewal and bumps it for a new holder. No row back means another
// holder has it.
func (l *Ledger) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	if holder == "" || ttl <= 0 {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: need a holder and a positive ttl, got holder %q and ttl %s", name, holder, ttl)
	}
	nowKey, err := timeKey(now)
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	expKey, err := timeKey(now.Add(ttl))
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	row := l.db.QueryRowContext(ctx, `
		INSERT INTO handover_leases (name, holder, token, expires) VALUES (?, ?, 1, ?)
		ON CONFLICT (name) DO UPDATE SET
			token = CASE WHEN handover_leases.holder = excluded.holder
				THEN handover_leases.token ELSE handover_leases.token + 1 END,
			holder = excluded.holder,
			expires = excluded.expires
		WHERE handover_leases.holder = excluded.holder
			OR handover_leases.holder = ''
			OR handover_leases.expires <= ?
		RETURNING holder, token, expires`, name, holder, expKey, nowKey)
	lease, err := scanLease(name, row)
	if err == nil {
		return lease, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	// Only to report who holds it: the decision above was atomic, and the
	// holder may have changed since.
	cur, err := scanLease(name, l.db.QueryRowContext(ctx,
		`SELECT holder, token, expires FROM handover_leases WHERE name = ?`, name))
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: reading the holder: %w", name, err)
	}
	return cur, fmt.Errorf("acquiring lease %s for %s: held by %s until %s: %w",
		name, holder, cur.Holder, cur.Expires.Format(time.RFC3339Nano), ledger.ErrLeaseHeld)
}

// ReleaseLease implements ledger.Ledger. The row stays with an empty holder
// so that the next holder's token is still larger.
func (l *Ledger) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	zero, _ := timeKey(time.Time{})
	_, err := l.db.ExecContext(ctx, `
		UPDATE handover_leases SET holder = '', expires = ?
		WHERE name = ? AND holder = ? AND token = ? AND holder <> ''`,
		zero, lease.Name, lease.Holder, lease.Token)
	if err != nil {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	return nil
}

func scanLease(name string, row *sql.Row) (ledger.Lease, error) {
	lease := ledger.Lease{Name: name}
	var expires string
	if err := row.Scan(&lease.Holder, &lease.Token, &expires); err != nil {
		return ledger.Lease{}, err
	}
	t, err := parseTimeKey(expires)
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("decoding lease expiry %q: %w", expires, err)
	}
	lease.Expires = t
	return lease, nil
}
