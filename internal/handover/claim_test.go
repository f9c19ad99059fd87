package handover_test

import (
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

// TestSecondMigrationWaitsForClaim: two launches for one database. The
// second waits in Launching while the first holds the claim, then hands
// over from the first one's new instance under the next epoch.
func TestSecondMigrationWaitsForClaim(t *testing.T) {
	const new2, new2IP = "i-new2", "10.0.0.3"
	e := newEnv(t)
	e.addSource()
	id1 := e.launchNew()
	id2 := e.launch(new2, new2IP, zoneA, "tok-2")

	e.advance(id1)
	e.wantState(id1, ledger.PreCopying)
	e.advance(id2)
	e.wantState(id2, ledger.Launching)
	if db := e.db(); db.Claim != id1 {
		t.Fatalf("claim = %q, want %q", db.Claim, id1)
	}
	if m2 := e.m(id2); m2.Source != "" || m2.SourceFate != "" {
		t.Fatalf("waiting migration picked a source: %q (%s)", m2.Source, m2.SourceFate)
	}

	e.run(id1, ledger.Attaching)
	e.poll(id2)
	e.wantState(id2, ledger.Launching)
	if n := len(e.cloud.CallsOf("CreateSnapshot")); n != 2 {
		t.Fatalf("%d snapshots while the first migration holds the claim, want its 2", n)
	}
	e.run(id1, ledger.Committed)
	first := e.m(id1)

	e.run(id2, ledger.Committed)
	m2 := e.m(id2)
	if m2.Source != newID || m2.SourceVolume != first.Volume || m2.FromEpoch != epoch+1 {
		t.Errorf("second migration from %s/%s at epoch %d, want %s/%s at %d",
			m2.Source, m2.SourceVolume, m2.FromEpoch, newID, first.Volume, epoch+1)
	}
	if f, ep := fenced(e.svc, newIP); !f || ep != epoch+2 {
		t.Errorf("first new instance fenced=%v epoch=%d, want fenced under %d", f, ep, epoch+2)
	}
	if db := e.db(); db.Instance != new2 || db.Volume != m2.Volume || db.Epoch != epoch+2 || db.Claim != "" {
		t.Errorf("database = %+v", *db)
	}
}

// TestClaimOfEndedMigrationIsTakenOver: a claim left by a migration that
// ended (or that the ledger no longer has) does not block the database.
func TestClaimOfEndedMigrationIsTakenOver(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stored bool
	}{{"claimant aborted", true}, {"claimant unknown", false}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.addSource()
			if tt.stored {
				now := e.clk.Now()
				if err := e.led.CreateMigration(e.ctx, &ledger.Migration{
					ID: "tok-dead", Database: database, State: ledger.Aborted, CreatedAt: now, UpdatedAt: now,
				}); err != nil {
					t.Fatal(err)
				}
			}
			db := e.db()
			db.Claim = "tok-dead"
			e.putDB(db)
			id := e.launchNew()
			e.advance(id)
			e.wantState(id, ledger.PreCopying)
			if got := e.db().Claim; got != id {
				t.Errorf("claim = %q, want %q", got, id)
			}
		})
	}
}
