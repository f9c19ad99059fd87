package demo

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
)

// Group update scenarios (S2): a group whose instances each hold their own
// database (a pool), updated by `handover update`.
const (
	ScenarioRolling    = "rolling"
	ScenarioReplaceAll = "replace-all"
)

// UpdateScenarios lists the group update scenarios.
var UpdateScenarios = []string{ScenarioRolling, ScenarioReplaceAll}

// PoolOptions shape a pool group.
type PoolOptions struct {
	// Name names the group, its launch template and load balancer.
	Name string
	// Instances is the desired capacity; Databases the pool's size
	// (default: Instances).
	Instances, Databases int32
	// Signal makes instances signal SUCCESS once kvstore answers (what a
	// replace-all or a migration group waits for).
	Signal bool
	// HookTimeout is the launch hook's heartbeat timeout (default 2 min).
	HookTimeout time.Duration
}

// Pool is a group of kvstore instances, one database each, behind its own
// load balancer.
type Pool struct {
	e     *Env
	opts  PoolOptions
	LBURL string
	Keys  int
}

// CreatePool creates the pool group and waits until every instance's first
// boot committed and the load balancer serves.
func (e *Env) CreatePool(ctx context.Context, o PoolOptions) (*Pool, error) {
	if o.Databases == 0 {
		o.Databases = o.Instances
	}
	if o.HookTimeout == 0 {
		o.HookTimeout = 2 * time.Minute
	}
	p := &Pool{e: e, opts: o}
	if _, err := e.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(o.Name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiV1), UserData: aws.String(encodeUserData(p.script("")))}}); err != nil {
		return nil, fmt.Errorf("creating the launch template: %w", err)
	}
	tgARN, lbURL, err := e.createLB(ctx, o.Name)
	if err != nil {
		return nil, err
	}
	p.LBURL = lbURL
	zones, err := e.zones(ctx)
	if err != nil {
		return nil, err
	}
	timeout := int32(o.HookTimeout / time.Second)
	if _, err := e.ASG.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(o.Name), MinSize: aws.Int32(1), MaxSize: aws.Int32(o.Instances * 2), DesiredCapacity: aws.Int32(o.Instances),
		AvailabilityZones: zones, TargetGroupARNs: []string{tgARN}, HealthCheckGracePeriod: aws.Int32(30),
		LaunchTemplate:            &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(o.Name), Version: aws.String("$Latest")},
		InstanceMaintenancePolicy: &astypes.InstanceMaintenancePolicy{MinHealthyPercentage: aws.Int32(100), MaxHealthyPercentage: aws.Int32(200)},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{
			{LifecycleHookName: aws.String(launchHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				HeartbeatTimeout: aws.Int32(timeout), DefaultResult: aws.String("ABANDON"),
				NotificationMetadata: aws.String(fmt.Sprintf(`{"database":%q,"count":%d,"size_gib":1}`, o.Name, o.Databases))},
			{LifecycleHookName: aws.String(termHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
				HeartbeatTimeout: aws.Int32(timeout), DefaultResult: aws.String("CONTINUE")},
		},
	}); err != nil {
		return nil, fmt.Errorf("creating the group: %w", err)
	}
	if err := p.waitSettled(ctx, o.Name, o.Instances, 4*time.Minute); err != nil {
		return nil, err
	}
	return p, nil
}

// script is the pool's user data: the agent and kvstore, and with Signal a
// background `handover signal` once kvstore answers. failOnce names a
// directory: the first instance to create it signals FAILURE instead.
func (p *Pool) script(failOnce string) string {
	base := p.e.userDataScript()
	if !p.opts.Signal {
		return base
	}
	hb := shellQuote(p.e.opts.HandoverBin)
	sig := fmt.Sprintf("(%s signal --status SUCCESS --wait-url \"http://$HANDOVER_PRIVATE_IP:%d/healthz\" --wait-timeout 3m >>\"$HANDOVER_INSTANCE_DIR/signal.log\" 2>&1) &\n", hb, servicePort)
	if failOnce != "" {
		sig = fmt.Sprintf("if mkdir %s 2>/dev/null; then %s signal --status FAILURE --reason 'demo: this instance fails on purpose' >>\"$HANDOVER_INSTANCE_DIR/signal.log\" 2>&1; else %s fi\n",
			shellQuote(failOnce), hb, strings.TrimSuffix(sig, "\n"))
	}
	i := strings.LastIndex(base, "exec ")
	return base[:i] + sig + base[i:]
}

