package demo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/handover"
)

// Scenarios, in the order `--scenario all` runs them.
const (
	ScenarioUpdate    = "update"
	ScenarioUnhealthy = "unhealthy"
	ScenarioAZMove    = "az-move"
)

// Scenarios lists every scenario.
var Scenarios = []string{ScenarioUpdate, ScenarioUnhealthy, ScenarioAZMove}

// Result is one scenario's outcome, as `--output json` prints it.
type Result struct {
	Scenario     string         `json:"scenario"`
	OK           bool           `json:"ok"`
	Problems     []string       `json:"problems,omitempty"`
	WritePauseMS int64          `json:"write_pause_ms"`
	ReadsOK      int64          `json:"reads_ok"`
	ReadsFailed  int64          `json:"reads_failed"`
	ReadFailures map[string]int `json:"read_failures,omitempty"`
	// FreshReadsOK are reads of the traffic's own acknowledged writes
	// that returned them; StaleReads those that did not (must be 0).
	FreshReadsOK    int64      `json:"fresh_reads_ok"`
	StaleReads      int64      `json:"stale_reads"`
	WritesAcked     int        `json:"writes_acked"`
	WritesLost      int        `json:"writes_lost"`
	LeakedVolumes   int        `json:"leaked_volumes"`
	LeakedSnapshots int        `json:"leaked_snapshots"`
	Leaked          []string   `json:"leaked,omitempty"`
	OldInstance     string     `json:"old_instance"`
	NewInstance     string     `json:"new_instance"`
	OldZone         string     `json:"old_zone"`
	NewZone         string     `json:"new_zone"`
	Volume          string     `json:"volume"`
	Epoch           int64      `json:"epoch"`
	MigrationID     string     `json:"migration_id"`
	MigrationState  string     `json:"migration_state"`
	DurationMS      int64      `json:"duration_ms"`
	Steps           []api.Step `json:"steps"`
}

