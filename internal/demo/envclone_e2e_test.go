package demo

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestEnvClone: staging is a kvstore pool group of two databases, its
// load balancer (the entry point) and target group, a PostgreSQL RDS
// instance and a bucket; the group's tags reference the RDS endpoint, the
// bucket and the load balancer's DNS name. handover env clone --dry-run
// plans the snapshots of both databases' volumes and of the RDS instance,
// the bucket copy, DST's resources and the three rewrites; it refuses an
// untagged bucket referenced by a tag until --set says what DST uses, a
// DST that exists and an unknown SRC, changing nothing. Then the clone
// runs, under writes (cloneUnderWrites).
func TestEnvClone(t *testing.T) {
	e := newBareEnv(t, Options{})
	bin, _ := binaries(t)
	c := envCLI{t: t, e: e, bin: bin}
	ctx := t.Context()
	p, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	tagEnvironment(t, e, "orders", "staging")

	var inv struct {
		Databases     []struct{ ID, Volume string }
		LoadBalancers []struct {
			DNSName   string `json:"dns_name"`
			Listeners []struct{ Port int }
		} `json:"load_balancers"`
		RDS []struct{ ID, Endpoint string } `json:"rds_instances"`
	}
	// The RDS instance has an endpoint once it is available.
	var code int
	var out, errOut string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		code, out, errOut = c.run("env", "show", "staging", "--output", "json")
		if code != 0 || json.Unmarshal([]byte(out), &inv) != nil || len(inv.Databases) != 2 || len(inv.RDS) != 1 || len(inv.LoadBalancers) != 1 {
			t.Fatalf("env show: exit %d: %s%s", code, errOut, out)
		}
		if inv.RDS[0].Endpoint != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RDS instance staging-db has no endpoint after 2 minutes: %s", out)
		}
	}
	tag := func(k, v string) {
		t.Helper()
		if _, err := e.ASG.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: aws.String("orders"),
			ResourceType: aws.String("auto-scaling-group"), Key: aws.String(k), Value: aws.String(v)}}}); err != nil {
			t.Fatal(err)
		}
	}
	tag("app:database", "postgres://app@"+inv.RDS[0].Endpoint+"/app")
	tag("app:assets", "s3://staging-assets/static")
	tag("app:peer", fmt.Sprintf("http://%s:%d/", inv.LoadBalancers[0].DNSName, inv.LoadBalancers[0].Listeners[0].Port))
	tag("app:logs", "s3://shared-logs/orders")
	before := shapeOf(t, e, "orders")

	// An untagged bucket referenced by a tag: refused, the plan shown.
	code, out, errOut = c.run("env", "clone", "staging", "prod", "--dry-run")
	t.Logf("$ handover env clone staging prod --dry-run\n%s%s(exit %d)", out, errOut, code)
	if code != 2 || !strings.Contains(errOut, "s3://shared-logs (bucket, in tag app:logs of group orders)") || !strings.Contains(errOut, "--set REF=REF") {
		t.Fatalf("clone with an untagged reference: exit %d: %s", code, errOut)
	}

	args := []string{"env", "clone", "staging", "prod", "--dry-run", "--set", "s3://shared-logs=s3://shared-logs"}
	code, out, errOut = c.run(args...)
	t.Logf("$ handover %s\n%s%s", strings.Join(args, " "), out, errOut)
	if code != 0 {
		t.Fatalf("clone --dry-run: exit %d: %s", code, errOut)
	}
	code, out, errOut = c.run(append(args, "--output", "json")...)
	if code != 0 {
		t.Fatalf("clone --dry-run --output json: exit %d: %s", code, errOut)
	}
	var plan struct {
		Fence     []struct{ Database, Volume string }
		Snapshots []struct{ Kind, Of, Volume, For string }
		Copies    []struct{ From, To string } `json:"bucket_copies"`
		Creates   []struct{ Kind, Name string }
		Rewrites  []struct {
			From, To, Why string
			Where         []string
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	snaps := map[string]string{}
	for _, s := range plan.Snapshots {
		snaps[s.Kind+" "+s.Of] = s.Volume
	}
	for _, d := range inv.Databases {
		if snaps["ebs "+d.ID] != d.Volume {
			t.Errorf("no EBS snapshot of %s's volume %s planned: %+v", d.ID, d.Volume, plan.Snapshots)
		}
	}
	if _, ok := snaps["rds staging-db"]; !ok || len(plan.Fence) != 2 || len(plan.Copies) != 1 || plan.Copies[0].To != "prod-assets" {
		t.Errorf("plan %s", out)
	}
	kinds := map[string]int{}
	for _, cr := range plan.Creates {
		kinds[cr.Kind]++
	}
	for k, n := range map[string]int{"launch-template": 1, "group": 1, "load-balancer": 1, "target-group": 1, "rds": 1, "bucket": 1, "database": 2} {
		if kinds[k] != n {
			t.Errorf("plan creates %d %s, want %d: %+v", kinds[k], k, n, plan.Creates)
		}
	}
	why := map[string]bool{}
	for _, r := range plan.Rewrites {
		why[r.Why] = true
	}
	for _, w := range []string{"bucket", "rds-endpoint", "lb-dns", "--set"} {
		if !why[w] {
			t.Errorf("no %s rewrite planned: %+v", w, plan.Rewrites)
		}
	}

	// Refused, exit 2, nothing changed. prod2-assets (the bucket a clone
	// into prod2 would make) exists untagged; a bucket tagged prod3 makes
	// environment prod3 exist.
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"prod2-assets", "prod3-things"} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("prod3-things"),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("handover:environment"), Value: aws.String("prod3")}}}}); err != nil {
		t.Fatal(err)
	}
	keep := "s3://shared-logs=s3://shared-logs"
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"env", "clone", "nope", "prod", "--dry-run"}, `unknown environment "nope"`},
		{[]string{"env", "clone", "staging", "staging", "--dry-run"}, "a new environment's name"},
		{[]string{"env", "clone", "staging", "prod3", "--dry-run", "--set", keep}, "environment prod3 exists"},
		{[]string{"env", "clone", "staging", "prod2", "--dry-run", "--set", keep}, "would create bucket prod2-assets, and the name is taken"},
		{[]string{"env", "clone", "staging", "prod", "--dry-run", "--set", "noequals"}, "want FROM=TO"},
		{[]string{"env", "clone", "staging", "prod", "--dry-run", "--set", keep, "--set", "typo.example.com=x"}, `"typo.example.com" appears in none`},
		{[]string{"env", "clone", "staging", "prod", "--dry-run", "--quiesce", "freeze"}, "want fence"},
	} {
		code, _, errOut := c.run(tt.args...)
		t.Logf("$ handover %s\n%s(exit %d)", strings.Join(tt.args, " "), errOut, code)
		if code != 2 || !strings.Contains(errOut, tt.says) {
			t.Errorf("handover %s: exit %d, %q; want 2 saying %q", strings.Join(tt.args, " "), code, errOut, tt.says)
		}
	}
	if s := shapeOf(t, e, "orders"); s.Min != before.Min || s.Desired != before.Desired || s.States["InService"] != before.States["InService"] {
		t.Errorf("a plan changed the group: %+v, before %+v", s, before)
	}

	cloneUnderWrites(t, e, c, p, keep)
}
