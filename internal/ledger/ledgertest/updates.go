package ledgertest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// fullUpdate returns an update with every field set, nested ones included,
// so a backend that drops one fails the round trip; the FixtureComplete
// test keeps it complete when a field is added to ledger.Update.
func fullUpdate(id string) *ledger.Update {
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	return &ledger.Update{
		ID:    id,
		Group: "asg-orders",
		State: ledger.UpdateFailed,
		Spec: ledger.UpdateSpec{
			Strategy:          "rolling",
			Template:          ledger.TemplateRef{ID: "lt-0abc", Name: "orders", Version: "7"},
			BatchSize:         2,
			MinHealthyPercent: 50,
			Pause:             30 * time.Second,
			Bake:              5 * time.Minute,
			SignalTimeout:     10 * time.Minute,
			MigrationGroup:    "asg-orders-migrate",
			MigrationTimeout:  20 * time.Minute,
		},
		Phase:       "rollback",
		OldTemplate: ledger.TemplateRef{ID: "lt-0abc", Name: "orders", Version: "6"},
		OldMin:      3,
		OldMax:      6,
		OldDesired:  4,
		Batches:     [][]string{{"i-0a", "i-0b"}, {"i-0c", "i-0d"}},
		Batch:       1,
		BatchAt:     base.Add(4*time.Minute + 250*time.Microsecond),
		Replacements: []ledger.Replacement{
			{Batch: 0, Old: "i-0a", New: "i-0e", State: "Committed", Terminated: true, Done: base.Add(2 * time.Minute)},
			{Batch: 1, Rollback: true, Old: "i-0c", Database: "orders", New: "i-0f", Migration: "tok-f",
				State: "RollingBack", Terminated: true, Done: base.Add(5 * time.Minute)},
		},
		NewGroup:             "asg-orders-next",
		OldGroupVersion:      "$Latest",
		TemplateSet:          true,
		NewGroupDeleting:     true,
		Signals:              map[string]string{"i-0e": "SUCCESS", "i-0f": "FAILURE"},
		GatesOpen:            true,
		SignalDeadline:       base.Add(15 * time.Minute),
		MigrationInstance:    "i-0mig",
		MigrationOld:         []string{"i-0migold"},
		MigrationOldTemplate: ledger.TemplateRef{ID: "lt-0mig", Name: "orders-migrate", Version: "3"},
		MigrationTemplate:    ledger.TemplateRef{ID: "lt-0mig", Name: "orders-migrate", Version: "4"},
		MigrationOldMin:      1,
		MigrationOldMax:      2,
		MigrationOldDesired:  1,
		AbortRequested:       true,
		// A NUL and non-ASCII text, as in fullMigration.
		Error:     "batch 1: i-0f unhealthy\x00 — ünïcode ✓",
		Attempts:  2,
		CreatedAt: base,
		UpdatedAt: base.Add(6 * time.Minute).In(plus2),
		EndedAt:   base.Add(7 * time.Minute),
		Timeline: []ledger.UpdateStep{
			{Phase: "batch", Start: base.Add(time.Minute), End: base.Add(3 * time.Minute), Note: "batch 0"},
			{Phase: "rollback", Start: base.Add(5 * time.Minute)},
		},
	}
}

// normUpdate returns a copy of u with times normalised and empty slices and
// maps nil: JSON with omitempty does not keep the difference.
func normUpdate(u *ledger.Update) *ledger.Update {
	c := u.Clone()
	for _, p := range []*time.Time{&c.BatchAt, &c.SignalDeadline, &c.CreatedAt, &c.UpdatedAt, &c.EndedAt} {
		*p = normTime(*p)
	}
	for i := range c.Replacements {
		c.Replacements[i].Done = normTime(c.Replacements[i].Done)
	}
	for i := range c.Timeline {
		c.Timeline[i].Start = normTime(c.Timeline[i].Start)
		c.Timeline[i].End = normTime(c.Timeline[i].End)
	}
	for i := range c.Batches {
		if len(c.Batches[i]) == 0 {
			c.Batches[i] = nil
		}
	}
	if len(c.Batches) == 0 {
		c.Batches = nil
	}
	if len(c.Replacements) == 0 {
		c.Replacements = nil
	}
	if len(c.Signals) == 0 {
		c.Signals = nil
	}
	if len(c.MigrationOld) == 0 {
		c.MigrationOld = nil
	}
	if len(c.Timeline) == 0 {
		c.Timeline = nil
	}
	return c
}

