// Package ledgertest is the conformance suite every ledger backend runs, so
// that the memory, SQLite and PostgreSQL backends (and any later one) agree
// on the contract written in package ledger — including the corners the
// interface comments leave to interpretation, which this suite pins down:
//
//   - An event record or a lease is expired once now reaches its expiry
//     (expires <= now).
//   - A duplicate MarkEvent does not extend the record's expiry.
//   - A failed create, update or put leaves the caller's Version untouched.
//   - Releasing a lease keeps its token, so the next holder still gets a
//     larger one; a holder re-acquiring its own expired lease that nobody
//     else took keeps its token (the holder did not change).
//   - AcquireLease rejects an empty holder and a non-positive ttl.
//   - Times survive a round trip to the microsecond; the suite compares them
//     with Equal after converting to UTC and rounding to the microsecond, so a
//     backend may store microseconds (PostgreSQL timestamps, say) but no less.
//     Orderings are only tested on times at least a microsecond apart.
//   - IDs are ordered bytewise (Go string order), whatever the collation of
//     the store.
//
// The package is imported only by tests; it must never be linked into the
// handover binary.
package ledgertest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Run runs the whole suite. open must return a new, empty ledger each time it
// is called, and must be safe to call from parallel subtests; it should
// register the ledger's Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("Migrations", func(t *testing.T) { t.Parallel(); testMigrations(t, open) })
	t.Run("ListMigrations", func(t *testing.T) { t.Parallel(); testListMigrations(t, open) })
	t.Run("Databases", func(t *testing.T) { t.Parallel(); testDatabases(t, open) })
	t.Run("Events", func(t *testing.T) { t.Parallel(); testEvents(t, open) })
	t.Run("Leases", func(t *testing.T) { t.Parallel(); testLeases(t, open) })
	t.Run("Updates", func(t *testing.T) { t.Parallel(); testUpdates(t, open) })
	t.Run("EnvOps", func(t *testing.T) { t.Parallel(); testEnvOps(t, open) })
	t.Run("Releases", func(t *testing.T) { t.Parallel(); testReleases(t, open) })
	t.Run("Copies", func(t *testing.T) { t.Parallel(); testCopies(t, open) })
	t.Run("Concurrency", func(t *testing.T) {
		t.Parallel()
		RunShared(t, open(t))
	})
}

// base is the suite's fixed "now": whole microseconds, so every backend can
// store it exactly.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

// fullMigration returns a migration with every field set, so a backend that
// drops one fails the round trip. checkAllSet keeps it complete when a field
// is added to ledger.Migration.
func fullMigration(id string) *ledger.Migration {
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	return &ledger.Migration{
		ID:              id,
		Group:           "asg-orders",
		Hook:            "handover-launch",
		Instance:        "i-0new",
		Zone:            "eu-west-1b",
		Database:        "orders",
		Pool:            []string{"orders", "orders-2"},
		Cause:           "event",
		Update:          "upd-1",
		Gated:           true,
		GateSince:       base.Add(7 * time.Second),
		SeedSnapshot:    "snap-0seed",
		Channel:         "web",
		SizeGiB:         100,
		State:           ledger.AwaitingHealth,
		Source:          "i-0old",
		SourceVolume:    "vol-0old",
		SourceFate:      "running",
		FromEpoch:       41,
		Fenced:          true,
		FenceEpoch:      42,
		SourceStopped:   true,
		Unfenced:        true,
		Cutover:         "retire",
		Retired:         true,
		NewUnfenced:     true,
		DrainStarted:    true,
		PreCopySnapshot: "snap-0pre",
		FinalSnapshot:   "snap-0final",
		Volume:          "vol-0new",
		Resources: []ledger.Resource{
			{Kind: ledger.KindSnapshot, ID: "snap-0pre", Purpose: ledger.PurposePreCopy, Deleted: true},
			{Kind: ledger.KindSnapshot, ID: "snap-0final", Purpose: ledger.PurposeFinal},
			{Kind: ledger.KindVolume, ID: "vol-0new", Purpose: ledger.PurposeTarget},
		},
		Intent:   "attach vol-0new to i-0new",
		Result:   "CONTINUE",
		HookDone: true,
		Attempts: 3,
		// A NUL and non-ASCII text: PostgreSQL jsonb would refuse the NUL.
		LastError:        "RequestLimitExceeded: slow down\x00 — ünïcode ✓",
		CreatedAt:        base,
		UpdatedAt:        base.Add(90 * time.Second).In(plus2),
		StepStartedAt:    base.Add(80 * time.Second),
		NextAttemptAt:    base.Add(95*time.Second + 250*time.Microsecond),
		PacedAt:          base.Add(94 * time.Second),
		LastHeartbeat:    base.Add(60 * time.Second),
		HeartbeatTimeout: 15 * time.Minute,
		Deadline:         base.Add(25 * time.Hour),
		HookStartedAt:    base.Add(-3 * time.Second),
		TerminateHolds: []ledger.HookRef{
			{Group: "asg-orders", Hook: "handover-terminate", Token: "tok-term", Instance: "i-0old",
				Timeout: 5 * time.Minute, Since: base.Add(2 * time.Second), LastBeat: base.Add(62 * time.Second)},
		},
		Timeline: []ledger.Step{
			{State: ledger.Launching, Start: base, End: base.Add(time.Second), Note: "launch hook"},
			{State: ledger.PreCopying, Start: base.Add(time.Second), End: base.Add(40 * time.Second)},
			{State: ledger.AwaitingHealth, Start: base.Add(80 * time.Second), Note: "waiting for InService"},
		},
	}
}

