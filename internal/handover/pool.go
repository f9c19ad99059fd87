package handover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
)

// pick chooses the database of m's pool that the new instance should hold:
// the one it already holds (leaving Standby); else one whose instance is
// gone, terminating or unhealthy (its data is out of reach, the most
// urgent); else one a group update asked to move; else one that never had
// an instance (first boot). It returns "" with the reason when none needs
// an instance yet: the migration waits in Launching, and its step timeout
// ends the launch if none ever does.
func (c *Controller) pick(ctx context.Context, m *ledger.Migration) (id, why string, err error) {
	dbs, err := c.led.ListDatabases(ctx)
	if err != nil {
		return "", "", fmt.Errorf("listing databases to pick one of pool %v: %w", m.Pool, err)
	}
	byID := make(map[string]*ledger.Database, len(dbs))
	for _, db := range dbs {
		byID[db.ID] = db
	}
	members := map[string]map[string]GroupMember{} // group → instance → member; nil when the group is gone
	var orphaned, marked, fresh []string
	for _, id := range m.Pool {
		db, ok := byID[id]
		if !ok {
			fresh = append(fresh, id)
			continue
		}
		if db.Dropped() {
			continue // its environment is deleted: nothing boots it again
		}
		if db.Claim != "" && db.Claim != m.ID {
			other, err := c.led.GetMigration(ctx, db.Claim)
			if err != nil && !errors.Is(err, ledger.ErrNotFound) {
				return "", "", fmt.Errorf("reading claimant %s of database %s: %w", db.Claim, id, err)
			}
			if err == nil && !other.State.Terminal() {
				if db.Instance == m.Instance && db.Instance != "" {
					// Its own database is moving away from it: wait rather
					// than take another one onto the device it still uses.
					return "", fmt.Sprintf("database %s this instance holds is being moved by migration %s", id, db.Claim), nil
				}
				continue // being moved already
			}
		}
		kind, err := c.need(ctx, m, db, members)
		if err != nil {
			return "", "", err
		}
		switch kind {
		case needSelf:
			return id, "", nil
		case needFresh:
			fresh = append(fresh, id)
		case needOrphaned:
			orphaned = append(orphaned, id)
		case needMarked:
			marked = append(marked, id)
		}
	}
	for _, l := range [][]string{orphaned, marked, fresh} {
		if len(l) > 0 {
			return l[0], "", nil
		}
	}
	return "", fmt.Sprintf("no database of the pool %s needs an instance: each is held by a healthy instance or being moved", poolString(m.Pool)), nil
}

// Why a pool database needs the new instance (needNone: it does not).
const (
	needNone = iota
	needSelf
	needOrphaned
	needMarked
	needFresh
)

// need classifies an unclaimed (or stale-claimed) pool database for m.
func (c *Controller) need(ctx context.Context, m *ledger.Migration, db *ledger.Database, members map[string]map[string]GroupMember) (int, error) {
	switch {
	case db.Instance == m.Instance && db.Instance != "":
		return needSelf, nil
	case db.Volume == "" && db.Instance == "":
		return needFresh, nil
	case len(db.TerminateHolds) > 0 || db.Instance == "":
		return needOrphaned, nil
	}
	lost, err := c.holderLost(ctx, db, members)
	switch {
	case err != nil:
		return needNone, err
	case lost:
		return needOrphaned, nil
	case db.ReplaceBy != "":
		return needMarked, nil
	}
	return needNone, nil
}

// stillNeeded re-checks, right before a pool migration claims it, that the
// database it picked earlier still needs an instance: between the pick and
// the claim (an attempt that failed, a restart) another instance may have
// taken it and committed — claiming it then would take a healthy
// instance's database away.
func (c *Controller) stillNeeded(ctx context.Context, m *ledger.Migration, db *ledger.Database) (bool, error) {
	kind, err := c.need(ctx, m, db, map[string]map[string]GroupMember{})
	return kind != needNone, err
}