// createLB creates a target group, a load balancer and a listener named
// name, and returns the target group's ARN and the listener's URL.
func (e *Env) createLB(ctx context.Context, name string) (string, string, error) {
	tg, err := e.ELB.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(name), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(servicePort), VpcId: aws.String("vpc-local"), HealthCheckPath: aws.String("/healthz"),
		HealthCheckIntervalSeconds: aws.Int32(5), HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		return "", "", fmt.Errorf("creating the target group: %w", err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	lb, err := e.ELB.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(name), Subnets: []string{"subnet-local"}})
	if err != nil {
		return "", "", fmt.Errorf("creating the load balancer: %w", err)
	}
	ls, err := e.ELB.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}})
	if err != nil {
		return "", "", fmt.Errorf("creating the listener: %w", err)
	}
	return aws.ToString(tgARN), fmt.Sprintf("http://%s:%d", aws.ToString(lb.LoadBalancers[0].DNSName), aws.ToInt32(ls.Listeners[0].Port)), nil
}

// PoolMember is an instance of a pool group.
type PoolMember struct {
	ID, Zone, Lifecycle, Version, Addr string
}

// Members lists the group's instances that are not terminated.
func (e *Env) Members(ctx context.Context, group string) ([]PoolMember, error) {
	out, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil {
		return nil, fmt.Errorf("describing group %s: %w", group, err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return nil, fmt.Errorf("group %s does not exist", group)
	}
	var ms []PoolMember
	var ids []string
	for _, i := range out.AutoScalingGroups[0].Instances {
		if i.LifecycleState == astypes.LifecycleStateTerminated {
			continue
		}
		m := PoolMember{ID: aws.ToString(i.InstanceId), Zone: aws.ToString(i.AvailabilityZone), Lifecycle: string(i.LifecycleState)}
		if i.LaunchTemplate != nil {
			m.Version = aws.ToString(i.LaunchTemplate.Version)
		}
		ms = append(ms, m)
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return ms, nil
	}
	di, err := e.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, fmt.Errorf("describing the instances of %s: %w", group, err)
	}
	for _, r := range di.Reservations {
		for _, in := range r.Instances {
			for k := range ms {
				if ms[k].ID == aws.ToString(in.InstanceId) {
					ms[k].Addr = fmt.Sprintf("http://%s:%d", aws.ToString(in.PrivateIpAddress), servicePort)
				}
			}
		}
	}
	return ms, nil
}

// waitSettled waits until group has n instances in service, each holding
// one of the pool's databases with no handover under way.
func (p *Pool) waitSettled(ctx context.Context, group string, n int32, limit time.Duration) error {
	_, err := p.e.waitFor(ctx, limit, fmt.Sprintf("%d instances of %s in service, each holding a database", n, group), func() (string, bool, error) {
		ms, err := p.e.Members(ctx, group)
		if err != nil {
			return "", false, err
		}
		held, err := p.holders(ctx)
		if err != nil {
			return "", false, err
		}
		in := 0
		for _, m := range ms {
			if m.Lifecycle == "InService" && held[m.ID] != "" {
				in++
			}
		}
		return "", in == int(n) && len(ms) == int(n), nil
	})
	return err
}