func fullDatabase(id string) *ledger.Database {
	return &ledger.Database{
		ID:           id,
		Volume:       "vol-0auth",
		Zone:         "eu-west-1a",
		Instance:     "i-0holder",
		Group:        "asg-orders",
		Epoch:        7,
		BaseSnapshot: "snap-0base",
		SeedSnapshot: "snap-0seed",
		Claim:        "tok-claim",
		ReplaceBy:    "upd-1",
		Gated:        true,
		DroppedAt:    base.Add(3 * time.Minute),
		DroppedBy:    "env-0abort",
		TerminateHolds: []ledger.HookRef{
			{Group: "asg-orders", Hook: "handover-terminate", Token: "tok-held", Instance: "i-0holder",
				Timeout: 10 * time.Minute, Since: base.Add(5 * time.Second), LastBeat: base.Add(65 * time.Second)},
		},
		Version:   0, // set by SaveDatabase; checkAllSet skips it
		UpdatedAt: base.Add(time.Minute),
	}
}

// checkAllSet fails if any field of the struct v points to is zero, except
// those named in skip.
func checkAllSet(t *testing.T, v any, skip ...string) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		name := rv.Type().Field(i).Name
		if rv.Field(i).IsZero() && !contains(skip, name) {
			t.Errorf("fixture %s.%s is zero: set it so the round trip covers it", rv.Type().Name(), name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// normTime makes times comparable across backends: UTC, whole microseconds,
// no monotonic reading.
func normTime(t time.Time) time.Time { return t.UTC().Round(time.Microsecond) }

// normMigration returns a copy of m with times normalised and empty slices
// nil, so reflect.DeepEqual compares what a backend must preserve.
func normMigration(m *ledger.Migration) *ledger.Migration {
	c := m.Clone()
	for _, p := range []*time.Time{&c.CreatedAt, &c.UpdatedAt, &c.StepStartedAt, &c.NextAttemptAt, &c.PacedAt, &c.LastHeartbeat, &c.Deadline, &c.HookStartedAt} {
		*p = normTime(*p)
	}
	normHolds(c.TerminateHolds)
	for i := range c.Timeline {
		c.Timeline[i].Start = normTime(c.Timeline[i].Start)
		c.Timeline[i].End = normTime(c.Timeline[i].End)
	}
	if len(c.Resources) == 0 {
		c.Resources = nil
	}
	if len(c.Timeline) == 0 {
		c.Timeline = nil
	}
	if len(c.TerminateHolds) == 0 {
		c.TerminateHolds = nil
	}
	if len(c.Pool) == 0 {
		c.Pool = nil
	}
	return c
}

func normDatabase(d *ledger.Database) *ledger.Database {
	c := d.Clone()
	c.UpdatedAt = normTime(c.UpdatedAt)
	normHolds(c.TerminateHolds)
	if len(c.TerminateHolds) == 0 {
		c.TerminateHolds = nil
	}
	return c
}

func normHolds(hs []ledger.HookRef) {
	for i := range hs {
		hs[i].Since = normTime(hs[i].Since)
		hs[i].LastBeat = normTime(hs[i].LastBeat)
	}
}

func sameMigration(t *testing.T, what string, got, want *ledger.Migration) {
	t.Helper()
	g, w := normMigration(got), normMigration(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func sameDatabase(t *testing.T, what string, got, want *ledger.Database) {
	t.Helper()
	g, w := normDatabase(got), normDatabase(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

// wantErr fails unless err matches want (nil means no error), and checks that
// a sentinel match is not also another sentinel: callers branch on them.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want one matching %v", what, err, want)
	}
	for _, other := range []error{ledger.ErrNotFound, ledger.ErrExists, ledger.ErrConflict, ledger.ErrLeaseHeld} {
		if other != want && errors.Is(err, other) {
			t.Fatalf("%s: error %v also matches %v", what, err, other)
		}
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
