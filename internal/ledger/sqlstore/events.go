package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// EventSeen implements ledger.Store.
func (s *Store) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	st, err := s.prepared(ctx, s.q.seen)
	if err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	var n int
	if err := st.QueryRowContext(ctx, id, nowKey).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	return n > 0, nil
}

// MarkEvent implements ledger.Store.
func (s *Store) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return false, fmt.Errorf("marking event %s: now: %w", id, err)
	}
	expKey, err := timeKey(expires)
	if err != nil {
		return false, fmt.Errorf("marking event %s: expires: %w", id, err)
	}
	var fresh bool
	err = s.write(ctx, eventLock(id), func(ctx context.Context, w *writer) error {
		res, err := w.exec(ctx, s.q.mark, id, expKey, nowKey)
		err = changedOne(res, err)
		fresh = err == nil
		if errors.Is(err, errNoRow) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("marking event %s: %w", id, err)
	}
	return fresh, nil
}

// PruneEvents implements ledger.Store.
func (s *Store) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	var n int64
	err = s.write(ctx, pruneLock, func(ctx context.Context, w *writer) error {
		res, err := w.exec(ctx, s.q.prune, nowKey)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return int(n), nil
}

// AcquireLease implements ledger.Store with one conditional upsert.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
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
	var lease ledger.Lease
	err = s.write(ctx, leaseLock(name), func(ctx context.Context, w *writer) error {
		row, err := w.queryRow(ctx, s.q.acquire, name, holder, expKey, nowKey)
		if err != nil {
			return err
		}
		lease, err = scanLease(name, row)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Only to report who holds it, read in the same transaction.
		row, err = w.queryRow(ctx, s.q.holder, name)
		if err != nil {
			return err
		}
		if lease, err = scanLease(name, row); err != nil {
			return fmt.Errorf("reading the holder: %w", err)
		}
		return ledger.ErrLeaseHeld
	})
	if errors.Is(err, ledger.ErrLeaseHeld) {
		return lease, fmt.Errorf("acquiring lease %s for %s: held by %s until %s: %w",
			name, holder, lease.Holder, lease.Expires.Format(time.RFC3339Nano), ledger.ErrLeaseHeld)
	}
	if err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	return lease, nil
}

// ReleaseLease implements ledger.Store.
func (s *Store) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	zero, _ := timeKey(time.Time{})
	err := s.write(ctx, leaseLock(lease.Name), func(ctx context.Context, w *writer) error {
		_, err := w.exec(ctx, s.q.release, zero, lease.Name, lease.Holder, lease.Token)
		return err
	})
	if err != nil {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	return nil
}

// ListLeases implements ledger.Store.
func (s *Store) ListLeases(ctx context.Context, now time.Time) ([]ledger.Lease, error) {
	nowKey, err := timeKey(now)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	st, err := s.prepared(ctx, s.q.leases)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	rows, err := st.QueryContext(ctx, nowKey)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	defer rows.Close()
	var out []ledger.Lease
	for rows.Next() {
		var l ledger.Lease
		var expires string
		if err := rows.Scan(&l.Name, &l.Holder, &l.Token, &expires); err != nil {
			return nil, fmt.Errorf("listing leases: %w", err)
		}
		if l.Expires, err = parseTimeKey(expires); err != nil {
			return nil, fmt.Errorf("listing leases: decoding the expiry %q of %s: %w", expires, l.Name, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	return out, nil
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
