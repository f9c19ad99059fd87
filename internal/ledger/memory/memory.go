// Package memory is the in-memory ledger store, shipped beside the
// interface for unit tests and the deterministic simulator.
//
// It must stay fast and deterministic: it never starts a goroutine, never
// reads the wall clock (every time comes from the caller) and never hands out
// or keeps memory that a caller also holds — records are kept as the encoded
// bytes the ledger hands over and copied on the way out, so a test cannot
// pass by aliasing the store. It keeps nothing across restarts and must
// never be used where durability matters.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// schemaVersion is the layout this store keeps; there is only one.
const schemaVersion = 1

// Store is an in-memory ledger.Store. The zero value is not usable; call
// NewStore.
type Store struct {
	mu      sync.Mutex
	records map[string]map[string]ledger.Record // kind → id → record
	events  map[string]time.Time                // id → expires
	leases  map[string]ledger.Lease
}

var _ ledger.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		records: make(map[string]map[string]ledger.Record),
		events:  make(map[string]time.Time),
		leases:  make(map[string]ledger.Lease),
	}
}

// New returns an empty in-memory ledger.
func New() *ledger.Records { return ledger.New(NewStore()) }

// copyRecord detaches r from the caller's slices.
func copyRecord(r ledger.Record) ledger.Record {
	r.Keys = slices.Clone(r.Keys)
	r.Body = slices.Clone(r.Body)
	return r
}

// Create implements ledger.Store.
func (s *Store) Create(ctx context.Context, r ledger.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := s.records[r.Kind.Name]
	if byID == nil {
		byID = make(map[string]ledger.Record)
		s.records[r.Kind.Name] = byID
	}
	if _, ok := byID[r.ID]; ok {
		return ledger.ErrExists
	}
	c := copyRecord(r)
	c.Version = 1
	byID[r.ID] = c
	return nil
}

// Get implements ledger.Store.
func (s *Store) Get(ctx context.Context, kind *ledger.Kind, id string) (ledger.Record, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[kind.Name][id]
	if !ok {
		return ledger.Record{}, ledger.ErrNotFound
	}
	return copyRecord(r), nil
}

// Swap implements ledger.Store.
func (s *Store) Swap(ctx context.Context, r ledger.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ledger.CheckRecord(r); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[r.Kind.Name][r.ID]
	if !ok {
		return ledger.ErrNotFound
	}
	if cur.Version != r.Version {
		return &ledger.ConflictError{Kind: r.Kind.Name, ID: r.ID, Version: r.Version, Stored: cur.Version}
	}
	c := copyRecord(r)
	c.Version = r.Version + 1
	s.records[r.Kind.Name][r.ID] = c
	return nil
}

// List implements ledger.Store.
func (s *Store) List(ctx context.Context, kind *ledger.Kind, f ledger.Filter) ([]ledger.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := ledger.CheckFilter(kind, f)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	out := make([]ledger.Record, 0, len(s.records[kind.Name]))
	for _, r := range s.records[kind.Name] {
		if (f.Unfinished && r.Done) || (key >= 0 && r.KeyValue(key) != f.Value) {
			continue
		}
		out = append(out, copyRecord(r))
	}
	s.mu.Unlock()
	// Map iteration order is random; sorting keeps runs deterministic.
	slices.SortFunc(out, func(a, b ledger.Record) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// SchemaVersion implements ledger.Store.
func (s *Store) SchemaVersion(context.Context) (int, error) { return schemaVersion, nil }

// EventSeen implements ledger.Store.
func (s *Store) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("looking up event %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.events[id]
	return ok && now.Before(exp), nil
}

// MarkEvent implements ledger.Store. A record counts as expired once now
// reaches its expiry (expires <= now), the same rule PruneEvents uses.
func (s *Store) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("marking event %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.events[id]; ok && now.Before(exp) {
		return false, nil
	}
	s.events[id] = expires
	return true, nil
}

// PruneEvents implements ledger.Store.
func (s *Store) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, exp := range s.events {
		if !now.Before(exp) {
			delete(s.events, id)
			n++
		}
	}
	return n, nil
}

// AcquireLease implements ledger.Store. A lease is expired once now reaches
// Expires. A released lease keeps its token (with an empty holder) so the
// next holder still gets a larger one.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: %w", name, err)
	}
	// An empty holder would read as "free", and a non-positive ttl grants
	// nothing: both are caller bugs.
	if holder == "" || ttl <= 0 {
		return ledger.Lease{}, fmt.Errorf("acquiring lease %s: need a holder and a positive ttl, got holder %q and ttl %s", name, holder, ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[name]
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
	s.leases[name] = next
	return next, nil
}

// ReleaseLease implements ledger.Store.
func (s *Store) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("releasing lease %s: %w", lease.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[lease.Name]
	if !ok || cur.Holder != lease.Holder || cur.Token != lease.Token || cur.Holder == "" {
		return nil
	}
	s.leases[lease.Name] = ledger.Lease{Name: lease.Name, Token: cur.Token}
	return nil
}

// ListLeases implements ledger.Store.
func (s *Store) ListLeases(ctx context.Context, now time.Time) ([]ledger.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ledger.Lease
	for _, l := range s.leases {
		if l.Holder != "" && now.Before(l.Expires) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b ledger.Lease) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Close implements ledger.Store; there is nothing to release.
func (s *Store) Close() error { return nil }