// holders maps instance → the pool database it holds (committed, idle).
func (p *Pool) holders(ctx context.Context) (map[string]string, error) {
	dbs, err := p.e.API().Databases(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range dbs {
		if strings.HasPrefix(d.ID, p.opts.Name+"-") && d.Claim == "" && d.Volume != "" {
			out[d.Instance] = d.ID
		}
	}
	return out, nil
}

func markerKey(db string) string { return "database-" + db }

// Preload writes keys preloaded keys into every instance directly (so any
// instance answers them through the load balancer) and a marker naming the
// instance's database, which must follow the database to its new instance.
func (p *Pool) Preload(ctx context.Context, keys int) error {
	ms, err := p.e.Members(ctx, p.opts.Name)
	if err != nil {
		return err
	}
	held, err := p.holders(ctx)
	if err != nil {
		return err
	}
	hc := newClient()
	for _, m := range ms {
		db := held[m.ID]
		if db == "" {
			return fmt.Errorf("instance %s holds no database yet", m.ID)
		}
		for i := range keys {
			k := preloadKey(i)
			if err := put(ctx, hc, m.Addr, k, value(k, valueSize)); err != nil {
				return fmt.Errorf("preloading %s on %s: %w", k, m.ID, err)
			}
		}
		if err := put(ctx, hc, m.Addr, markerKey(db), []byte(db)); err != nil {
			return fmt.Errorf("writing the marker of %s on %s: %w", db, m.ID, err)
		}
	}
	p.Keys = keys
	return nil
}

// CheckMoved checks that every database of the pool is held by an
// in-service instance of group on version, and that the instance serves
// the database's own data (its marker and the preloaded keys).
func (p *Pool) CheckMoved(ctx context.Context, group, version string) []string {
	ms, err := p.e.Members(ctx, group)
	if err != nil {
		return []string{err.Error()}
	}
	held, err := p.holders(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	hc := newClient()
	seen := map[string]bool{}
	for _, m := range ms {
		db := held[m.ID]
		switch {
		case m.Lifecycle != "InService":
			continue
		case db == "":
			problems = append(problems, fmt.Sprintf("instance %s of %s holds no database", m.ID, group))
			continue
		case version != "" && m.Version != version:
			problems = append(problems, fmt.Sprintf("instance %s holding %s runs version %s, not %s", m.ID, db, m.Version, version))
		}
		seen[db] = true
		code, body, err := get(ctx, hc, m.Addr, markerKey(db))
		if err != nil || code != http.StatusOK || string(body) != db {
			problems = append(problems, fmt.Sprintf("instance %s does not serve database %s's data (marker: HTTP %d %q %v)", m.ID, db, code, body, err))
		}
		for i := 0; i < p.Keys; i += max(1, p.Keys/8) {
			k := preloadKey(i)
			code, body, err := get(ctx, hc, m.Addr, k)
			if err != nil || code != http.StatusOK || !bytes.Equal(body, value(k, valueSize)) {
				problems = append(problems, fmt.Sprintf("instance %s lost key %s of database %s", m.ID, k, db))
				break
			}
		}
	}
	for i := int32(1); i <= p.opts.Databases && i <= p.opts.Instances; i++ {
		if db := fmt.Sprintf("%s-%d", p.opts.Name, i); !seen[db] {
			problems = append(problems, fmt.Sprintf("database %s is not served by an in-service instance of %s", db, group))
		}
	}
	return problems
}

// NewVersion adds a launch template version with the other image; failOnce
// as in script. It returns the version number.
func (p *Pool) NewVersion(ctx context.Context, failOnce string) (string, error) {
	out, err := p.e.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: aws.String(p.opts.Name), SourceVersion: aws.String("$Latest"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiV2), UserData: aws.String(encodeUserData(p.script(failOnce)))}})
	if err != nil {
		return "", fmt.Errorf("creating a launch template version: %w", err)
	}
	return fmt.Sprint(aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)), nil
}

// StartUpdate asks the controller for an update.
func (e *Env) StartUpdate(ctx context.Context, req api.UpdateRequest) (api.Update, error) {
	u, _, err := e.API().StartUpdate(ctx, req, false)
	if err != nil {
		return api.Update{}, err
	}
	return *u, nil
}

