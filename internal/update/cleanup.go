package update

import (
	"context"
	"errors"
	"strings"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// stepCleanup ends a successful update: capacity as it was, the migration
// group scaled to 0.
func (r *Runner) stepCleanup(ctx context.Context, u *ledger.Update) (bool, error) {
	if u.Spec.Strategy == Rolling {
		if err := r.cloud.SetCapacity(ctx, u.Group, u.OldMin, u.OldMax, u.OldDesired); err != nil {
			return false, err
		}
		if err := r.restoreSymbolic(ctx, u, u.Group); err != nil {
			return false, err
		}
	}
	if name := u.Spec.MigrationGroup; name != "" {
		mg, err := r.cloud.DescribeGroup(ctx, name)
		switch {
		case errors.Is(err, handover.ErrNotFound):
		case err != nil:
			return false, err
		case mg.Desired != 0 || mg.Min != 0 || (u.MigrationOldMax > 0 && mg.Max != u.MigrationOldMax):
			mx := mg.Max
			if u.MigrationOldMax > 0 {
				mx = u.MigrationOldMax
			}
			if err := r.cloud.SetCapacity(ctx, name, 0, mx, 0); err != nil {
				return false, err
			}
		}
	}
	if err := r.clearMarks(ctx, u); err != nil {
		return false, err
	}
	r.finish(u)
	return false, nil
}

// restoreSymbolic points a group that followed $Latest or $Default back at
// it once the update succeeded, if it still names the version rolled out.
// After a rollback the group keeps the old version's number: $Latest would
// be the version that failed.
func (r *Runner) restoreSymbolic(ctx context.Context, u *ledger.Update, group string) error {
	if u.OldGroupVersion == "" || !strings.HasPrefix(u.OldGroupVersion, "$") || !u.TemplateSet {
		return nil
	}
	t := u.Spec.Template
	t.Version = u.OldGroupVersion
	v, err := r.cloud.ResolveVersion(ctx, t)
	if err != nil || v != u.Spec.Template.Version {
		return err
	}
	return r.cloud.SetTemplate(ctx, group, t)
}
