package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/handover-dev/handover/internal/api"
)

// envCLI runs handover env commands against e, as a user would.
type envCLI struct {
	t   *testing.T
	e   *Env
	bin string
}

func (c envCLI) args(args ...string) []string {
	return append(args, "--endpoint-url", c.e.Endpoint, "--ledger", c.e.opts.Ledger, "--log-level", "warn")
}

// run runs a command to its end and returns its exit code, stdout and
// stderr.
func (c envCLI) run(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, c.args(args...)...)
	cmd.Env = c.e.awsEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		c.t.Fatalf("running handover %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String(), errb.String()
}

// killAt starts a command and SIGKILLs it as soon as a progress line on
// its stderr contains at. It reports whether the kill came before the
// command ended on its own, and logs what the command printed.
func (c envCLI) killAt(at string, args ...string) bool {
	c.t.Helper()
	cmd := exec.Command(c.bin, c.args(args...)...)
	cmd.Env = c.e.awsEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	killed := false
	var said strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if !killed {
			said.WriteString(sc.Text() + "\n")
		}
		if strings.Contains(sc.Text(), at) && !killed {
			_ = cmd.Process.Kill()
			killed = true
		}
	}
	_ = cmd.Wait()
	c.t.Logf("$ handover %s   # SIGKILLed at %q\n%s", strings.Join(args, " "), at, said.String())
	return killed
}

// tagEnvironment tags a pool group, its load balancer, target group and
// listener (the entry point), a new PostgreSQL RDS instance and a new
// bucket with handover:environment.
func tagEnvironment(t testing.TB, e *Env, group, name string) {
	t.Helper()
	ctx := t.Context()
	if _, err := e.ASG.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: aws.String(group),
		ResourceType: aws.String("auto-scaling-group"), Key: aws.String("handover:environment"), Value: aws.String(name)}}}); err != nil {
		t.Fatal(err)
	}
	lbs, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	lbARN := aws.ToString(lbs.LoadBalancers[0].LoadBalancerArn)
	ls, err := e.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	if err != nil {
		t.Fatal(err)
	}
	tgs, err := e.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	envTag := elbtypes.Tag{Key: aws.String("handover:environment"), Value: aws.String(name)}
	if _, err := e.ELB.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{lbARN, aws.ToString(tgs.TargetGroups[0].TargetGroupArn)}, Tags: []elbtypes.Tag{envTag}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ELB.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{aws.ToString(ls.Listeners[0].ListenerArn)},
		Tags: []elbtypes.Tag{envTag, {Key: aws.String("handover:entry"), Value: aws.String("true")}}}); err != nil {
		t.Fatal(err)
	}
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	if _, err := rds.NewFromConfig(cfg).CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(name + "-db"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
		MasterUsername: aws.String("app"), MasterUserPassword: aws.String("app-password-1"), DBName: aws.String("app"),
		Tags: []rdstypes.Tag{{Key: aws.String("handover:environment"), Value: aws.String(name)}},
	}); err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name + "-assets")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name + "-assets"),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("handover:environment"), Value: aws.String(name)}}}}); err != nil {
		t.Fatal(err)
	}
}

type groupShape struct {
	Min, Desired, Max int32
	States            map[string]int
}

func shapeOf(t *testing.T, e *Env, group string) groupShape {
	t.Helper()
	out, err := e.ASG.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describing %s: %v", group, err)
	}
	g := out.AutoScalingGroups[0]
	s := groupShape{Min: aws.ToInt32(g.MinSize), Desired: aws.ToInt32(g.DesiredCapacity), Max: aws.ToInt32(g.MaxSize), States: map[string]int{}}
	for _, i := range g.Instances {
		s.States[string(i.LifecycleState)]++
	}
	return s
}

