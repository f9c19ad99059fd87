package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is the small core every backend implements: versioned records of
// declared kinds, expiring marks for event dedup, and leases with fencing
// tokens. Records hands it typed records; a backend never sees a Migration
// or an Update, so adding a kind needs no backend code.
//
// All methods are safe for concurrent use and, for shared backends, by
// several processes. Every write is all or nothing: a write that fails
// changed nothing, and one whose error matches ErrRetry may be repeated.
type Store interface {
	// Create stores r at version 1 (r.Version is ignored). It returns
	// ErrExists if a record of that kind and id is stored.
	Create(ctx context.Context, r Record) error
	// Get returns the stored record, or ErrNotFound.
	Get(ctx context.Context, kind *Kind, id string) (Record, error)
	// Swap replaces the stored record with r, at r.Version+1, if the stored
	// version is r.Version. It returns a *ConflictError (matching
	// ErrConflict) on a version mismatch and ErrNotFound if absent.
	Swap(ctx context.Context, r Record) error
	// List returns the records of kind that match f, ordered by id.
	List(ctx context.Context, kind *Kind, f Filter) ([]Record, error)

	// EventSeen, MarkEvent and PruneEvents: as Ledger's.
	EventSeen(ctx context.Context, id string, now time.Time) (bool, error)
	MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error)
	PruneEvents(ctx context.Context, now time.Time) (int, error)

	// AcquireLease, ReleaseLease and ListLeases: as Ledger's.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)
	ReleaseLease(ctx context.Context, l Lease) error
	ListLeases(ctx context.Context, now time.Time) ([]Lease, error)

	// SchemaVersion reports the version of the layout the store keeps its
	// data in, as recorded in the store itself.
	SchemaVersion(ctx context.Context) (int, error)

	Close() error
}

// MaxKeys is how many indexed keys a kind may declare.
const MaxKeys = 3

// Kind declares a record kind to the stores. Name and the order of Keys are
// stored: never rename a kind, and only append keys.
type Kind struct {
	Name string
	// Keys are the names of the kind's indexed keys: List can select
	// records by any of them. At most MaxKeys.
	Keys []string
}

// Key returns the position of key name in k.Keys, or -1.
func (k *Kind) Key(name string) int {
	for i, n := range k.Keys {
		if n == name {
			return i
		}
	}
	return -1
}

// Record is one stored record as the stores see it.
type Record struct {
	Kind    *Kind
	ID      string
	Version int64
	// Keys holds the value of each of Kind.Keys, in order; missing trailing
	// values are empty.
	Keys []string
	// Done records are left out of Unfinished lists.
	Done bool
	// Body is the record, JSON-encoded.
	Body []byte
	// SameKeys, on a Swap, says that Keys and Done are those of the stored
	// version r.Version, so a store may leave its index entries alone. A
	// wrong hint cannot do harm: the swap applies only at that version.
	SameKeys bool
}

// KeyValue returns the value of r's i-th indexed key, "" if unset.
func (r Record) KeyValue(i int) string {
	if i < len(r.Keys) {
		return r.Keys[i]
	}
	return ""
}

// Filter selects records in List. Zero fields match everything.
type Filter struct {
	Unfinished bool // only records that are not Done
	// Key and Value: only records whose indexed key Key equals Value. Key
	// must be one the kind declares.
	Key, Value string
}

// ConflictError is a lost compare-and-set: the stored version was not the
// one the writer read. It matches ErrConflict. Re-read and retry from fresh
// state.
type ConflictError struct {
	Kind, ID string
	Version  int64 // the version the writer read
	Stored   int64 // the version found; 0 if the store did not say
}

func (e *ConflictError) Error() string {
	if e.Stored == 0 {
		return fmt.Sprintf("%s %s at version %d: %v", e.Kind, e.ID, e.Version, ErrConflict)
	}
	return fmt.Sprintf("%s %s at version %d (stored %d): %v", e.Kind, e.ID, e.Version, e.Stored, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrRetry marks a write that was not applied because of a passing fault
// (its group commit failed, the store was busy): nothing of it is stored,
// and repeating it is safe.
var ErrRetry = errors.New("ledger: write not applied, safe to retry")

// CheckRecord refuses a record a store cannot keep as given.
func CheckRecord(r Record) error {
	if r.Kind == nil || r.Kind.Name == "" {
		return errors.New("record without a kind")
	}
	if r.ID == "" {
		return fmt.Errorf("%s record with an empty id", r.Kind.Name)
	}
	if len(r.Keys) > len(r.Kind.Keys) {
		return fmt.Errorf("%s %s has %d key values, its kind declares %d", r.Kind.Name, r.ID, len(r.Keys), len(r.Kind.Keys))
	}
	return nil
}

// CheckFilter refuses a filter on a key the kind does not declare, and
// returns the key's position (-1 for none).
func CheckFilter(kind *Kind, f Filter) (int, error) {
	if f.Key == "" {
		return -1, nil
	}
	i := kind.Key(f.Key)
	if i < 0 {
		return -1, fmt.Errorf("%s records have no indexed key %q (they have %v)", kind.Name, f.Key, kind.Keys)
	}
	return i, nil
}
