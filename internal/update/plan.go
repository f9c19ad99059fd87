package update

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Plan is what an update will do, as --dry-run prints it.
type Plan struct {
	Group          string             `json:"group"`
	Strategy       string             `json:"strategy"`
	From           ledger.TemplateRef `json:"from"`
	To             ledger.TemplateRef `json:"to"`
	Capacity       int32              `json:"capacity"` // N: desired capacity now
	NewGroup       string             `json:"new_group,omitempty"`
	MigrationGroup string             `json:"migration_group,omitempty"`
	Steps          []PlanStep         `json:"steps"`
}

// PlanStep is one step of a plan.
type PlanStep struct {
	Phase     Phase          `json:"phase"`
	Batch     int            `json:"batch,omitempty"`
	Instances []PlanInstance `json:"instances,omitempty"`
	WaitsFor  string         `json:"waits_for"`
}

// PlanInstance is an instance a step replaces.
type PlanInstance struct {
	ID       string `json:"id"`
	Zone     string `json:"zone,omitempty"`
	Database string `json:"database,omitempty"`
}

// Plan works out what req would do without changing anything. A request
// with --image-id plans the new launch template version it would create.
func (r *Runner) Plan(ctx context.Context, req Request) (Plan, error) {
	p, _, err := r.plan(ctx, req, false)
	return p, err
}

func (r *Runner) plan(ctx context.Context, req Request, create bool) (Plan, Group, error) {
	if err := req.Validate(); err != nil {
		return Plan{}, Group{}, err
	}
	g, err := r.cloud.DescribeGroup(ctx, req.Group)
	if errors.Is(err, handover.ErrNotFound) {
		return Plan{}, Group{}, fmt.Errorf("group %s does not exist: check --group (and --region)", req.Group)
	}
	if err != nil {
		return Plan{}, Group{}, err
	}
	if err := launchesFromTemplate(g, "group"); err != nil {
		return Plan{}, Group{}, err
	}
	from := g.Template
	if from.Version, err = r.fromVersion(ctx, g); err != nil {
		return Plan{}, Group{}, fmt.Errorf("resolving the version group %s runs: %w", req.Group, err)
	}
	to := from
	switch {
	case req.ImageID != "":
		// A placeholder no instance runs; Start creates the version once
		// every check passed, so a refused request leaves none behind.
		to.Version = "(new version of " + from.Version + " with image " + req.ImageID + ")"
	default:
		to.Version = req.Version
		if to.Version == "" {
			to.Version = "$Latest"
		}
		if to.Version, err = r.cloud.ResolveVersion(ctx, to); err != nil {
			return Plan{}, Group{}, fmt.Errorf("resolving --launch-template-version %s: %w", req.Version, err)
		}
	}
	p := Plan{Group: g.Name, Strategy: req.Strategy, From: from, To: to, Capacity: g.Desired, MigrationGroup: req.MigrationGroup}
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return Plan{}, Group{}, fmt.Errorf("listing databases: %w", err)
	}
	holds := map[string]string{}
	for _, db := range dbs {
		if db.Instance != "" {
			holds[db.Instance] = db.ID
		}
	}
	if req.MigrationGroup != "" {
		mg, err := r.cloud.DescribeGroup(ctx, req.MigrationGroup)
		if errors.Is(err, handover.ErrNotFound) {
			return Plan{}, Group{}, fmt.Errorf("migration group %s does not exist: check --migration-group", req.MigrationGroup)
		}
		if err != nil {
			return Plan{}, Group{}, err
		}
		// The migration group is rolled to a template version too.
		if err := launchesFromTemplate(mg, "migration group"); err != nil {
			return Plan{}, Group{}, err
		}
		step := PlanStep{Phase: PhaseMigrationGroup, WaitsFor: fmt.Sprintf("a SUCCESS signal from a new instance of %s within %s; then its old instances are terminated", mg.Name, req.MigrationTimeout)}
		for _, m := range mg.Instances {
			step.Instances = append(step.Instances, PlanInstance{ID: m.ID, Zone: m.Zone, Database: holds[m.ID]})
		}
		p.Steps = append(p.Steps, step)
	}
	switch req.Strategy {
	case Rolling:
		batches, err := rollingBatches(g, to.Version, req)
		if err != nil {
			return Plan{}, Group{}, err
		}
		for i, b := range batches {
			step := PlanStep{Phase: PhaseBatch, Batch: i + 1, WaitsFor: fmt.Sprintf("%d new instance(s) on version %s in service and every database of the batch handed over; then the old ones are terminated", len(b), to.Version)}
			if req.Bake > 0 {
				step.WaitsFor += fmt.Sprintf("; bake %s", req.Bake)
			}
			if req.Pause > 0 && i < len(batches)-1 {
				step.WaitsFor += fmt.Sprintf("; pause %s", req.Pause)
			}
			for _, id := range b {
				m, _ := member(g, id)
				step.Instances = append(step.Instances, PlanInstance{ID: id, Zone: m.Zone, Database: holds[id]})
			}
			p.Steps = append(p.Steps, step)
		}
	case ReplaceAll:
		if g.Desired == 0 {
			return Plan{}, Group{}, fmt.Errorf("group %s has desired capacity 0: nothing to replace", g.Name)
		}
		step := PlanStep{Phase: PhaseLaunch, WaitsFor: fmt.Sprintf("%d SUCCESS signals from the new group's instances within %s (launched in batches of 10); any FAILURE rolls back", g.Desired, req.SignalTimeout)}
		for _, m := range g.Instances {
			step.Instances = append(step.Instances, PlanInstance{ID: m.ID, Zone: m.Zone, Database: holds[m.ID]})
		}
		p.Steps = append(p.Steps,
			step,
			PlanStep{Phase: PhaseCutover, WaitsFor: "every database handed over to the new group's instances, in service"},
			PlanStep{Phase: PhaseDeleteOld, WaitsFor: "group " + g.Name + " deleted"})
	}
	if req.MigrationGroup != "" {
		p.Steps = append(p.Steps, PlanStep{Phase: PhaseCleanup, WaitsFor: "migration group " + req.MigrationGroup + " scaled to 0"})
	}
	if create && req.ImageID != "" {
		if p.To.Version, err = r.cloud.NewTemplateVersion(ctx, from, req.ImageID); err != nil {
			return Plan{}, Group{}, err
		}
	}
	return p, g, nil
}