// Run runs one scenario with traffic on keys preloaded keys. progress is
// told what the scenario waits for.
func (e *Env) Run(ctx context.Context, scenario string, keys int, progress func(string)) (Result, error) {
	res := Result{Scenario: scenario}
	started := time.Now()
	old, err := e.serving(ctx)
	if err != nil {
		return res, err
	}
	res.OldInstance, res.OldZone = old.id, old.zone

	progress("starting traffic through the load balancer")
	traffic := e.StartTraffic(keys)
	stopped := false
	defer func() {
		if !stopped {
			traffic.Stop()
		}
	}()
	sleep(ctx, time.Second) // a baseline before the replacement

	switch scenario {
	case ScenarioUpdate:
		progress("rolling out a new image version")
		err = e.rollOut(ctx)
	case ScenarioUnhealthy:
		progress("marking " + old.id + " unhealthy")
		// Not respecting the grace period: the report is an operator's, and
		// the instance may have launched moments ago.
		_, err = e.ASG.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{InstanceId: aws.String(old.id),
			HealthStatus: aws.String("Unhealthy"), ShouldRespectGracePeriod: aws.Bool(false)})
	case ScenarioAZMove:
		progress("taking zone " + old.zone + " out of the group")
		err = e.dropZone(ctx, old.zone)
	default:
		return res, fmt.Errorf("unknown scenario %q: use %v or all", scenario, Scenarios)
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", scenario, err)
	}

	progress("waiting for the replacement instance")
	newID, err := e.waitFor(ctx, 3*time.Minute, "a replacement of "+old.id, func() (string, bool, error) {
		ins, err := e.groupInstances(ctx)
		for _, i := range ins {
			if i.id != old.id {
				return i.id, true, err
			}
		}
		return "", false, err
	})
	if err != nil {
		return res, err
	}
	res.NewInstance = newID

	var mig api.MigrationSummary
	_, err = e.waitFor(ctx, 5*time.Minute, "the handover to "+newID+" to finish", func() (string, bool, error) {
		ms, err := e.API().Migrations(ctx, url.Values{"database": {database}})
		if err != nil {
			return "", false, err
		}
		for _, m := range ms {
			if m.Instance == newID {
				progress("handover to " + newID + ": " + m.State)
				if e.OnStep != nil {
					e.OnStep(m.State)
				}
				mig = m
				return "", m.State == "Committed" || m.State == "Aborted", nil
			}
		}
		return "", false, nil
	})
	if err != nil {
		return res, err
	}
	res.MigrationID, res.MigrationState = mig.ID, mig.State
	if mig.State != "Committed" {
		res.Problems = append(res.Problems, "the handover ended "+mig.State+": "+mig.LastError)
	}

	if scenario == ScenarioUpdate {
		progress("waiting for the load balancer to route to " + newID)
		if err := e.waitHealthyTarget(ctx, newID); err != nil {
			return res, err
		}
		progress("terminating " + old.id)
		if _, err := e.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
			InstanceId: aws.String(old.id), ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
			return res, fmt.Errorf("terminating %s: %w", old.id, err)
		}
	}
	progress("waiting for " + old.id + " to leave the group")
	if _, err := e.waitFor(ctx, 3*time.Minute, old.id+" to be terminated and "+newID+" in service", func() (string, bool, error) {
		ins, err := e.groupInstances(ctx)
		if err != nil {
			return "", false, err
		}
		return "", len(ins) == 1 && ins[0].id == newID && ins[0].lifecycle == "InService", nil
	}); err != nil {
		return res, err
	}
	sleep(ctx, time.Second)
	traffic.Stop()
	stopped = true
	tr := traffic.Result()
	res.WritePauseMS, res.ReadsOK, res.ReadsFailed, res.ReadFailures, res.WritesAcked =
		tr.WritePause.Milliseconds(), tr.ReadsOK, tr.ReadsFailed, tr.ReadFailures, tr.WritesAcked
	res.FreshReadsOK, res.StaleReads = tr.FreshReads, tr.StaleReads

	progress("reading back every acknowledged write")
	lost, err := e.LostWrites(ctx, tr.Acked)
	if err != nil {
		return res, err
	}
	res.WritesLost = len(lost)

	detail, err := e.API().Migration(ctx, mig.ID)
	if err != nil {
		return res, err
	}
	res.Steps = detail.Steps

	progress("checking the new instance holds the authoritative volume")
	db, err := e.database(ctx)
	if err != nil {
		return res, err
	}
	res.Volume, res.Epoch = db.Volume, db.Epoch
	if inst, err := e.describe(ctx, newID); err == nil {
		res.NewZone = inst.zone
	}
	if err := e.checkHolds(ctx, newID, db); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}

	progress("waiting for the sweeper")
	leaked, vols, snaps, err := e.settleLeaks(ctx, time.Minute)
	if err != nil {
		return res, err
	}
	res.Leaked, res.LeakedVolumes, res.LeakedSnapshots = leaked, vols, snaps
	res.DurationMS = time.Since(started).Milliseconds()

	if res.StaleReads > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d stale reads: acknowledged writes read back missing or old, e.g. %v", res.StaleReads, tr.StaleKeys))
	}
	if res.FreshReadsOK == 0 {
		res.Problems = append(res.Problems, "no acknowledged write was read back")
	}
	if res.ReadsFailed > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d reads failed: %v", res.ReadsFailed, res.ReadFailures))
	}
	if res.WritesLost > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d acknowledged writes lost, e.g. %s", res.WritesLost, lost[0]))
	}
	if len(leaked) > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("left over: %v", leaked))
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}

