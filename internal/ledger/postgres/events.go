package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// EventSeen implements ledger.Ledger.
func (l *Ledger) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	var seen bool
	err = l.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM handover_events WHERE id = $1 AND expires > $2)`, id, nowKey).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	return seen, nil
}

// MarkEvent implements ledger.Ledger. One upsert: it inserts a new id, or
// replaces a record that had expired at now, and changes nothing for a
// duplicate. ON CONFLICT serialises racing marks of one id on its row lock,
// so exactly one of them sees a changed row.
func (l *Ledger) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("marking event %s: now: %w", id, err)
	}
	expKey, err := timeKey(expires)
	if err != nil {
		return false, fmt.Errorf("marking event %s: expires: %w", id, err)
	}
	tag, err := l.pool.Exec(ctx, `
		INSERT INTO handover_events (id, expires) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET expires = EXCLUDED.expires
		WHERE handover_events.expires <= $3`, id, expKey, nowKey)
	switch err := changedOne(tag, err); {
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
	tag, err := l.pool.Exec(ctx, `DELETE FROM handover_events WHERE expires <= $1`, nowKey)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
	row := l.pool.QueryRow(ctx, `
		INSERT INTO handover_leases (name, holder, token, expires) VALUES ($1, $2, 1, $3)
		ON CONFLICT (name) DO UPDATE SET
			token = CASE WHEN handover_leases.holder = EXCLUDED.holder
				THEN handover_leases.token ELSE handover_leases.token + 1 END,
			holder = EXCLUDED.holder,
			expires = EXCLUDED.expires
		WHERE handover_leases.holder = EXCLUDED.holder
			OR handover_leases.holder = ''
			OR handover_leases.expires <= $4
		RETURNING holder, token, expires`, name, holder, expKey, nowKey)
	lease, err := scanLease(name, row)
	if err == nil {
		return lease, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	// Only to report who holds it: the decision above was atomic, and the
	// holder may have changed since.
	cur, err := scanLease(name, l.pool.QueryRow(ctx,
		`SELECT holder, token, expires FROM handover_leases WHERE name = $1`, name))
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
	_, err := l.pool.Exec(ctx, `
		UPDATE handover_leases SET holder = '', expires = $1
		WHERE name = $2 AND holder = $3 AND token = $4 AND holder <> ''`,
		zero, lease.Name, lease.Holder, lease.Token)
	if err != nil {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	return nil
}

func scanLease(name string, row pgx.Row) (ledger.Lease, error) {
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
