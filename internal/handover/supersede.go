package handover

import (
	"context"
	"fmt"

	"github.com/handover-dev/handover/internal/ledger"
)

// A migration that sent CONTINUE only goes forward, so commit retries its
// failures. One failure no retry cures: the database record moved on past
// the migration while it still waited to commit (in Unfencing, Draining or
// Completing, by cutover). The simulator found it: the commit's database
// write landed, letting the held terminations go failed, so the migration
// stayed where it was to come back for them; in
// the meantime its new instance died (or was replaced), and the
// replacement's migration took the database on and committed the next
// epoch. A claim taken over by another migration before the commit landed
// ends in the same place. Such a migration can never commit now; supersede
// ends it.

// movedOn reports whether db proves it went past m for good: its epoch is
// beyond the one m's commit writes, or holds another volume at that epoch.
// Epochs only increase, so the verdict never turns back, and a stale read
// shows an older record, never a newer epoch: a record mid-change or a read
// race shows m's epoch at most, and commit retries.
func movedOn(m *ledger.Migration, db *ledger.Database) bool {
	if m.SourceFate == FateSelf {
		// Its commit keeps the epoch: any newer one is another migration's.
		return db.Epoch > m.FromEpoch
	}
	mine := m.FromEpoch + 1
	return db.Epoch > mine || (db.Epoch == mine && db.Volume != m.Volume)
}

// supersede ends m, which db proves moved on past it (movedOn): it lets the
// held terminations go, deletes what m created that the database does not
// hold, and ends Committed if m's commit had landed, Aborted if not. It
// never writes the database record, which newer migrations own now, and
// never unfences: the epoch moved on, so lifting a fence could make a
// second writer (invariant single-writer). Safe to repeat: it stays until the clean-up
// is done.
func (c *Controller) supersede(ctx context.Context, m *ledger.Migration, db *ledger.Database) (outcome, error) {
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Database: m.Database})
	if err != nil {
		return outcome{}, fmt.Errorf("listing migrations of database %s: %w", m.Database, err)
	}
	next, landed := successor(m, ms)

	// The holds keep m's source serving reads until the database is handed
	// on. It has been, past m: the migration that moved it on committed
	// once its own instance was in service (or gone), so the held instances
	// serve nobody now.
	released := c.releaseHolds(ctx, m)

	// Force-detaching m's volume is safe because the database has left it.
	// If m's commit landed, the migration that took the database on from
	// it fenced m's instance (or found it dead, or stopped it) before its
	// final snapshot: every write acknowledged on this volume is in the
	// authoritative lineage, none can be acknowledged here any more, and
	// the detach loses nothing. If it never landed, the volume never was
	// authoritative and the lineage went on from elsewhere: what the
	// instance took after CONTINUE is outside the database's history
	// already (the claim that should have kept the other migration out was
	// lost), and keeping the volume would not bring it back. Either way an
	// instance still serving from it serves an epoch the database has left
	// (invariant no-stale-reads), so cutting it off is the safe direction. A FateSelf
	// volume is an earlier migration's, left to the sweeper.
	cleaned := true
	if m.Volume != "" && m.SourceFate != FateSelf && m.Volume != db.Volume {
		if user := reader(m, ms); user != "" {
			// Not expected once the database moved on, but the sweeper's
			// rule too: a volume an unfinished migration names stays.
			c.log.Info("superseded migration's volume is still named by another; waiting", "migration-id", m.ID, "volume", m.Volume, "by", user)
			cleaned = false
		} else {
			done, err := c.dropVolume(ctx, m, m.Volume)
			if err != nil {
				return outcome{}, err
			}
			cleaned = done
		}
	}
	if cleaned {
		// The snapshots: the database's base is kept; m's final one, if m
		// committed, stopped being the base when the next commit landed.
		done, err := c.dropTagged(ctx, m, db)
		if err != nil {
			return outcome{}, err
		}
		cleaned = done
		// The next commit deletes the base it replaces, so the tag lookup
		// no longer finds m's final snapshot; settle its record too (a
		// snapshot already gone counts as deleted).
		for _, r := range m.Resources {
			if cleaned && r.Kind == ledger.KindSnapshot && !r.Deleted && r.ID != db.BaseSnapshot {
				cleaned = c.deleteSnapshot(ctx, m, r.ID)
			}
		}
	}
	switch {
	case !cleaned:
		return stay(c.cfg.PollInterval) // a detach or a deletion is under way
	case !released:
		return stay(c.cfg.RetryBase)
	}

	now := holder(m, db, ms)
	if landed {
		// Committed: its volume was authoritative under its epoch, and the
		// database moved on from there as from any commit.
		if next == "" {
			next = now
		}
		return goTo(ledger.Committed, fmt.Sprintf("volume %s authoritative under epoch %d, then superseded by migration %s (database %s now at epoch %d on volume %s)",
			m.Volume, m.FromEpoch+epochStep(m), next, m.Database, db.Epoch, db.Volume))
	}
	// Aborted: nothing of it ever became authoritative. (Its hook got
	// CONTINUE all the same; Result keeps saying so.)
	m.LastError = fmt.Sprintf("superseded by migration %s before its commit landed: database %s moved on to epoch %d on volume %s",
		now, m.Database, db.Epoch, db.Volume)
	return goTo(ledger.Aborted, m.LastError)
}

// reader returns an unfinished migration other than m that names m's
// volume, if any.
func reader(m *ledger.Migration, ms []*ledger.Migration) string {
	for _, o := range ms {
		if o.ID != m.ID && !o.State.Terminal() && (o.SourceVolume == m.Volume || o.Volume == m.Volume) {
			return o.ID
		}
	}
	return ""
}

// epochStep is how much m's commit raises the epoch.
func epochStep(m *ledger.Migration) int64 {
	if m.SourceFate == FateSelf {
		return 0
	}
	return 1
}

// successor finds the migration that took the database on from m, and so
// whether m's commit had landed. A migration records the database as it
// claimed it; one that started from m's volume under the epoch m's commit
// writes saw the record holding them, and only m's commit writes m's
// volume there. The ledger keeps every migration, so a commit that landed
// always has one: the database could not have moved on from m without it.
//
// A FateSelf migration counts as landed either way: its commit moves
// neither the volume nor the epoch, so the next migration found the same
// record whether it landed or not, and the instance did hold the
// authoritative volume under m's epoch.
func successor(m *ledger.Migration, ms []*ledger.Migration) (id string, landed bool) {
	if m.SourceFate == FateSelf {
		return "", true
	}
	for _, o := range ms {
		if o.ID != m.ID && o.SourceVolume == m.Volume && o.FromEpoch == m.FromEpoch+1 {
			return o.ID, true
		}
	}
	return "", false
}

// holder names the migration that has the database now, for the note: its
// claimant, else the last one to commit its volume.
func holder(m *ledger.Migration, db *ledger.Database, ms []*ledger.Migration) string {
	if db.Claim != "" {
		return db.Claim
	}
	by := "(unknown)"
	for _, o := range ms {
		if o.ID != m.ID && o.Volume == db.Volume && o.Instance == db.Instance {
			by = o.ID // ms is oldest first: the last match committed last
		}
	}
	return by
}