// WaitUpdate follows an update until it ends, telling progress its phase.
func (e *Env) WaitUpdate(ctx context.Context, id string, limit time.Duration, progress func(string)) (api.Update, error) {
	var u api.Update
	last := ""
	_, err := e.waitFor(ctx, limit, "update "+id+" to end", func() (string, bool, error) {
		var err error
		if u, err = e.API().Update(ctx, id); err != nil {
			return "", false, err
		}
		s := fmt.Sprintf("%s: %s", u.State, u.Phase)
		if strings.Contains(u.Phase, "batch") || u.Phase == "bake" || u.Phase == "pause" {
			s += fmt.Sprintf(" %d/%d", u.Batch+1, len(u.Batches))
		}
		if s != last && progress != nil {
			progress(s)
			last = s
		}
		return "", u.State.Terminal(), nil
	})
	return u, err
}

// UpdateResult is one group update scenario's outcome.
type UpdateResult struct {
	Scenario        string   `json:"scenario"`
	OK              bool     `json:"ok"`
	Problems        []string `json:"problems,omitempty"`
	UpdateID        string   `json:"update_id"`
	State           string   `json:"state"`
	Group           string   `json:"group"`
	NewGroup        string   `json:"new_group,omitempty"`
	Instances       int32    `json:"instances"`
	Handovers       int      `json:"handovers"`
	MaxWritePauseMS int64    `json:"max_write_pause_ms"`
	// ClientWritePauseMS is the longest gap between two acknowledged
	// writes of one database, as a client routed to its holder saw it.
	ClientWritePauseMS int64 `json:"client_write_pause_ms"`
	WritesAcked        int   `json:"writes_acked"`
	WritesLost         int   `json:"writes_lost"`
	ReadsOK            int64 `json:"reads_ok"`
	ReadsFailed        int64 `json:"reads_failed"`
	// FreshReadsOK and StaleReads count the tenant writers' reads of
	// their own acknowledged writes (StaleReads must be 0).
	FreshReadsOK    int                    `json:"fresh_reads_ok"`
	StaleReads      int                    `json:"stale_reads"`
	ReadFailures    map[string]int         `json:"read_failures,omitempty"`
	LeakedVolumes   int                    `json:"leaked_volumes"`
	LeakedSnapshots int                    `json:"leaked_snapshots"`
	DurationMS      int64                  `json:"duration_ms"`
	Phases          []ledger.UpdateStep    `json:"phases"`
	Migrations      []api.MigrationSummary `json:"migrations"`
}

// writePause is how long a migration kept its database fenced: from the
// start of Fencing to the commit.
func writePause(steps []api.Step) time.Duration {
	var from, to time.Time
	for _, s := range steps {
		if s.State == ledger.Fencing.String() && from.IsZero() {
			from = s.Start
		}
		if s.State == ledger.Committed.String() {
			to = s.Start
		}
	}
	if from.IsZero() || to.IsZero() {
		return 0
	}
	return to.Sub(from)
}