// rollOut makes a new launch template version with the other image and
// launches its instance before the old one goes, as an instance refresh
// with a minimum healthy percentage of 100 does.
func (e *Env) rollOut(ctx context.Context) error {
	lt, err := e.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: aws.String(groupName), Versions: []string{"$Latest"}})
	if err != nil || len(lt.LaunchTemplateVersions) == 0 {
		return fmt.Errorf("reading the launch template: %w", errors.Join(err, errors.New("no $Latest version")))
	}
	image := amiV2
	if aws.ToString(lt.LaunchTemplateVersions[0].LaunchTemplateData.ImageId) == amiV2 {
		image = amiV1
	}
	if _, err := e.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: aws.String(groupName), SourceVersion: aws.String("$Latest"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(image)}}); err != nil {
		return fmt.Errorf("creating a launch template version: %w", err)
	}
	if _, err := e.ASG.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(groupName), DesiredCapacity: aws.Int32(2)}); err != nil {
		return fmt.Errorf("launching the new version: %w", err)
	}
	return nil
}

func (e *Env) dropZone(ctx context.Context, zone string) error {
	zs, err := e.zones(ctx)
	if err != nil {
		return err
	}
	zs = slices.DeleteFunc(zs, func(z string) bool { return z == zone })
	if _, err := e.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(groupName), AvailabilityZones: zs}); err != nil {
		return fmt.Errorf("removing zone %s from the group: %w", zone, err)
	}
	return nil
}

type member struct{ id, zone, lifecycle string }

func (e *Env) groupInstances(ctx context.Context) ([]member, error) {
	out, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{groupName}})
	if err != nil {
		return nil, fmt.Errorf("describing the group: %w", err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return nil, errors.New("the group is gone")
	}
	var ms []member
	for _, i := range out.AutoScalingGroups[0].Instances {
		if i.LifecycleState == astypes.LifecycleStateTerminated {
			continue
		}
		ms = append(ms, member{aws.ToString(i.InstanceId), aws.ToString(i.AvailabilityZone), string(i.LifecycleState)})
	}
	return ms, nil
}

// serving returns the group's one instance in service.
func (e *Env) serving(ctx context.Context) (member, error) {
	ins, err := e.groupInstances(ctx)
	if err != nil {
		return member{}, err
	}
	if len(ins) != 1 || ins[0].lifecycle != "InService" {
		return member{}, fmt.Errorf("the group should have one instance in service, has %+v", ins)
	}
	return ins[0], nil
}

func (e *Env) describe(ctx context.Context, id string) (member, error) {
	out, err := e.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return member{}, fmt.Errorf("describing %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			return member{id: id, zone: aws.ToString(i.Placement.AvailabilityZone), lifecycle: string(i.State.Name)}, nil
		}
	}
	return member{}, fmt.Errorf("instance %s not found", id)
}

func (e *Env) database(ctx context.Context) (api.Database, error) {
	dbs, err := e.API().Databases(ctx)
	if err != nil {
		return api.Database{}, err
	}
	for _, d := range dbs {
		if d.ID == database {
			return d, nil
		}
	}
	return api.Database{}, fmt.Errorf("the ledger has no database %q", database)
}

// checkHolds: the instance is in service and its volume is the
// authoritative one.
func (e *Env) checkHolds(ctx context.Context, id string, db api.Database) error {
	if db.Instance != id {
		return fmt.Errorf("the ledger hands database %s to %s, not %s", database, db.Instance, id)
	}
	out, err := e.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{db.Volume}})
	if err != nil {
		return fmt.Errorf("describing the authoritative volume %s: %w", db.Volume, err)
	}
	for _, v := range out.Volumes {
		for _, a := range v.Attachments {
			if aws.ToString(a.InstanceId) == id && a.State == ec2types.VolumeAttachmentStateAttached {
				return nil
			}
		}
	}
	return fmt.Errorf("the authoritative volume %s is not attached to %s", db.Volume, id)
}

