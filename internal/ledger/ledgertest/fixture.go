package ledgertest

import (
	"context"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// The upgrade fixture: a ledger as a released handover left it, with one
// record of every kind, a finished and an unfinished migration, an event
// mark and a lease. WriteFixture made the committed SQLite file under
// internal/ledger/sqlite/testdata with the code of that release, and the
// PostgreSQL upgrade test copies that file's rows into a database of the
// old schema. CheckFixture is what every later release must still read.

// fixtureLease is the lease WriteFixture takes.
const fixtureLease = "migration/tok-fixture-open"

// fixtureExpiry is far enough ahead that the fixture's event and lease stay
// live whenever the test runs.
var fixtureExpiry = time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteFixture fills an empty ledger with the fixture.
func WriteFixture(t *testing.T, l ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	open := fullMigration("tok-fixture-open")
	must(t, "creating the open migration", l.CreateMigration(ctx, open))
	done := fullMigration("tok-fixture-done")
	done.State = ledger.Committed
	done.Instance = "i-0done"
	done.Database = "billing"
	done.CreatedAt = base.Add(-time.Hour)
	must(t, "creating the finished migration", l.CreateMigration(ctx, done))
	must(t, "creating the database", l.SaveDatabase(ctx, fullDatabase("orders")))
	u := fullUpdate("upd-fixture")
	must(t, "creating the update", l.CreateUpdate(ctx, u))
	if _, err := l.MarkEvent(ctx, "evt-fixture", base, fixtureExpiry); err != nil {
		t.Fatalf("marking the event: %v", err)
	}
	// Twice by two holders, so the token is 2 and a reader can tell it
	// survived.
	l1, err := l.AcquireLease(ctx, fixtureLease, "ctl-a", base, time.Second)
	must(t, "taking the lease", err)
	must(t, "releasing the lease", l.ReleaseLease(ctx, l1))
	_, err = l.AcquireLease(ctx, fixtureLease, "ctl-b", base, fixtureExpiry.Sub(base))
	must(t, "taking the lease again", err)
}

// CheckFixture fails unless l holds exactly what WriteFixture wrote.
func CheckFixture(t *testing.T, l ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	got, err := l.GetMigration(ctx, "tok-fixture-open")
	must(t, "reading the open migration", err)
	want := fullMigration("tok-fixture-open")
	want.Version = 1
	// Fields added since the fixture was written read back as zero.
	want.Cutover, want.Retired, want.NewUnfenced, want.DrainStarted, want.Channel = "", false, false, false, ""
	sameMigration(t, "open migration", got, want)

	all, err := l.ListMigrations(ctx, ledger.MigrationQuery{})
	must(t, "listing migrations", err)
	if len(all) != 2 || all[0].ID != "tok-fixture-done" || all[1].ID != "tok-fixture-open" {
		t.Errorf("listing migrations: got %d (%v), want tok-fixture-done then tok-fixture-open", len(all), ids(all))
	}
	open, err := l.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	must(t, "listing unfinished migrations", err)
	if len(open) != 1 || open[0].ID != "tok-fixture-open" {
		t.Errorf("listing unfinished migrations: got %v, want [tok-fixture-open]", ids(open))
	}
	byDB, err := l.ListMigrations(ctx, ledger.MigrationQuery{Database: "billing"})
	must(t, "listing migrations of billing", err)
	if len(byDB) != 1 || byDB[0].ID != "tok-fixture-done" {
		t.Errorf("listing migrations of billing: got %v, want [tok-fixture-done]", ids(byDB))
	}
	byInst, err := l.ListMigrations(ctx, ledger.MigrationQuery{Instance: "i-0new"})
	must(t, "listing migrations of i-0new", err)
	if len(byInst) != 1 || byInst[0].ID != "tok-fixture-open" {
		t.Errorf("listing migrations of i-0new: got %v, want [tok-fixture-open]", ids(byInst))
	}

	d, err := l.GetDatabase(ctx, "orders")
	must(t, "reading the database", err)
	wd := fullDatabase("orders")
	wd.Version = 1
	wd.SeedSnapshot = ""                         // the fixture's handover had no per-database seed
	wd.DroppedAt, wd.DroppedBy = time.Time{}, "" // nor dropped databases
	sameDatabase(t, "database", d, wd)

	u, err := l.GetUpdate(ctx, "upd-fixture")
	must(t, "reading the update", err)
	wu := fullUpdate("upd-fixture")
	wu.Version = 1
	sameUpdate(t, "update", u, wu)
	ups, err := l.ListUpdates(ctx, ledger.UpdateQuery{Group: wu.Group})
	must(t, "listing updates of the group", err)
	if len(ups) != 1 {
		t.Errorf("listing updates of %s: got %d, want 1", wu.Group, len(ups))
	}

	seen, err := l.EventSeen(ctx, "evt-fixture", base)
	must(t, "looking up the event", err)
	if !seen {
		t.Error("the fixture's event mark is gone")
	}
	_, err = l.AcquireLease(ctx, fixtureLease, "ctl-c", base, time.Second)
	wantErr(t, "taking the fixture's lease from another holder", err, ledger.ErrLeaseHeld)
	lease, err := l.AcquireLease(ctx, fixtureLease, "ctl-b", base, time.Second)
	must(t, "renewing the fixture's lease as its holder", err)
	if lease.Token != 2 {
		t.Errorf("fixture lease token = %d, want 2", lease.Token)
	}

	// The upgraded ledger must go on working: a compare-and-set on an old
	// record and a new record of each kind.
	got.State = ledger.Completing
	must(t, "saving the upgraded migration", l.SaveMigration(ctx, got))
	if got.Version != 2 {
		t.Errorf("version after the first save of an upgraded migration = %d, want 2", got.Version)
	}
}

func ids(ms []*ledger.Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
