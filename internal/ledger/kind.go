package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// kindOf is a Kind with the Go type of its records: it turns typed values
// into Records and back, so the typed wrappers of Records are one line each.
type kindOf[T any] struct {
	Kind
	// meta returns the record's id, its indexed key values, whether it is
	// done, a pointer to its version field, and when it was created (the
	// order of lists).
	meta func(*T) (id string, keys []string, done bool, version *int64, created time.Time)
	// clone deep-copies a record, for the decode cache.
	clone func(*T) *T
}

func (k *kindOf[T]) encode(v *T, version int64) (Record, error) {
	id, keys, done, ver, _ := k.meta(v)
	// The body carries the version it is stored at, so it always agrees
	// with the record's.
	old := *ver
	*ver = version
	body, err := json.Marshal(v)
	*ver = old
	if err != nil {
		return Record{}, fmt.Errorf("encoding %s %s: %w", k.Name, id, err)
	}
	return Record{Kind: &k.Kind, ID: id, Version: old, Keys: keys, Done: done, Body: body}, nil
}

func (k *kindOf[T]) decode(c *decodeCache, r Record) (*T, error) {
	if v, ok := c.get(k.Name, r); ok {
		return k.clone(v.(*T)), nil
	}
	v := new(T)
	if err := json.Unmarshal(r.Body, v); err != nil {
		return nil, fmt.Errorf("decoding stored %s %s: %w", k.Name, r.ID, err)
	}
	_, _, _, ver, _ := k.meta(v)
	*ver = r.Version // the store's version wins over the body's
	c.put(k.Name, r, k.clone(v))
	return v, nil
}

// remember caches v as stored in r at version, so the next read of it
// needs no decoding.
func (k *kindOf[T]) remember(c *decodeCache, r Record, v *T, version int64) {
	cp := k.clone(v)
	_, _, _, ver, _ := k.meta(cp)
	*ver = version
	r.Version = version
	c.put(k.Name, r, cp)
}

// create stores v at version 1 and sets its version.
func (k *kindOf[T]) create(ctx context.Context, s Store, c *decodeCache, v *T) error {
	r, err := k.encode(v, 1)
	if err != nil {
		return fmt.Errorf("creating %w", err)
	}
	if err := s.Create(ctx, r); err != nil {
		return fmt.Errorf("creating %s %s: %w", k.Name, r.ID, err)
	}
	_, _, _, ver, _ := k.meta(v)
	*ver = 1
	k.remember(c, r, v, 1)
	return nil
}

func (k *kindOf[T]) get(ctx context.Context, s Store, c *decodeCache, id string) (*T, error) {
	r, err := s.Get(ctx, &k.Kind, id)
	if err != nil {
		return nil, fmt.Errorf("getting %s %s: %w", k.Name, id, err)
	}
	return k.decode(c, r)
}

// save is the compare-and-set: it stores v if the stored version is v's,
// then bumps v's version.
func (k *kindOf[T]) save(ctx context.Context, s Store, c *decodeCache, v *T) error {
	_, _, _, ver, _ := k.meta(v)
	r, err := k.encode(v, *ver+1)
	if err != nil {
		return fmt.Errorf("saving %w", err)
	}
	if r.Version <= 0 {
		// Version 0 was never stored: nothing can match it.
		if _, err := s.Get(ctx, &k.Kind, r.ID); err != nil {
			return fmt.Errorf("saving %s %s: %w", k.Name, r.ID, err)
		}
		return fmt.Errorf("saving %s %s: %w", k.Name, r.ID, &ConflictError{Kind: k.Name, ID: r.ID, Version: r.Version})
	}
	r.SameKeys = c.sameKeys(k.Name, r)
	if err := s.Swap(ctx, r); err != nil {
		return fmt.Errorf("saving %s %s: %w", k.Name, r.ID, err)
	}
	*ver = r.Version + 1
	k.remember(c, r, v, *ver)
	return nil
}

// list returns the matching records ordered by creation time, then id.
func (k *kindOf[T]) list(ctx context.Context, s Store, c *decodeCache, f Filter) ([]*T, error) {
	rs, err := s.List(ctx, &k.Kind, f)
	if err != nil {
		return nil, fmt.Errorf("listing %s records: %w", k.Name, err)
	}
	out := make([]*T, 0, len(rs))
	for _, r := range rs {
		v, err := k.decode(c, r)
		if err != nil {
			return nil, fmt.Errorf("listing %s records: %w", k.Name, err)
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b *T) int {
		ida, _, _, _, ca := k.meta(a)
		idb, _, _, _, cb := k.meta(b)
		if c := ca.Compare(cb); c != 0 {
			return c
		}
		return cmp.Compare(ida, idb)
	})
	return out, nil
}