// holderLost reports whether db's instance has left its group, is
// terminating, or is unhealthy: a replacement should take its database.
func (c *Controller) holderLost(ctx context.Context, db *ledger.Database, members map[string]map[string]GroupMember) (bool, error) {
	byInst, seen := members[db.Group]
	if !seen {
		list, err := c.cloud.GroupMembers(ctx, db.Group)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return false, fmt.Errorf("listing group %s to see whether instance %s still holds database %s: %w", db.Group, db.Instance, db.ID, err)
		default:
			byInst = make(map[string]GroupMember, len(list))
			for _, mb := range list {
				byInst[mb.Instance] = mb
			}
		}
		members[db.Group] = byInst
	}
	mb, ok := byInst[db.Instance]
	if ok {
		// A zone taken out of the group is rebalanced launch first: the
		// new instance must take the database while the old one still
		// serves, or the rebalance waits on it forever.
		lost := strings.HasPrefix(mb.Lifecycle, "Terminat") || strings.HasPrefix(mb.Lifecycle, "Detach") || mb.Health == "Unhealthy" || mb.OutOfZone
		if lost {
			c.log.Info("database's instance is leaving its group; a new instance takes the database",
				"database", db.ID, "instance", db.Instance, "lifecycle", mb.Lifecycle, "health", mb.Health, "out-of-zone", mb.OutOfZone)
		}
		return lost, nil
	}
	// Not listed (or the group is gone): only an instance that is no
	// longer running has lost its database. Taking one from a running
	// instance would fence it, so a listing that merely lags must not.
	inst, err := c.describeInstance(ctx, db.Instance)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (gone(inst.State) || inst.State == InstanceStopped || inst.State == InstanceStopping)):
		c.log.Info("database's instance is gone; a new instance takes the database", "database", db.ID, "instance", db.Instance, "state", inst.State)
		return true, nil
	case err != nil:
		return false, fmt.Errorf("describing instance %s that holds database %s: %w", db.Instance, db.ID, err)
	}
	c.log.Debug("database's instance is running but not listed in its group; leaving it there", "database", db.ID, "instance", db.Instance, "group", db.Group)
	return false, nil
}

// updateOf splits a migration's Update into the update id and whether the
// migration serves that update's rollback (marked "ID#rollback"): a
// rollback's own migrations never roll back because the update does.
func updateOf(ref string) (id string, rollback bool) {
	id, suffix, _ := strings.Cut(ref, "#")
	return id, suffix == "rollback"
}

// updateAborting reports why m should roll back because the group update
// that asked for it is rolling back ("" when it should go on).
func (c *Controller) updateAborting(ctx context.Context, m *ledger.Migration) (string, error) {
	id, rollback := updateOf(m.Update)
	if id == "" || rollback {
		return "", nil
	}
	u, err := c.led.GetUpdate(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading update %s of migration %s: %w", id, m.ID, err)
	}
	if u.State == ledger.UpdateRollingBack {
		return fmt.Sprintf("update %s is rolling back: %s", id, u.Error), nil
	}
	return "", nil
}

// gateOpen reports whether a gated migration may complete its hook: its
// update opened the gates, or has ended (a stale mark holds nothing).
func (c *Controller) gateOpen(ctx context.Context, m *ledger.Migration) (bool, string, error) {
	id, _ := updateOf(m.Update)
	u, err := c.led.GetUpdate(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return true, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("reading update %s of migration %s: %w", id, m.ID, err)
	}
	if u.GatesOpen || u.State.Terminal() {
		return true, "", nil
	}
	ok := 0
	for _, s := range u.Signals {
		if s == SignalSuccess {
			ok++
		}
	}
	return false, fmt.Sprintf("healthy; waiting for update %s to open its gate (%d of %d success signals)", id, ok, u.OldDesired), nil
}

// Signal statuses an instance sends with `handover signal`.
const (
	SignalSuccess = "SUCCESS"
	SignalFailure = "FAILURE"
)

// poolString names a pool in an error, shortened for a large one.
func poolString(pool []string) string {
	if len(pool) <= 6 {
		return "[" + strings.Join(pool, " ") + "]"
	}
	return fmt.Sprintf("[%s … %s] (%d)", strings.Join(pool[:3], " "), pool[len(pool)-1], len(pool))
}