func sameUpdate(t *testing.T, what string, got, want *ledger.Update) {
	t.Helper()
	g, w := normUpdate(got), normUpdate(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func testUpdates(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("FixtureComplete", func(t *testing.T) {
		u := fullUpdate("u")
		checkAllSet(t, u, "Version")
		// checkAllSet looks one level deep: a new field in a nested struct
		// would hide behind its siblings.
		checkAllSet(t, &u.Spec)
		checkAllSet(t, &u.Spec.Template)
		checkAllSet(t, &u.OldTemplate)
		checkAllSet(t, &u.MigrationOldTemplate)
		checkAllSet(t, &u.MigrationTemplate)
		checkAllSet(t, &u.Replacements[1])
		checkAllSet(t, &u.Timeline[0])
	})

	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		u := fullUpdate("upd-1")
		u.Version = 7 // ignored: a create always stores version 1
		must(t, "create", l.CreateUpdate(ctx, u))
		if u.Version != 1 {
			t.Fatalf("after create u.Version = %d, want 1", u.Version)
		}
		got, err := l.GetUpdate(ctx, "upd-1")
		must(t, "get", err)
		sameUpdate(t, "round trip of every field", got, u)
	})

	t.Run("MinimalRoundTrip", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		u := &ledger.Update{ID: "upd-min", State: ledger.UpdateRunning}
		must(t, "create", l.CreateUpdate(ctx, u))
		got, err := l.GetUpdate(ctx, u.ID)
		must(t, "get", err)
		sameUpdate(t, "round trip of zero fields", got, u)
		if !got.CreatedAt.IsZero() || !got.EndedAt.IsZero() {
			t.Errorf("zero times came back as %v, %v", got.CreatedAt, got.EndedAt)
		}
	})

	t.Run("CreateExists", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		must(t, "create", l.CreateUpdate(ctx, fullUpdate("upd-1")))
		again := fullUpdate("upd-1")
		again.Group = "other"
		// Not 0 or 1, so that a backend setting it before the write shows.
		again.Version = 3
		wantErr(t, "second create", l.CreateUpdate(ctx, again), ledger.ErrExists)
		if again.Version != 3 {
			t.Errorf("failed create changed Version from 3 to %d", again.Version)
		}
		got, err := l.GetUpdate(ctx, "upd-1")
		must(t, "get", err)
		if got.Group != "asg-orders" || got.Version != 1 {
			t.Errorf("second create overwrote the record: %+v", got)
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		_, err := open(t).GetUpdate(t.Context(), "nope")
		wantErr(t, "get absent", err, ledger.ErrNotFound)
	})

	t.Run("SaveCAS", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		u := fullUpdate("upd-1")
		must(t, "create", l.CreateUpdate(ctx, u))
		stale := u.Clone()

		u.State, u.Phase = ledger.UpdateAborted, "cleanup"
		u.Timeline = append(u.Timeline, ledger.UpdateStep{Phase: "cleanup", Start: base.Add(8 * time.Minute)})
		u.Signals["i-0g"] = "SUCCESS"
		must(t, "save at version 1", l.SaveUpdate(ctx, u))
		if u.Version != 2 {
			t.Fatalf("after save u.Version = %d, want 2", u.Version)
		}
		got, err := l.GetUpdate(ctx, u.ID)
		must(t, "get", err)
		sameUpdate(t, "after save", got, u)

		stale.Error = "written from a stale read"
		wantErr(t, "save at stale version 1", l.SaveUpdate(ctx, stale), ledger.ErrConflict)
		if stale.Version != 1 {
			t.Errorf("failed save changed Version from 1 to %d", stale.Version)
		}
		future := u.Clone()
		future.Version = 99
		wantErr(t, "save at future version 99", l.SaveUpdate(ctx, future), ledger.ErrConflict)
		if future.Version != 99 {
			t.Errorf("failed save changed Version from 99 to %d", future.Version)
		}

		got, err = l.GetUpdate(ctx, u.ID)
		must(t, "get", err)
		sameUpdate(t, "after rejected saves", got, u)

		must(t, "save at version 2", l.SaveUpdate(ctx, u))
		if u.Version != 3 {
			t.Errorf("after second save u.Version = %d, want 3", u.Version)
		}
	})

	t.Run("SaveNotFound", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		for _, v := range []int64{0, 1, 5} {
			u := fullUpdate("absent")
			u.Version = v
			wantErr(t, "save absent", l.SaveUpdate(ctx, u), ledger.ErrNotFound)
			if u.Version != v {
				t.Errorf("failed save changed Version from %d to %d", v, u.Version)
			}
		}
		_, err := l.GetUpdate(ctx, "absent")
		wantErr(t, "save must not create", err, ledger.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) { testListUpdates(t, open(t)) })
}

