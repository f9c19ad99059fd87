package demo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// killAbortAt is envCLI.killAt that, when the command ends before the
// kill, fails saying how it ended and everything it printed.
func killAbortAt(t *testing.T, c envCLI, at string, args ...string) {
	t.Helper()
	cmd := exec.Command(c.bin, c.args(args...)...)
	cmd.Env = c.e.awsEnv()
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(nil, 1<<20)
	killed := false
	var said strings.Builder
	for sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), at) && !killed {
			_ = cmd.Process.Kill()
			killed = true
		}
	}
	werr := cmd.Wait()
	t.Logf("$ handover %s   # SIGKILLed at %q\n%s", strings.Join(args, " "), at, said.String())
	if !killed {
		t.Fatalf("handover %s ended before the kill (%v, scan %v):\n%s%s", strings.Join(args, " "), werr, sc.Err(), said.String(), out.String())
	}
}

// leftTagged lists, with the SDK's own calls (not handover's), everything
// tagged handover:env-op=op on the local cloud.
func leftTagged(t *testing.T, e *Env, op string) []string {
	t.Helper()
	ctx := t.Context()
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	var left []string
	has := func(k, v *string) bool { return aws.ToString(k) == "handover:env-op" && aws.ToString(v) == op }
	gs, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs.AutoScalingGroups {
		if slices.ContainsFunc(g.Tags, func(tg astypes.TagDescription) bool { return has(tg.Key, tg.Value) }) {
			left = append(left, "group "+aws.ToString(g.AutoScalingGroupName))
		}
	}
	f := []ec2types.Filter{{Name: aws.String("tag:handover:env-op"), Values: []string{op}}}
	lts, err := e.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range lts.LaunchTemplates {
		left = append(left, "launch-template "+aws.ToString(lt.LaunchTemplateName))
	}
	snaps, err := e.EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: f, OwnerIds: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps.Snapshots {
		left = append(left, "snapshot "+aws.ToString(s.SnapshotId))
	}
	lbs, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	tgs, err := e.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var arns []string
	for _, lb := range lbs.LoadBalancers {
		arns = append(arns, aws.ToString(lb.LoadBalancerArn))
	}
	for _, tg := range tgs.TargetGroups {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	for chunk := range slices.Chunk(arns, 20) {
		tt, err := e.ELB.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: chunk})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range tt.TagDescriptions {
			for _, tg := range d.Tags {
				if has(tg.Key, tg.Value) {
					left = append(left, "elb "+aws.ToString(d.ResourceArn))
				}
			}
		}
	}
	rc := rds.NewFromConfig(cfg)
	dbs, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs.DBInstances {
		for _, tg := range d.TagList {
			if has(tg.Key, tg.Value) {
				left = append(left, "rds "+aws.ToString(d.DBInstanceIdentifier))
			}
		}
	}
	rs, err := rc.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rs.DBSnapshots {
		for _, tg := range s.TagList {
			if has(tg.Key, tg.Value) {
				left = append(left, "rds-snapshot "+aws.ToString(s.DBSnapshotIdentifier))
			}
		}
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	bs, err := s3c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs.Buckets {
		tt, err := s3c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b.Name})
		if err != nil {
			continue // untagged
		}
		for _, tg := range tt.TagSet {
			if has(tg.Key, tg.Value) {
				left = append(left, "bucket "+aws.ToString(b.Name))
			}
		}
	}
	return left
}

// leftTaggedCLI asks the AWS CLI, as an operator would, for what is still
// tagged handover:env-op=op: groups, EBS snapshots, RDS instances and
// buckets.
func leftTaggedCLI(t *testing.T, e *Env, op string) string {
	t.Helper()
	aws := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("aws", append(args, "--endpoint-url", e.Endpoint, "--region", region, "--output", "text")...)
		cmd.Env = e.awsEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	var left []string
	for _, q := range [][]string{
		{"autoscaling", "describe-auto-scaling-groups", "--query", fmt.Sprintf("AutoScalingGroups[?Tags[?Key=='handover:env-op' && Value=='%s']].AutoScalingGroupName", op)},
		{"ec2", "describe-snapshots", "--owner-ids", "self", "--filters", "Name=tag:handover:env-op,Values=" + op, "--query", "Snapshots[].SnapshotId"},
		{"ec2", "describe-launch-templates", "--filters", "Name=tag:handover:env-op,Values=" + op, "--query", "LaunchTemplates[].LaunchTemplateName"},
		{"rds", "describe-db-instances", "--query", fmt.Sprintf("DBInstances[?TagList[?Key=='handover:env-op' && Value=='%s']].DBInstanceIdentifier", op)},
		{"s3api", "list-buckets", "--query", "Buckets[?starts_with(Name, 'prod')].Name"},
	} {
		if out := aws(q...); out != "" && out != "None" {
			left = append(left, strings.Join(q[:2], " ")+": "+out)
		}
	}
	return strings.Join(left, "; ")
}

