package ledgertest

import (
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

func testMigrations(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("FixtureComplete", func(t *testing.T) {
		checkAllSet(t, fullMigration("m"), "Version")
	})

	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		m := fullMigration("tok-1")
		m.Version = 7 // ignored: a create always stores version 1
		must(t, "create", l.CreateMigration(ctx, m))
		if m.Version != 1 {
			t.Fatalf("after create m.Version = %d, want 1", m.Version)
		}
		got, err := l.GetMigration(ctx, "tok-1")
		must(t, "get", err)
		sameMigration(t, "round trip of every field", got, m)
	})

	t.Run("MinimalRoundTrip", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		m := &ledger.Migration{ID: "instance:i-0abc", State: ledger.Launching}
		must(t, "create", l.CreateMigration(ctx, m))
		got, err := l.GetMigration(ctx, m.ID)
		must(t, "get", err)
		sameMigration(t, "round trip of zero fields", got, m)
		if !got.CreatedAt.IsZero() || !got.Deadline.IsZero() {
			t.Errorf("zero times came back as %v, %v", got.CreatedAt, got.Deadline)
		}
	})

	t.Run("CreateExists", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		must(t, "create", l.CreateMigration(ctx, fullMigration("tok-1")))
		again := fullMigration("tok-1")
		again.Group = "other"
		wantErr(t, "second create", l.CreateMigration(ctx, again), ledger.ErrExists)
		if again.Version != 0 {
			t.Errorf("failed create changed Version to %d", again.Version)
		}
		got, err := l.GetMigration(ctx, "tok-1")
		must(t, "get", err)
		if got.Group != "asg-orders" || got.Version != 1 {
			t.Errorf("second create overwrote the record: %+v", got)
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		l := open(t)
		_, err := l.GetMigration(t.Context(), "nope")
		wantErr(t, "get absent", err, ledger.ErrNotFound)
	})

	t.Run("UpdateCAS", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		m := fullMigration("tok-1")
		must(t, "create", l.CreateMigration(ctx, m))
		stale := m.Clone()

		m.State = ledger.Completing
		m.Timeline = append(m.Timeline, ledger.Step{State: ledger.Completing, Start: base.Add(2 * time.Minute)})
		must(t, "update at version 1", l.SaveMigration(ctx, m))
		if m.Version != 2 {
			t.Fatalf("after update m.Version = %d, want 2", m.Version)
		}
		got, err := l.GetMigration(ctx, m.ID)
		must(t, "get", err)
		sameMigration(t, "after update", got, m)

		stale.LastError = "written from a stale read"
		wantErr(t, "update at stale version 1", l.SaveMigration(ctx, stale), ledger.ErrConflict)
		if stale.Version != 1 {
			t.Errorf("failed update changed Version to %d", stale.Version)
		}
		future := m.Clone()
		future.Version = 99
		wantErr(t, "update at future version 99", l.SaveMigration(ctx, future), ledger.ErrConflict)

		got, err = l.GetMigration(ctx, m.ID)
		must(t, "get", err)
		sameMigration(t, "after rejected updates", got, m)

		m.State = ledger.Committed
		must(t, "update at version 2", l.SaveMigration(ctx, m))
		if m.Version != 3 {
			t.Errorf("after second update m.Version = %d, want 3", m.Version)
		}
	})

	t.Run("UpdateNotFound", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		for _, v := range []int64{0, 1, 5} {
			m := fullMigration("absent")
			m.Version = v
			wantErr(t, "update absent", l.SaveMigration(ctx, m), ledger.ErrNotFound)
		}
		_, err := l.GetMigration(ctx, "absent")
		wantErr(t, "update must not create", err, ledger.ErrNotFound)
	})
}

func testListMigrations(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	l, ctx := open(t), t.Context()
	plus5 := time.FixedZone("UTC+5", 5*60*60)
	type rec struct {
		id, db, inst string
		created      time.Time
		state        ledger.State
	}
	// Inserted in this (unsorted) order. m-zone is the earliest instant but
	// the latest wall clock; B-eq and a-eq tie on time and sort bytewise.
	recs := []rec{
		{"m-c", "db1", "i-1", base.Add(2 * time.Second), ledger.Launching},
		{"a-eq", "db2", "i-3", base.Add(3 * time.Second), ledger.Fencing},
		{"m-a", "db1", "i-2", base.Add(time.Second), ledger.Committed},
		{"m-zone", "db3", "i-2", base.Add(500 * time.Millisecond).In(plus5), ledger.RollingBack},
		{"B-eq", "db2", "i-1", base.Add(3 * time.Second), ledger.Aborted},
		{"a-us", "db1", "i-3", base.Add(time.Second + time.Microsecond), ledger.Snapshotting},
	}
	stored := map[string]*ledger.Migration{}
	for _, r := range recs {
		m := fullMigration(r.id)
		m.Database, m.Instance, m.CreatedAt, m.State = r.db, r.inst, r.created, r.state
		must(t, "create "+r.id, l.CreateMigration(ctx, m))
		stored[r.id] = m
	}

	check := func(t *testing.T, q ledger.MigrationQuery, want []string) {
		t.Helper()
		got, err := l.ListMigrations(ctx, q)
		must(t, "list", err)
		ids := make([]string, 0, len(got))
		for _, m := range got {
			ids = append(ids, m.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("ListMigrations(%+v) = %q, want %q", q, ids, want)
		}
		for _, m := range got {
			sameMigration(t, "listed "+m.ID, m, stored[m.ID])
		}
	}

	for _, tc := range []struct {
		name string
		q    ledger.MigrationQuery
		want []string
	}{
		{"All", ledger.MigrationQuery{}, []string{"m-zone", "m-a", "a-us", "m-c", "B-eq", "a-eq"}},
		{"Unfinished", ledger.MigrationQuery{Unfinished: true}, []string{"m-zone", "a-us", "m-c", "a-eq"}},
		{"Database", ledger.MigrationQuery{Database: "db1"}, []string{"m-a", "a-us", "m-c"}},
		{"Instance", ledger.MigrationQuery{Instance: "i-1"}, []string{"m-c", "B-eq"}},
		{"UnfinishedDatabase", ledger.MigrationQuery{Unfinished: true, Database: "db2"}, []string{"a-eq"}},
		{"DatabaseInstance", ledger.MigrationQuery{Database: "db1", Instance: "i-2"}, []string{"m-a"}},
		{"AllFilters", ledger.MigrationQuery{Unfinished: true, Database: "db1", Instance: "i-3"}, []string{"a-us"}},
		{"NoMatch", ledger.MigrationQuery{Database: "nope"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.q, tc.want) })
	}

	// The indexed columns must follow updates, not just the body.
	t.Run("AfterUpdate", func(t *testing.T) {
		m := stored["m-c"]
		m.State = ledger.Committed
		must(t, "update m-c", l.SaveMigration(ctx, m))
		m = stored["a-eq"]
		m.Instance, m.Database = "i-9", "db9"
		must(t, "update a-eq", l.SaveMigration(ctx, m))
		check(t, ledger.MigrationQuery{Unfinished: true}, []string{"m-zone", "a-us", "a-eq"})
		check(t, ledger.MigrationQuery{Instance: "i-9"}, []string{"a-eq"})
		check(t, ledger.MigrationQuery{Database: "db9"}, []string{"a-eq"})
		check(t, ledger.MigrationQuery{Database: "db2"}, []string{"B-eq"})
	})
}
