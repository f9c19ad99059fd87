package ledgertest

import (
	"slices"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

func testDatabases(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("FixtureComplete", func(t *testing.T) {
		checkAllSet(t, fullDatabase("d"), "Version")
	})

	t.Run("GetNotFound", func(t *testing.T) {
		_, err := open(t).GetDatabase(t.Context(), "nope")
		wantErr(t, "get absent", err, ledger.ErrNotFound)
	})

	t.Run("CreateCASConflicts", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		d := fullDatabase("orders")
		must(t, "create", l.SaveDatabase(ctx, d))
		if d.Version != 1 {
			t.Fatalf("after create d.Version = %d, want 1", d.Version)
		}
		got, err := l.GetDatabase(ctx, "orders")
		must(t, "get", err)
		sameDatabase(t, "round trip of every field", got, d)

		// The interface documents ErrConflict (not ErrExists) here: the
		// caller lost a race to create, exactly like a lost CAS.
		again := fullDatabase("orders")
		again.Epoch = 100
		wantErr(t, "second create", l.SaveDatabase(ctx, again), ledger.ErrConflict)
		if again.Version != 0 {
			t.Errorf("failed create changed Version to %d", again.Version)
		}

		stale := d.Clone()
		d.Epoch, d.Volume, d.Claim = 8, "vol-0next", ""
		must(t, "put at version 1", l.SaveDatabase(ctx, d))
		if d.Version != 2 {
			t.Fatalf("after put d.Version = %d, want 2", d.Version)
		}
		stale.Claim = "tok-stale"
		wantErr(t, "put at stale version", l.SaveDatabase(ctx, stale), ledger.ErrConflict)
		if stale.Version != 1 {
			t.Errorf("failed put changed Version to %d", stale.Version)
		}
		got, err = l.GetDatabase(ctx, "orders")
		must(t, "get", err)
		sameDatabase(t, "after rejected puts", got, d)
	})

	t.Run("UpdateNotFound", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		d := fullDatabase("absent")
		d.Version = 3
		wantErr(t, "put absent at version 3", l.SaveDatabase(ctx, d), ledger.ErrNotFound)
		_, err := l.GetDatabase(ctx, "absent")
		wantErr(t, "put must not create", err, ledger.ErrNotFound)
	})

	t.Run("ListOrderedByID", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		got, err := l.ListDatabases(ctx)
		must(t, "list empty", err)
		if len(got) != 0 {
			t.Fatalf("empty ledger lists %d databases", len(got))
		}
		// Bytewise order: upper case before lower, a prefix before its
		// extensions — a locale collation would disagree.
		for _, id := range []string{"b", "c-1", "a", "A", "c", "a_b", "a-b"} {
			d := fullDatabase(id)
			must(t, "create "+id, l.SaveDatabase(ctx, d))
		}
		got, err = l.ListDatabases(ctx)
		must(t, "list", err)
		ids := []string{}
		for _, d := range got {
			ids = append(ids, d.ID)
			if d.Version != 1 || d.Epoch != 7 {
				t.Errorf("listed %s with version %d epoch %d, want 1 and 7", d.ID, d.Version, d.Epoch)
			}
		}
		want := []string{"A", "a", "a-b", "a_b", "b", "c", "c-1"}
		if !slices.Equal(ids, want) {
			t.Errorf("ListDatabases = %q, want %q", ids, want)
		}
	})
}
