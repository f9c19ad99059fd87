// Package memory is the in-memory ledger backend, shipped beside the
// interface for unit tests and the deterministic simulator.
//
// It must stay fast and deterministic: it never starts a goroutine, never
// reads the wall clock (every time comes from the caller) and never hands out
// or keeps a pointer that a caller also holds — records are deep-copied on the
// way in and on the way out, so a test cannot pass by aliasing the store.
// It keeps nothing across restarts and must never be used where durability
// matters.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Ledger is an in-memory ledger.Ledger. The zero value is not usable; call New.
type Ledger struct {
	mu         sync.Mutex
	migrations map[string]*ledger.Migration
	databases  map[string]*ledger.Database
	events     map[string]time.Time // id → expires
	leases     map[string]ledger.Lease
	updates    map[string]*ledger.Update
}

var _ ledger.Ledger = (*Ledger)(nil)

// New returns an empty ledger.
func New() *Ledger {
	return &Ledger{
		migrations: make(map[string]*ledger.Migration),
		databases:  make(map[string]*ledger.Database),
		events:     make(map[string]time.Time),
		leases:     make(map[string]ledger.Lease),
		updates:    make(map[string]*ledger.Update),
	}
}

// CreateMigration implements ledger.Ledger.
func (l *Ledger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("creating migration %s: %w", m.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.migrations[m.ID]; ok {
		return fmt.Errorf("creating migration %s: %w", m.ID, ledger.ErrExists)
	}
	c := m.Clone()
	c.Version = 1
	l.migrations[m.ID] = c
	m.Version = 1
	return nil
}

// GetMigration implements ledger.Ledger.
func (l *Ledger) GetMigration(ctx context.Context, id string) (*ledger.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("getting migration %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.migrations[id]
	if !ok {
		return nil, fmt.Errorf("getting migration %s: %w", id, ledger.ErrNotFound)
	}
	return m.Clone(), nil
}

// SaveMigration implements ledger.Ledger.
func (l *Ledger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("updating migration %s: %w", m.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.migrations[m.ID]
	if !ok {
		return fmt.Errorf("updating migration %s: %w", m.ID, ledger.ErrNotFound)
	}
	if cur.Version != m.Version {
		return fmt.Errorf("updating migration %s at version %d (stored %d): %w",
			m.ID, m.Version, cur.Version, ledger.ErrConflict)
	}
	c := m.Clone()
	c.Version = m.Version + 1
	l.migrations[m.ID] = c
	m.Version = c.Version
	return nil
}

// ListMigrations implements ledger.Ledger.
func (l *Ledger) ListMigrations(ctx context.Context, q ledger.MigrationQuery) ([]*ledger.Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	l.mu.Lock()
	out := make([]*ledger.Migration, 0, len(l.migrations))
	for _, m := range l.migrations {
		if q.Unfinished && m.State.Terminal() {
			continue
		}
		if q.Database != "" && m.Database != q.Database {
			continue
		}
		if q.Instance != "" && m.Instance != q.Instance {
			continue
		}
		out = append(out, m.Clone())
	}
	l.mu.Unlock()
	// Map iteration order is random; sorting makes the result (and so the
	// simulator) deterministic.
	slices.SortFunc(out, func(a, b *ledger.Migration) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// GetDatabase implements ledger.Ledger.
func (l *Ledger) GetDatabase(ctx context.Context, id string) (*ledger.Database, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("getting database %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.databases[id]
	if !ok {
		return nil, fmt.Errorf("getting database %s: %w", id, ledger.ErrNotFound)
	}
	return d.Clone(), nil
}

// SaveDatabase implements ledger.Ledger.
func (l *Ledger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("putting database %s: %w", d.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.databases[d.ID]
	switch {
	case d.Version == 0 && ok:
		return fmt.Errorf("creating database %s: %w", d.ID, ledger.ErrConflict)
	case d.Version != 0 && !ok:
		return fmt.Errorf("updating database %s: %w", d.ID, ledger.ErrNotFound)
	case d.Version != 0 && cur.Version != d.Version:
		return fmt.Errorf("updating database %s at version %d (stored %d): %w",
			d.ID, d.Version, cur.Version, ledger.ErrConflict)
	}
	c := d.Clone()
	c.Version = d.Version + 1
	l.databases[d.ID] = c
	d.Version = c.Version
	return nil
}

// ListDatabases implements ledger.Ledger.
func (l *Ledger) ListDatabases(ctx context.Context) ([]*ledger.Database, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	l.mu.Lock()
	out := make([]*ledger.Database, 0, len(l.databases))
	for _, d := range l.databases {
		out = append(out, d.Clone())
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b *ledger.Database) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// EventSeen implements ledger.Ledger.
func (l *Ledger) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.events[id]
	return ok && now.Before(exp), nil
}

// MarkEvent implements ledger.Ledger. A record counts as expired once now
// reaches its expiry (expires <= now), the same rule PruneEvents uses.
func (l *Ledger) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("marking event %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp, ok := l.events[id]; ok && now.Before(exp) {
		return false, nil
	}
	l.events[id] = expires
	return true, nil
}

// PruneEvents implements ledger.Ledger.
func (l *Ledger) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, exp := range l.events {
		if !now.Before(exp) {
			delete(l.events, id)
			n++
		}
	}
	return n, nil
}

// AcquireLease implements ledger.Ledger. A lease is expired once now reaches
// Expires. A released lease keeps its token (with an empty holder) so the
// next holder still gets a larger one.
func (l *Ledger) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	// An empty holder would read as "free", and a non-positive ttl grants
	// nothing: both are caller bugs.
	if holder == "" || ttl <= 0 {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: need a holder and a positive ttl, got holder %q and ttl %s", name, holder, ttl)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.leases[name]
	next := ledger.Lease{Name: name, Holder: holder, Token: 1, Expires: now.Add(ttl)}
	if ok {
		switch {
		case cur.Holder == holder:
			next.Token = cur.Token
		case cur.Holder == "" || !now.Before(cur.Expires):
			next.Token = cur.Token + 1
		default:
			return cur, fmt.Errorf("acquiring lease %s for %s: held by %s until %s: %w",
				name, holder, cur.Holder, cur.Expires.Format(time.RFC3339Nano), ledger.ErrLeaseHeld)
		}
	}
	l.leases[name] = next
	return next, nil
}

// ReleaseLease implements ledger.Ledger.
func (l *Ledger) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.leases[lease.Name]
	if !ok || cur.Holder != lease.Holder || cur.Token != lease.Token || cur.Holder == "" {
		return nil
	}
	l.leases[lease.Name] = ledger.Lease{Name: lease.Name, Token: cur.Token}
	return nil
}

// Close implements ledger.Ledger; there is nothing to release.
func (l *Ledger) Close() error { return nil }

// CreateUpdate implements ledger.Ledger.
func (l *Ledger) CreateUpdate(ctx context.Context, u *ledger.Update) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("creating update %s: %w", u.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.updates[u.ID]; ok {
		return fmt.Errorf("creating update %s: %w", u.ID, ledger.ErrExists)
	}
	c := u.Clone()
	c.Version = 1
	l.updates[u.ID] = c
	u.Version = 1
	return nil
}

// GetUpdate implements ledger.Ledger.
func (l *Ledger) GetUpdate(ctx context.Context, id string) (*ledger.Update, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("getting update %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.updates[id]
	if !ok {
		return nil, fmt.Errorf("getting update %s: %w", id, ledger.ErrNotFound)
	}
	return u.Clone(), nil
}

// SaveUpdate implements ledger.Ledger.
func (l *Ledger) SaveUpdate(ctx context.Context, u *ledger.Update) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.updates[u.ID]
	if !ok {
		return fmt.Errorf("saving update %s: %w", u.ID, ledger.ErrNotFound)
	}
	if cur.Version != u.Version {
		return fmt.Errorf("saving update %s at version %d (stored %d): %w", u.ID, u.Version, cur.Version, ledger.ErrConflict)
	}
	c := u.Clone()
	c.Version = u.Version + 1
	l.updates[u.ID] = c
	u.Version = c.Version
	return nil
}

// ListUpdates implements ledger.Ledger.
func (l *Ledger) ListUpdates(ctx context.Context, q ledger.UpdateQuery) ([]*ledger.Update, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing updates: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*ledger.Update
	for _, u := range l.updates {
		if (q.Unfinished && u.State.Terminal()) || (q.Group != "" && u.Group != q.Group) {
			continue
		}
		out = append(out, u.Clone())
	}
	slices.SortFunc(out, func(a, b *ledger.Update) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}