// TestEnvAbort: staging (a kvstore pool group with two databases, its
// entry load balancer and target group, a PostgreSQL RDS instance and a
// bucket) is cloned into prod and the clone aborted three ways: the clone
// SIGKILLed with staging fenced; SIGKILLed while prod is being built, and
// the abort itself SIGKILLed once it recorded the abort, and run again (the
// controller, which carries every abort, may finish it first); and after the clone
// succeeded; and a migration SIGKILLed just after it switched the entry
// listener to staging-next. Each time staging's inventory (env show --output json) is
// identical before and after, staging takes writes again, and nothing
// tagged with the clone's id is left, as the SDK and, once, the AWS CLI
// see it. A dry run lists the plan; the sweeper then finds nothing of the
// aborted clones left.
func TestEnvAbort(t *testing.T) {
	e := newBareEnv(t, Options{RDSPassword: "app-password-1"}) // the controller lifts RDS fences in aborts
	bin, _ := binaries(t)
	c := envCLI{t: t, e: e, bin: bin}
	ctx := t.Context()
	p, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	tagEnvironment(t, e, "orders", "staging")
	show := func() any {
		t.Helper()
		code, out, errOut := c.run("env", "show", "staging", "--output", "json")
		if code != 0 {
			t.Fatalf("env show staging: exit %d: %s", code, errOut)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if strings.Contains(fmt.Sprint(show()), "available") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("staging-db is not available after 2 minutes")
		}
	}
	before := show()
	hc := newClient()
	writable := func(when string) {
		t.Helper()
		for _, db := range []string{"orders-1", "orders-2"} {
			addr, err := p.route(ctx, db)
			if err != nil || addr == "" {
				t.Fatalf("%s: finding the instance of %s: %v", when, db, err)
			}
			if err := put(ctx, hc, addr, "after-abort-"+fmt.Sprint(time.Now().UnixNano()), []byte("x")); err != nil {
				t.Errorf("%s: staging's %s takes no write: %v", when, db, err)
			}
		}
	}
	clone := []string{"env", "clone", "staging", "prod", "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	abort := []string{"env", "abort", "staging", "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	var aborted []string
	check := func(when string, out string, useCLI bool) {
		t.Helper()
		var op struct {
			ID        string
			State     string
			Identical bool
			Error     string
		}
		if err := json.Unmarshal([]byte(out), &op); err != nil {
			t.Fatalf("%s: env abort --output json: %v\n%s", when, err, out)
		}
		if op.State != "Aborted" || !op.Identical || op.Error != "" {
			t.Errorf("%s: the abort ended %s (identical %v): %s", when, op.State, op.Identical, op.Error)
		}
		if after := show(); !reflect.DeepEqual(before, after) {
			a, _ := json.MarshalIndent(before, "", " ")
			b, _ := json.MarshalIndent(after, "", " ")
			t.Errorf("%s: staging's inventory changed:\nbefore %s\nafter  %s", when, a, b)
		}
		if left := leftTagged(t, e, op.ID); len(left) != 0 {
			t.Errorf("%s: still tagged handover:env-op=%s: %v", when, op.ID, left)
		}
		if useCLI {
			if left := leftTaggedCLI(t, e, op.ID); left != "" {
				t.Errorf("%s: the AWS CLI still sees %s", when, left)
			}
		}
		if code, _, _ := c.run("env", "show", "prod"); code != 2 {
			t.Errorf("%s: env show prod exits %d: prod still exists", when, code)
		}
		writable(when)
		aborted = append(aborted, op.ID)
	}

	// 1. The clone killed with staging fenced.
	if !c.killAt("fenced", clone...) {
		t.Fatal("env clone ended before the kill")
	}
	code, out, errOut := c.run(append(abort, "--dry-run")...)
	t.Logf("$ handover env abort staging --dry-run\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "fence lifted") {
		t.Fatalf("env abort --dry-run: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = c.run(append(abort, "--output", "json")...)
	t.Logf("$ handover env abort staging   # the clone killed while fenced\n%s", errOut)
	if code != 0 {
		t.Fatalf("env abort: exit %d: %s%s", code, out, errOut)
	}
	check("killed while fenced", out, false)

	// 2. The clone killed while prod is built; the abort killed once too.
	if !c.killAt("created target-group", clone...) {
		t.Fatal("env clone ended before the kill")
	}
	// Killed as soon as it has recorded the abort: the controller, which
	// carries every abort, or the run again goes on with it.
	killAbortAt(t, c, "aborting clone", abort...)
	code, out, errOut = c.run(abort...)
	t.Logf("$ handover env abort staging   # run again after its kill\n%s%s", errOut, out)
	if code != 0 {
		t.Fatalf("env abort run again: exit %d: %s%s", code, out, errOut)
	}
	code, out, _ = c.run(append(abort, "--output", "json")...) // converged: nothing left to do
	if code != 0 {
		t.Fatalf("env abort a third time: exit %d: %s", code, out)
	}
	check("killed while building, abort killed", out, false)

	// 3. After a clone that succeeded.
	if code, out, errOut := c.run(clone...); code != 0 {
		t.Fatalf("env clone: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = c.run(append(abort, "--dry-run")...)
	t.Logf("$ handover env abort staging --dry-run   # after the clone succeeded\n%s%s", out, errOut)
	code, out, errOut = c.run(abort...)
	t.Logf("$ handover env abort staging\n%s%s", errOut, out)
	if code != 0 {
		t.Fatalf("env abort after a clone: exit %d: %s%s", code, out, errOut)
	}
	_, out, _ = c.run(append(abort, "--output", "json")...)
	check("after the clone succeeded", out, true)

	// 4. A migration killed just after it switched the entry listener to
	// staging-next: the abort switches it back, lifts nothing more (the
	// migration had lifted staging's fence), and deletes what the
	// migration and its clone made.
	migrate := []string{"env", "migrate", "staging", "--bake", "30s", "--rds-password-file", rdsPasswordFile(t), "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	if !c.killAt("switched the entry listener", migrate...) {
		t.Fatal("env migrate ended before the kill after the switch")
	}
	code, out, errOut = c.run(append(abort, "--dry-run")...)
	t.Logf("$ handover env abort staging --dry-run   # the migration killed after its switch\n%s%s", out, errOut)
	code, out, errOut = c.run(abort...)
	t.Logf("$ handover env abort staging   # the migration killed after its switch\n%s%s", errOut, out)
	if code != 0 {
		t.Fatalf("env abort of the migration: exit %d: %s%s", code, out, errOut)
	}
	_, out, _ = c.run(append(abort, "--output", "json")...)
	var mig struct {
		Op        string
		Migration struct {
			CloneOp string `json:"clone_op"`
		}
	}
	if err := json.Unmarshal([]byte(out), &mig); err != nil || mig.Op != "migrate" || mig.Migration.CloneOp == "" {
		t.Fatalf("env abort --output json of the migration: %v\n%s", err, out)
	}
	check("migration killed after its switch", out, false)
	if left := leftTagged(t, e, mig.Migration.CloneOp); len(left) != 0 {
		t.Errorf("the migration's clone %s left %v", mig.Migration.CloneOp, left)
	}
	if code, _, _ := c.run("env", "show", "staging-next"); code != 2 {
		t.Errorf("env show staging-next exits %d: it still exists", code)
	}
	aborted = append(aborted, mig.Migration.CloneOp)

	// The sweeper knows the aborted clones' resources: none is left.
	sweep := []string{"sweep", "--dry-run", "--all", "--output", "json", "--endpoint-url", e.Endpoint, "--ledger", e.opts.Ledger}
	cmd := exec.Command(bin, sweep...)
	cmd.Env = e.awsEnv()
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("handover sweep --dry-run: %v\n%s", err, raw)
	}
	var rep struct {
		EnvOp []struct {
			Op     string `json:"env_op"`
			Kind   string
			ID     string
			Leaked bool
		} `json:"env_op_resources"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("sweep JSON: %v\n%s", err, raw)
	}
	for _, r := range rep.EnvOp {
		if slices.Contains(aborted, r.Op) {
			t.Errorf("the sweeper finds %s %s of aborted clone %s", r.Kind, r.ID, r.Op)
		}
	}
}
