package update

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// mark is what the update writes into Database.ReplaceBy: its id, with
// "#rollback" while it rolls a group back.
func mark(u *ledger.Update) string {
	if u.State == ledger.UpdateRollingBack {
		return u.ID + "#rollback"
	}
	return u.ID
}

// target is the version this pass rolls out.
func target(u *ledger.Update) ledger.TemplateRef {
	if u.State == ledger.UpdateRollingBack {
		return u.OldTemplate
	}
	return u.Spec.Template
}

// markDatabases marks the databases the given instances hold for moving,
// and returns their replacements.
func (r *Runner) markDatabases(ctx context.Context, u *ledger.Update, instances []string, gated bool) ([]ledger.Replacement, error) {
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	var reps []ledger.Replacement
	for _, id := range instances {
		rep := ledger.Replacement{Batch: u.Batch, Old: id}
		for _, db := range dbs {
			if db.Instance != id {
				continue
			}
			rep.Database = db.ID
			if db.ReplaceBy == mark(u) && db.Gated == gated {
				break
			}
			if err := r.setMark(ctx, db.ID, mark(u), gated); err != nil {
				return nil, err
			}
			break
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// setMark sets (or with by == "" clears) a database's ReplaceBy.
func (r *Runner) setMark(ctx context.Context, id, by string, gated bool) error {
	for range 8 {
		db, err := r.led.GetDatabase(ctx, id)
		if err != nil {
			return fmt.Errorf("reading database %s: %w", id, err)
		}
		if db.ReplaceBy == by && db.Gated == gated {
			return nil
		}
		db.ReplaceBy, db.Gated = by, gated && by != ""
		db.UpdatedAt = r.clk.Now()
		err = r.led.SaveDatabase(ctx, db)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("marking database %s for update: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("marking database %s for update: %w", id, ledger.ErrConflict)
}

// clearMarks removes every mark of u (forward and rollback). A migration
// that claimed a marked database already copied the mark, so clearing it
// changes nothing for that migration.
func (r *Runner) clearMarks(ctx context.Context, u *ledger.Update) error {
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if db.ReplaceBy == u.ID || db.ReplaceBy == u.ID+"#rollback" {
			if err := r.setMark(ctx, db.ID, "", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// abortedSince returns u's migrations (of this pass) that rolled back
// since since.
func (r *Runner) abortedSince(ctx context.Context, u *ledger.Update, since time.Time) ([]*ledger.Migration, error) {
	ms, err := r.led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	var aborted []*ledger.Migration
	for _, m := range ms {
		if m.Update == mark(u) && m.State == ledger.Aborted && !m.UpdatedAt.Before(since) {
			aborted = append(aborted, m)
		}
	}
	return aborted, nil
}

// forwardMigrations returns the unfinished migrations of u's forward pass.
func (r *Runner) forwardMigrations(ctx context.Context, u *ledger.Update) ([]*ledger.Migration, error) {
	ms, err := r.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing unfinished migrations: %w", err)
	}
	var out []*ledger.Migration
	for _, m := range ms {
		if m.Update == u.ID {
			out = append(out, m)
		}
	}
	return out, nil
}