// TestEnvStandbyResumeKilled: a pool group of two kvstore instances with
// two databases (MinSize equal to its size), its load balancer and a
// bucket, tagged as environment staging. env show lists it with the
// databases' volumes; env standby and env resume are each SIGKILLed at
// their first cloud calls and run again; the group ends exactly as it
// was, every database on the volume it had.
func TestEnvStandbyResumeKilled(t *testing.T) {
	e := newBareEnv(t, Options{})
	bin, _ := binaries(t)
	c := envCLI{t: t, e: e, bin: bin}
	ctx := t.Context()
	p, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("orders"), MinSize: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	tagEnvironment(t, e, "orders", "staging")
	before := shapeOf(t, e, "orders")
	if before.Min != 2 || before.Desired != 2 || before.States["InService"] != 2 {
		t.Fatalf("the pool group is %+v before the standby", before)
	}

	code, out, errOut := c.run("env", "show", "staging", "--output", "json")
	if code != 0 {
		t.Fatalf("env show: exit %d: %s", code, errOut)
	}
	var inv struct {
		Groups []struct {
			Name  string
			Hooks []struct{ Name string }
		}
		Databases     []struct{ ID, Group, Volume string }
		LoadBalancers []struct {
			Name      string
			Listeners []struct{ Entry bool }
		} `json:"load_balancers"`
		TargetGroups []struct{ Name string }       `json:"target_groups"`
		RDS          []struct{ ID, Engine string } `json:"rds_instances"`
		Buckets      []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("env show --output json: %v\n%s", err, out)
	}
	volumes := map[string]string{}
	for _, d := range inv.Databases {
		volumes[d.ID] = d.Volume
	}
	if len(inv.Groups) != 1 || len(inv.Groups[0].Hooks) != 2 || len(inv.Databases) != 2 || volumes["orders-1"] == "" || volumes["orders-2"] == "" ||
		len(inv.LoadBalancers) != 1 || len(inv.LoadBalancers[0].Listeners) != 1 || !inv.LoadBalancers[0].Listeners[0].Entry ||
		len(inv.TargetGroups) != 1 || len(inv.RDS) != 1 || inv.RDS[0].ID != "staging-db" || len(inv.Buckets) != 1 || inv.Buckets[0].Name != "staging-assets" {
		t.Fatalf("env show found %s", out)
	}

	// The text forms, logged for docs/environments.md.
	for _, args := range [][]string{{"env", "show", "staging"}, {"env", "standby", "staging", "--dry-run"}} {
		code, out, errOut := c.run(args...)
		if code != 0 {
			t.Fatalf("handover %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		t.Logf("$ handover %s\n%s%s", strings.Join(args, " "), errOut, out)
	}

	// Killed as it lowers MinSize, then as it moves the instances.
	for _, at := range []string{"MinSize", "EnterStandby"} {
		if !c.killAt(at, "env", "standby", "staging", "--lease-ttl", "2s") {
			t.Fatalf("env standby ended before the kill at %q", at)
		}
	}
	code, out, errOut = c.run("env", "standby", "staging", "--lease-ttl", "2s", "--poll", "200ms", "--output", "json")
	if code != 0 {
		t.Fatalf("env standby run again: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("$ handover env standby staging --lease-ttl 2s --output json   # run again after two kills\n%s%s", errOut, out)
	var op struct {
		ID        string
		InStandby bool `json:"in_standby"`
		Groups    []struct {
			Min, Desired int32
			Standby      []string
		}
	}
	if err := json.Unmarshal([]byte(out), &op); err != nil || !op.InStandby || len(op.Groups) != 1 || op.Groups[0].Min != 2 || len(op.Groups[0].Standby) != 2 {
		t.Fatalf("env standby --output json: %v\n%s", err, out)
	}
	if s := shapeOf(t, e, "orders"); s.Min != 0 || s.Desired != 0 || s.States["Standby"] != 2 || len(s.States) != 1 {
		t.Fatalf("in standby the group is %+v", s)
	}

	for _, at := range []string{"ExitStandby", "MinSize"} {
		if !c.killAt(at, "env", "resume", "staging", "--lease-ttl", "2s") {
			t.Fatalf("env resume ended before the kill at %q", at)
		}
	}
	code, out, errOut = c.run("env", "resume", "staging", "--lease-ttl", "2s", "--poll", "200ms")
	if code != 0 {
		t.Fatalf("env resume run again: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("$ handover env resume staging --lease-ttl 2s   # run again after two kills\n%s%s", errOut, out)
	if after := shapeOf(t, e, "orders"); after.Min != before.Min || after.Desired != before.Desired || after.Max != before.Max || after.States["InService"] != 2 || len(after.States) != 1 {
		t.Fatalf("after resume the group is %+v, before %+v", after, before)
	}
	if err := p.waitSettled(ctx, "orders", 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	dbs, err := e.API().Databases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs {
		if want, ok := volumes[d.ID]; ok && d.Volume != want {
			t.Errorf("database %s moved from %s to %s across the standby", d.ID, want, d.Volume)
		}
	}

	// Bad input: clear errors, exit 2, nothing changed.
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"env", "show", "nope"}, "unknown environment \"nope\""},
		{[]string{"env", "standby", "nope"}, "unknown environment"},
		{[]string{"env", "resume", "staging"}, "is not in standby"},
		{[]string{"env", "standby", "bad name"}, "letters, digits and hyphens"},
	} {
		code, _, errOut := c.run(tt.args...)
		t.Logf("$ handover %s\n%s(exit %d)", strings.Join(tt.args, " "), errOut, code)
		if code != 2 || !strings.Contains(errOut, tt.says) {
			t.Errorf("handover %s: exit %d, %q; want 2 saying %q", strings.Join(tt.args, " "), code, errOut, tt.says)
		}
	}
	if s := shapeOf(t, e, "orders"); s.Min != before.Min || s.Desired != before.Desired {
		t.Errorf("bad input changed the group: %+v", s)
	}

	// A group mid-update: refused, naming the update, and nothing recorded.
	if _, err := p.NewVersion(ctx, ""); err != nil {
		t.Fatal(err)
	}
	u, err := e.StartUpdate(ctx, api.UpdateRequest{Group: "orders", Strategy: "rolling", BatchSize: 1, MinHealthyPercent: 50, Bake: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = c.run("env", "standby", "staging")
	t.Logf("$ handover env standby staging   # while update %s runs\n%s(exit %d)", u.ID, errOut, code)
	if code != 2 || !strings.Contains(errOut, "group update "+u.ID+" of group orders") || !strings.Contains(errOut, "handover update --abort "+u.ID) {
		t.Errorf("env standby during update %s: exit %d, %q", u.ID, code, errOut)
	}
	if _, err := e.API().AbortUpdate(ctx, u.ID, "test abort"); err != nil {
		t.Fatal(err)
	}
	finished(t, e, u.ID)
}