func testListUpdates(t *testing.T, l ledger.Ledger) {
	ctx := t.Context()
	plus5 := time.FixedZone("UTC+5", 5*60*60)
	// Inserted in this (unsorted) order. u-zone is the earliest instant but
	// the latest wall clock; B-eq and a-eq tie on time and sort bytewise.
	recs := []struct {
		id, group string
		created   time.Time
		state     ledger.UpdateState
	}{
		{"u-c", "g1", base.Add(2 * time.Second), ledger.UpdateRunning},
		{"a-eq", "g2", base.Add(3 * time.Second), ledger.UpdateRollingBack},
		{"u-a", "g1", base.Add(time.Second), ledger.UpdateSucceeded},
		{"u-zone", "g3", base.Add(500 * time.Millisecond).In(plus5), ledger.UpdateRunning},
		{"B-eq", "g2", base.Add(3 * time.Second), ledger.UpdateAborted},
		{"a-us", "g1", base.Add(time.Second + time.Microsecond), ledger.UpdateRollingBack},
		{"u-f", "g3", base.Add(4 * time.Second), ledger.UpdateFailed},
	}
	stored := map[string]*ledger.Update{}
	for _, r := range recs {
		u := fullUpdate(r.id)
		u.Group, u.CreatedAt, u.State = r.group, r.created, r.state
		must(t, "create "+r.id, l.CreateUpdate(ctx, u))
		stored[r.id] = u
	}

	check := func(t *testing.T, q ledger.UpdateQuery, want []string) {
		t.Helper()
		got, err := l.ListUpdates(ctx, q)
		must(t, "list", err)
		ids := make([]string, 0, len(got))
		for _, u := range got {
			ids = append(ids, u.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("ListUpdates(%+v) = %q, want %q", q, ids, want)
		}
		for _, u := range got {
			sameUpdate(t, "listed "+u.ID, u, stored[u.ID])
		}
	}

	for _, tc := range []struct {
		name string
		q    ledger.UpdateQuery
		want []string
	}{
		{"All", ledger.UpdateQuery{}, []string{"u-zone", "u-a", "a-us", "u-c", "B-eq", "a-eq", "u-f"}},
		{"Unfinished", ledger.UpdateQuery{Unfinished: true}, []string{"u-zone", "a-us", "u-c", "a-eq"}},
		{"Group", ledger.UpdateQuery{Group: "g1"}, []string{"u-a", "a-us", "u-c"}},
		{"UnfinishedGroup", ledger.UpdateQuery{Unfinished: true, Group: "g2"}, []string{"a-eq"}},
		{"UnfinishedGroupSkipsFailed", ledger.UpdateQuery{Unfinished: true, Group: "g3"}, []string{"u-zone"}},
		{"GroupIsExact", ledger.UpdateQuery{Group: "g"}, []string{}},
		{"NoMatch", ledger.UpdateQuery{Unfinished: true, Group: "nope"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.q, tc.want) })
	}

	// The indexed columns must follow saves, not just the body, and in both
	// directions: the ledger does not judge state transitions.
	t.Run("AfterSave", func(t *testing.T) {
		u := stored["u-c"]
		u.State = ledger.UpdateSucceeded
		must(t, "save u-c", l.SaveUpdate(ctx, u))
		u = stored["a-eq"]
		u.Group = "g9"
		must(t, "save a-eq", l.SaveUpdate(ctx, u))
		u = stored["u-f"]
		u.State = ledger.UpdateRunning
		must(t, "save u-f", l.SaveUpdate(ctx, u))
		check(t, ledger.UpdateQuery{Unfinished: true}, []string{"u-zone", "a-us", "a-eq", "u-f"})
		check(t, ledger.UpdateQuery{Group: "g9"}, []string{"a-eq"})
		check(t, ledger.UpdateQuery{Group: "g2"}, []string{"B-eq"})
		check(t, ledger.UpdateQuery{Unfinished: true, Group: "g1"}, []string{"a-us"})
	})
}