// RunUpdate runs a group update scenario on a pool group of its own: 3
// instances, reads through the load balancer throughout.
func (e *Env) RunUpdate(ctx context.Context, scenario string, keys int, progress func(string)) (UpdateResult, error) {
	res := UpdateResult{Scenario: scenario, Instances: 3}
	o := PoolOptions{Name: "tenants-" + strings.ReplaceAll(scenario, "-", ""), Instances: 3, Signal: scenario == ScenarioReplaceAll}
	res.Group = o.Name
	req := api.UpdateRequest{Group: o.Name, BatchSize: 1, MinHealthyPercent: 50}
	switch scenario {
	case ScenarioRolling:
		req.Strategy = "rolling"
	case ScenarioReplaceAll:
		req.Strategy, req.SignalTimeout = "replace-all", "3m"
	default:
		return res, fmt.Errorf("unknown update scenario %q", scenario)
	}
	progress(fmt.Sprintf("creating group %s: %d kvstore instances, one database each", o.Name, o.Instances))
	p, err := e.CreatePool(ctx, o)
	if err != nil {
		return res, err
	}
	if err := p.Preload(ctx, keys); err != nil {
		return res, err
	}
	version, err := p.NewVersion(ctx, "")
	if err != nil {
		return res, err
	}
	traffic := StartReads(p.LBURL, keys)
	writes := p.StartTenantWrites()
	start := time.Now()
	progress(fmt.Sprintf("handover update --group %s --strategy %s", o.Name, req.Strategy))
	u, err := e.StartUpdate(ctx, req)
	if err != nil {
		traffic.Stop()
		writes.Stop()
		return res, err
	}
	res.UpdateID = u.ID
	u, err = e.WaitUpdate(ctx, u.ID, 6*time.Minute, progress)
	// Reads go on until the new instances serve alone.
	sleep(ctx, 2*time.Second)
	traffic.Stop()
	writes.Stop()
	res.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		return res, err
	}
	wr, err := writes.Check(ctx)
	if err != nil {
		return res, err
	}
	res.WritesAcked, res.WritesLost, res.ClientWritePauseMS = wr.Acked, wr.Lost, wr.MaxPause.Milliseconds()
	if wr.Lost > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d acknowledged writes lost: %v", wr.Lost, wr.LostKeys))
	}
	if wr.Acked == 0 {
		res.Problems = append(res.Problems, "no write was acknowledged")
	}
	res.FreshReadsOK, res.StaleReads = wr.FreshReads, wr.StaleReads
	if wr.StaleReads > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d stale reads: acknowledged writes read back missing or old, e.g. %v", wr.StaleReads, wr.StaleKeys))
	}
	if wr.FreshReads == 0 {
		res.Problems = append(res.Problems, "no acknowledged write was read back")
	}
	tr := traffic.Result()
	res.ReadsOK, res.ReadsFailed, res.ReadFailures = tr.ReadsOK, tr.ReadsFailed, tr.ReadFailures
	res.State, res.NewGroup, res.Phases, res.Migrations = string(u.State), u.NewGroup, u.Timeline, u.Migrations
	for _, m := range u.Migrations {
		// The update ends once every new instance is in service; a
		// handover past CONTINUE may commit a moment after that.
		deadline := time.Now().Add(30 * time.Second)
		for {
			d, err := e.API().Migration(ctx, m.ID)
			if err == nil && (d.State == ledger.Committed.String() || d.State == ledger.Aborted.String() || time.Now().After(deadline)) {
				if d.State == ledger.Committed.String() {
					res.Handovers++
				}
				res.MaxWritePauseMS = max(res.MaxWritePauseMS, writePause(d.Steps).Milliseconds())
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleep(ctx, 250*time.Millisecond)
		}
	}
	if u.State != ledger.UpdateSucceeded {
		res.Problems = append(res.Problems, fmt.Sprintf("update %s: %s", u.State, u.Error))
	}
	serving := o.Name
	if u.NewGroup != "" {
		serving = u.NewGroup
		if err := e.WaitGroupGone(ctx, o.Name, time.Minute); err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
	}
	res.Problems = append(res.Problems, p.CheckMoved(ctx, serving, version)...)
	if res.Handovers < int(o.Instances) {
		res.Problems = append(res.Problems, fmt.Sprintf("%d of %d handovers committed", res.Handovers, o.Instances))
	}
	if res.ReadsFailed > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d reads failed: %v", res.ReadsFailed, res.ReadFailures))
	}
	leaked, vols, snaps, err := e.settleLeaks(ctx, 45*time.Second)
	if err != nil {
		return res, err
	}
	res.LeakedVolumes, res.LeakedSnapshots = vols, snaps
	if len(leaked) > 0 {
		res.Problems = append(res.Problems, "left over: "+strings.Join(leaked, ", "))
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}

// failOnceDir is a directory path for PoolOptions' failOnce under the
// environment's data directory.
func (e *Env) failOnceDir(name string) string {
	return filepath.Join(e.opts.DataDir, "fail-once-"+name)
}

// WaitGroupGone waits until a (force-deleted) group is gone: Auto Scaling
// removes it once its instances terminated.
func (e *Env) WaitGroupGone(ctx context.Context, name string, limit time.Duration) error {
	_, err := e.waitFor(ctx, limit, "group "+name+" to be deleted", func() (string, bool, error) {
		out, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return "", false, err
		}
		return "", len(out.AutoScalingGroups) == 0, nil
	})
	return err
}
