package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

// TestEnvMigrateAbortAfterCutover: staging is migrated while a client
// reads and writes through its entry listener; the migration is
// SIGKILLed in its bake, after the entry was switched to staging-next and
// staging's fence lifted, and handover env abort staging is run. The entry
// forwards to staging's own target group again, staging-next is deleted
// (nothing tagged with it or with the operations is left), staging's
// inventory is identical to the one before, every read was answered, and
// the writes acknowledged before the migration and after the abort are in
// staging's databases. Writes staging-next acknowledged between the
// cutover and the abort are not: the abort deletes them with it, which the
// test counts and docs/environments.md says.
func TestEnvMigrateAbortAfterCutover(t *testing.T) {
	e := newBareEnv(t, Options{RDSPassword: "app-password-1"}) // the controller lifts RDS fences in aborts
	bin, _ := binaries(t)
	c := envCLI{t: t, e: e, bin: bin}
	ctx := t.Context()
	p, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	tagEnvironment(t, e, "orders", "staging")
	rdsConn(t, e, "staging-db") // waits for it to be available

	cl := startEntryClient(p.LBURL)
	defer cl.stop()
	time.Sleep(2 * time.Second)

	args := []string{"env", "migrate", "staging", "--bake", "10m", "--rds-password-file", rdsPasswordFile(t), "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	if !c.killAt("baking", args...) {
		t.Fatalf("env migrate ended before the kill in its bake")
	}
	time.Sleep(time.Second) // writes through the entry to staging-next
	code, out, errOut := c.run("env", "abort", "staging", "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort), "--output", "json")
	t.Logf("$ handover env abort staging --output json   # the migration killed in its bake\n%s", errOut)
	if code != 0 {
		t.Fatalf("env abort: exit %d\n%s\n%s", code, out, errOut)
	}
	var op struct {
		ID, Op, State, Error string
		Identical            bool
		Migration            struct {
			SwitchedAt   time.Time `json:"switched_at"`
			SwitchedBack bool      `json:"switched_back"`
			SourceTG     string    `json:"source_tg"`
		}
	}
	if err := json.Unmarshal([]byte(out), &op); err != nil || op.Op != "migrate" || op.State != "Aborted" || !op.Identical || !op.Migration.SwitchedBack {
		t.Fatalf("env abort --output json: %v\n%s", err, out)
	}
	abortEnded := time.Now()
	time.Sleep(2 * time.Second) // writes to staging after the abort
	cl.stop()

	if len(cl.failedReads) > 0 || len(cl.refusedBare) > 0 || len(cl.writeFailures) > 0 {
		t.Errorf("failed reads %v, bare refusals %v, unanswered writes %v", cl.failedReads[:min(len(cl.failedReads), 10)], cl.refusedBare[:min(len(cl.refusedBare), 10)], cl.writeFailures[:min(len(cl.writeFailures), 10)])
	}
	// The entry forwards to staging's target group again; staging-next
	// is gone.
	lbs, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lbs.LoadBalancers) != 1 || aws.ToString(lbs.LoadBalancers[0].LoadBalancerName) != "orders" {
		t.Errorf("%d load balancers after the abort, want only staging's", len(lbs.LoadBalancers))
	}
	ls, err := e.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Listeners) != 1 || aws.ToString(ls.Listeners[0].DefaultActions[0].TargetGroupArn) != op.Migration.SourceTG {
		t.Errorf("the entry load balancer has %d listeners, forwarding to %s; want 1 to %s", len(ls.Listeners), aws.ToString(ls.Listeners[0].DefaultActions[0].TargetGroupArn), op.Migration.SourceTG)
	}
	tgs, err := e.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tgs.TargetGroups) != 1 {
		t.Errorf("%d target groups after the abort, want only staging's", len(tgs.TargetGroups))
	}
	if code, _, errOut := c.run("env", "show", "staging-next"); code != 2 || !strings.Contains(errOut, "unknown environment") {
		t.Errorf("env show staging-next after the abort: exit %d, %s", code, errOut)
	}

	// Writes: those staging acknowledged are in its databases; those
	// staging-next acknowledged between the cutover and the abort are gone.
	hc := newClient()
	in := map[string]bool{}
	for _, db := range []string{"orders-1", "orders-2"} {
		addr, err := p.route(ctx, db)
		if err != nil || addr == "" {
			t.Fatalf("finding the instance of %s: %v", db, err)
		}
		for _, a := range cl.acked {
			code, body, err := get(ctx, hc, addr, a.key)
			if err != nil {
				t.Fatal(err)
			}
			if code == http.StatusOK && bytes.Equal(body, value(a.key, 512)) {
				in[a.key] = true
			}
		}
	}
	lost, before, after := 0, 0, 0
	for _, a := range cl.acked {
		switch {
		case in[a.key] && a.at.After(abortEnded):
			after++
		case in[a.key]:
			before++
		case a.at.After(op.Migration.SwitchedAt) && a.at.Before(abortEnded):
			lost++ // acknowledged by staging-next, deleted with it
		default:
			t.Errorf("write %s, acknowledged at %s (the switch at %s, the abort's end at %s), is not in staging", a.key, a.at, op.Migration.SwitchedAt, abortEnded)
		}
	}
	t.Logf("writes: %d acknowledged by staging before the migration, %d after the abort, all in staging; %d acknowledged by staging-next between the cutover and the abort, deleted with it", before, after, lost)
	if before == 0 || after == 0 {
		t.Errorf("want writes in staging from before the migration and after the abort: %d, %d", before, after)
	}
}