// Leaks lists the volumes and snapshots tagged by handover that are
// neither authoritative for a database nor its base snapshot, nor deleted.
func (e *Env) Leaks(ctx context.Context) (leaked []string, vols, snaps int, err error) {
	dbs, err := e.API().Databases(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	keep := map[string]bool{}
	for _, d := range dbs {
		keep[d.Volume], keep[d.BaseSnapshot] = true, true
	}
	managed := []ec2types.Filter{{Name: aws.String("tag:" + handover.TagManaged), Values: []string{"true"}}}
	vs, err := e.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: managed})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("listing handover's volumes: %w", err)
	}
	for _, v := range vs.Volumes {
		if id := aws.ToString(v.VolumeId); !keep[id] && v.State != ec2types.VolumeStateDeleted && v.State != ec2types.VolumeStateDeleting {
			leaked, vols = append(leaked, id), vols+1
		}
	}
	ss, err := e.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: managed})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("listing handover's snapshots: %w", err)
	}
	for _, s := range ss.Snapshots {
		if id := aws.ToString(s.SnapshotId); !keep[id] {
			leaked, snaps = append(leaked, id), snaps+1
		}
	}
	return leaked, vols, snaps, nil
}

// settleLeaks waits up to limit for the sweeper to delete what is left
// over, then reports what still is.
func (e *Env) settleLeaks(ctx context.Context, limit time.Duration) ([]string, int, int, error) {
	deadline := time.Now().Add(limit)
	for {
		leaked, vols, snaps, err := e.Leaks(ctx)
		// A failed listing says nothing about leaks: ask again (CI once
		// saw "use of closed network connection" from DescribeSnapshots
		// at the end of a 12-instance update), until the limit.
		if (err == nil && len(leaked) == 0) || time.Now().After(deadline) || ctx.Err() != nil {
			return leaked, vols, snaps, err
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
	}
}

// waitFor polls f every 250 ms until it reports done, for at most limit.
func (e *Env) waitFor(ctx context.Context, limit time.Duration, what string, f func() (string, bool, error)) (string, error) {
	deadline := time.Now().Add(limit)
	var last error
	for {
		v, done, err := f()
		if done && err == nil {
			return v, nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("gave up after %s waiting for %s (last error: %v); see the logs in %s", limit, what, last, e.opts.DataDir)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitHealthyTarget waits until the load balancer's target group reports
// the instance healthy, as an instance refresh does before it retires the
// instance the new one replaces.
func (e *Env) waitHealthyTarget(ctx context.Context, id string) error {
	tgs, err := e.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{groupName}})
	if err != nil || len(tgs.TargetGroups) == 0 {
		return fmt.Errorf("finding the target group: %w", errors.Join(err, errors.New("not found")))
	}
	_, err = e.waitFor(ctx, 2*time.Minute, id+" healthy in the target group", func() (string, bool, error) {
		out, err := e.ELB.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgs.TargetGroups[0].TargetGroupArn})
		if err != nil {
			return "", false, err
		}
		for _, d := range out.TargetHealthDescriptions {
			if aws.ToString(d.Target.Id) == id && d.TargetHealth != nil && d.TargetHealth.State == elbtypes.TargetHealthStateEnumHealthy {
				return "", true, nil
			}
		}
		return "", false, nil
	})
	return err
}

// waitServing waits until the load balancer answers kvstore's health.
func (e *Env) waitServing(ctx context.Context, limit time.Duration) error {
	hc := newClient()
	_, err := e.waitFor(ctx, limit, "the first instance to serve through the load balancer", func() (string, bool, error) {
		resp, err := hc.Get(e.LBURL + "/healthz")
		if err != nil {
			return "", false, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", false, fmt.Errorf("health: %s", resp.Status)
		}
		m, err := e.serving(ctx)
		if err != nil {
			return "", false, err
		}
		// And the first boot's handover is committed.
		db, err := e.database(ctx)
		return m.id, err == nil && db.Volume != "" && db.Claim == "" && db.Instance == m.id, err
	})
	return err
}