// The kinds handover stores. Their names and key orders are stored: see
// Kind.
var (
	migrations = &kindOf[Migration]{
		Kind: Kind{Name: "migration", Keys: []string{"database", "instance"}},
		meta: func(m *Migration) (string, []string, bool, *int64, time.Time) {
			return m.ID, []string{m.Database, m.Instance}, m.State.Terminal(), &m.Version, m.CreatedAt
		},
		clone: (*Migration).Clone,
	}
	databases = &kindOf[Database]{
		Kind: Kind{Name: "database"},
		meta: func(d *Database) (string, []string, bool, *int64, time.Time) {
			// Listed by id alone: the zero time orders nothing.
			return d.ID, nil, false, &d.Version, time.Time{}
		},
		clone: (*Database).Clone,
	}
	updates = &kindOf[Update]{
		Kind: Kind{Name: "update", Keys: []string{"group"}},
		meta: func(u *Update) (string, []string, bool, *int64, time.Time) {
			return u.ID, []string{u.Group}, u.State.Terminal(), &u.Version, u.CreatedAt
		},
		clone: (*Update).Clone,
	}
	releases = &kindOf[Release]{
		Kind: Kind{Name: "release", Keys: []string{"channel"}},
		meta: func(r *Release) (string, []string, bool, *int64, time.Time) {
			return r.ID, []string{r.Channel}, r.State.Terminal(), &r.Version, r.CreatedAt
		},
		clone: (*Release).Clone,
	}
	channels = &kindOf[Channel]{
		Kind: Kind{Name: "channel"},
		meta: func(c *Channel) (string, []string, bool, *int64, time.Time) {
			// Listed by name alone, as databases are.
			return c.ID, nil, false, &c.Version, time.Time{}
		},
		clone: (*Channel).Clone,
	}
)

// Kinds lists every declared kind, for stores that prepare per-kind space
// and for upgrades.
func Kinds() []*Kind {
	return []*Kind{&migrations.Kind, &databases.Kind, &updates.Kind, &envOps.Kind, &releases.Kind, &channels.Kind}
}

// Records is the Ledger every backend serves: typed wrappers over a Store.
type Records struct {
	store Store
	cache decodeCache
}

var _ Ledger = (*Records)(nil)

// New returns the ledger kept in s. Closing it closes s.
func New(s Store) *Records { return &Records{store: s} }

// Store returns the store under r, for tests and tools that look at its
// layout.
func (r *Records) Store() Store { return r.store }

// CreateMigration implements Ledger.
func (r *Records) CreateMigration(ctx context.Context, m *Migration) error {
	return migrations.create(ctx, r.store, &r.cache, m)
}

// GetMigration implements Ledger.
func (r *Records) GetMigration(ctx context.Context, id string) (*Migration, error) {
	return migrations.get(ctx, r.store, &r.cache, id)
}

// SaveMigration implements Ledger.
func (r *Records) SaveMigration(ctx context.Context, m *Migration) error {
	return migrations.save(ctx, r.store, &r.cache, m)
}

// ListMigrations implements Ledger. A query naming both a database and an
// instance is answered from the database's index and filtered here.
func (r *Records) ListMigrations(ctx context.Context, q MigrationQuery) ([]*Migration, error) {
	f := Filter{Unfinished: q.Unfinished}
	switch {
	case q.Database != "":
		f.Key, f.Value = "database", q.Database
	case q.Instance != "":
		f.Key, f.Value = "instance", q.Instance
	}
	ms, err := migrations.list(ctx, r.store, &r.cache, f)
	if err != nil || q.Database == "" || q.Instance == "" {
		return ms, err
	}
	return slices.DeleteFunc(ms, func(m *Migration) bool { return m.Instance != q.Instance }), nil
}

// GetDatabase implements Ledger.
func (r *Records) GetDatabase(ctx context.Context, id string) (*Database, error) {
	return databases.get(ctx, r.store, &r.cache, id)
}

// SaveDatabase implements Ledger: at version 0 it creates, and a database
// already there is a lost race (ErrConflict), since the caller decided on
// the belief that there was none.
func (r *Records) SaveDatabase(ctx context.Context, d *Database) error {
	if d.Version != 0 {
		return databases.save(ctx, r.store, &r.cache, d)
	}
	err := databases.create(ctx, r.store, &r.cache, d)
	if errors.Is(err, ErrExists) {
		return fmt.Errorf("creating database %s: %w", d.ID, &ConflictError{Kind: databases.Name, ID: d.ID})
	}
	return err
}

// ListDatabases implements Ledger.
func (r *Records) ListDatabases(ctx context.Context) ([]*Database, error) {
	return databases.list(ctx, r.store, &r.cache, Filter{})
}

// CreateUpdate implements Ledger.
func (r *Records) CreateUpdate(ctx context.Context, u *Update) error {
	return updates.create(ctx, r.store, &r.cache, u)
}

