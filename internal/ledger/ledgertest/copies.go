package ledgertest

import (
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

// testCopies checks that a backend never aliases a caller's value: mutating
// what was passed in or handed out must not change the store. The SQL
// backends pass trivially; the memory backend is the one this guards.
func testCopies(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	scribble := func(m *ledger.Migration) {
		m.Group = "scribbled"
		m.Resources[0].ID = "scribbled"
		m.Resources = append(m.Resources, ledger.Resource{ID: "scribbled"})
		m.Timeline[0].Note = "scribbled"
		m.TerminateHolds[0].Token = "scribbled"
		m.Pool[0] = "scribbled"
	}

	t.Run("Migration", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		m := fullMigration("tok-1")
		must(t, "create", l.CreateMigration(ctx, m))
		want := m.Clone()
		check := func(what string) {
			t.Helper()
			got, err := l.GetMigration(ctx, "tok-1")
			must(t, "get", err)
			sameMigration(t, what, got, want)
		}

		scribble(m)
		check("after mutating the created value")

		got, err := l.GetMigration(ctx, "tok-1")
		must(t, "get", err)
		scribble(got)
		check("after mutating a got value")

		list, err := l.ListMigrations(ctx, ledger.MigrationQuery{})
		must(t, "list", err)
		scribble(list[0])
		check("after mutating a listed value")

		upd := want.Clone()
		must(t, "update", l.SaveMigration(ctx, upd))
		want.Version = upd.Version
		scribble(upd)
		check("after mutating an updated value")
	})

	t.Run("Update", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		u := fullUpdate("upd-1")
		must(t, "create", l.CreateUpdate(ctx, u))
		want := u.Clone()
		check := func(what string) {
			t.Helper()
			got, err := l.GetUpdate(ctx, "upd-1")
			must(t, "get", err)
			sameUpdate(t, what, got, want)
		}
		scribble := func(u *ledger.Update) {
			u.Group = "scribbled"
			u.Spec.Template.ID = "scribbled"
			u.Batches[0][0] = "scribbled"
			u.Batches = append(u.Batches, []string{"scribbled"})
			u.Replacements[0].New = "scribbled"
			u.Signals["i-0e"] = "scribbled"
			u.Signals["scribbled"] = "SUCCESS"
			u.MigrationOld[0] = "scribbled"
			u.Timeline[0].Note = "scribbled"
		}

		scribble(u)
		check("after mutating the created value")

		got, err := l.GetUpdate(ctx, "upd-1")
		must(t, "get", err)
		scribble(got)
		check("after mutating a got value")

		list, err := l.ListUpdates(ctx, ledger.UpdateQuery{})
		must(t, "list", err)
		scribble(list[0])
		check("after mutating a listed value")

		saved := want.Clone()
		must(t, "save", l.SaveUpdate(ctx, saved))
		want.Version = saved.Version
		scribble(saved)
		check("after mutating a saved value")
	})

	t.Run("Database", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		d := fullDatabase("orders")
		must(t, "put", l.SaveDatabase(ctx, d))
		want := d.Clone()
		check := func(what string) {
			t.Helper()
			got, err := l.GetDatabase(ctx, "orders")
			must(t, "get", err)
			sameDatabase(t, what, got, want)
		}
		d.Volume = "scribbled"
		check("after mutating the put value")
		got, err := l.GetDatabase(ctx, "orders")
		must(t, "get", err)
		got.Volume = "scribbled"
		check("after mutating a got value")
		list, err := l.ListDatabases(ctx)
		must(t, "list", err)
		list[0].Volume = "scribbled"
		check("after mutating a listed value")
	})
}