// fromVersion is the version a rollback returns to: the group's, when it
// names a number; on $Latest or $Default (which may already point at the
// version being rolled out), the number most of its instances run.
func (r *Runner) fromVersion(ctx context.Context, g Group) (string, error) {
	if _, err := strconv.Atoi(g.Template.Version); err == nil {
		return g.Template.Version, nil
	}
	count := map[string]int{}
	best := ""
	for _, m := range g.Instances {
		if _, err := strconv.Atoi(m.Version); err != nil || isLeaving(m.Lifecycle) {
			continue
		}
		count[m.Version]++
		if c := count[m.Version]; c > count[best] || (c == count[best] && atoi(m.Version) < atoi(best)) {
			best = m.Version
		}
	}
	if best != "" {
		return best, nil
	}
	return r.cloud.ResolveVersion(ctx, g.Template)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// launchesFromTemplate refuses a group that handover update cannot roll:
// updates roll out launch template versions, and a group on a launch
// configuration (or on neither) has none. The message says how to move it.
func launchesFromTemplate(g Group, role string) error {
	if g.Template.ID != "" || g.Template.Name != "" {
		return nil
	}
	if g.LaunchConfiguration == "" {
		return fmt.Errorf("%s %s does not use a launch template; handover update rolls out launch template versions: give the group one (aws autoscaling update-auto-scaling-group --auto-scaling-group-name %s --launch-template LaunchTemplateName=NAME,Version='$Latest')", role, g.Name, g.Name)
	}
	return fmt.Errorf("%s %s launches from launch configuration %s, and handover update rolls out launch template versions: "+
		"make a launch template with the configuration's image, instance type and user data (aws ec2 create-launch-template --launch-template-name %s --launch-template-data '{\"ImageId\":\"…\",\"InstanceType\":\"…\",\"UserData\":\"…\"}'), "+
		"move the group to it (aws autoscaling update-auto-scaling-group --auto-scaling-group-name %s --launch-template LaunchTemplateName=%s,Version='$Latest'), then run the update again",
		role, g.Name, g.LaunchConfiguration, g.Name, g.Name, g.Name)
}