// GetUpdate implements Ledger.
func (r *Records) GetUpdate(ctx context.Context, id string) (*Update, error) {
	return updates.get(ctx, r.store, &r.cache, id)
}

// SaveUpdate implements Ledger.
func (r *Records) SaveUpdate(ctx context.Context, u *Update) error {
	return updates.save(ctx, r.store, &r.cache, u)
}

// ListUpdates implements Ledger.
func (r *Records) ListUpdates(ctx context.Context, q UpdateQuery) ([]*Update, error) {
	f := Filter{Unfinished: q.Unfinished}
	if q.Group != "" {
		f.Key, f.Value = "group", q.Group
	}
	return updates.list(ctx, r.store, &r.cache, f)
}

// CreateRelease implements Ledger.
func (r *Records) CreateRelease(ctx context.Context, v *Release) error {
	return releases.create(ctx, r.store, &r.cache, v)
}

// GetRelease implements Ledger.
func (r *Records) GetRelease(ctx context.Context, id string) (*Release, error) {
	return releases.get(ctx, r.store, &r.cache, id)
}

// SaveRelease implements Ledger.
func (r *Records) SaveRelease(ctx context.Context, v *Release) error {
	return releases.save(ctx, r.store, &r.cache, v)
}

// ListReleases implements Ledger.
func (r *Records) ListReleases(ctx context.Context, channel string) ([]*Release, error) {
	f := Filter{}
	if channel != "" {
		f.Key, f.Value = "channel", channel
	}
	return releases.list(ctx, r.store, &r.cache, f)
}

// GetChannel implements Ledger.
func (r *Records) GetChannel(ctx context.Context, id string) (*Channel, error) {
	return channels.get(ctx, r.store, &r.cache, id)
}

// SaveChannel implements Ledger: at version 0 it creates, and a channel
// already there is a lost race (ErrConflict), as with SaveDatabase.
func (r *Records) SaveChannel(ctx context.Context, c *Channel) error {
	if c.Version != 0 {
		return channels.save(ctx, r.store, &r.cache, c)
	}
	err := channels.create(ctx, r.store, &r.cache, c)
	if errors.Is(err, ErrExists) {
		return fmt.Errorf("creating channel %s: %w", c.ID, &ConflictError{Kind: channels.Name, ID: c.ID})
	}
	return err
}

// ListChannels implements Ledger.
func (r *Records) ListChannels(ctx context.Context) ([]*Channel, error) {
	return channels.list(ctx, r.store, &r.cache, Filter{})
}

// EventSeen implements Ledger.
func (r *Records) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	return r.store.EventSeen(ctx, id, now)
}

// MarkEvent implements Ledger.
func (r *Records) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	return r.store.MarkEvent(ctx, id, now, expires)
}

// PruneEvents implements Ledger.
func (r *Records) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	return r.store.PruneEvents(ctx, now)
}

// AcquireLease implements Ledger.
func (r *Records) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error) {
	return r.store.AcquireLease(ctx, name, holder, now, ttl)
}

// ReleaseLease implements Ledger.
func (r *Records) ReleaseLease(ctx context.Context, l Lease) error {
	return r.store.ReleaseLease(ctx, l)
}

// ListLeases implements Ledger.
func (r *Records) ListLeases(ctx context.Context, now time.Time) ([]Lease, error) {
	return r.store.ListLeases(ctx, now)
}

// Close implements Ledger.
func (r *Records) Close() error { return r.store.Close() }

// decodeCache keeps the last decoded value of each record, so a read of a
// record that has not changed since costs a byte comparison and a deep copy
// instead of a JSON decode: reconcile lists every unfinished migration on
// every pass, and the advance loop re-reads what it just saved. A hit needs
// the same version and the same bytes, so a record written by another
// process is never mistaken for the cached one.
type decodeCache struct {
	mu sync.Mutex
	m  map[string]cachedRecord
}

type cachedRecord struct {
	version int64
	body    []byte
	keys    []string
	done    bool
	value   any
}

// maxCached bounds the cache; past it the cache starts over, which only
// costs decodes.
const maxCached = 8192

func (c *decodeCache) get(kind string, r Record) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[kind+"\x00"+r.ID]
	if !ok || e.version != r.Version || !bytes.Equal(e.body, r.Body) {
		return nil, false
	}
	return e.value, true
}

func (c *decodeCache) put(kind string, r Record, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[string]cachedRecord)
	}
	c.m[kind+"\x00"+r.ID] = cachedRecord{version: r.Version, body: r.Body, keys: r.Keys, done: r.Done, value: v}
}

// sameKeys reports whether r's keys and done flag are those the cache holds
// for the version r replaces.
func (c *decodeCache) sameKeys(kind string, r Record) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[kind+"\x00"+r.ID]
	return ok && e.version == r.Version && e.done == r.Done && slices.Equal(e.keys, r.Keys)
}
