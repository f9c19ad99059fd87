package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

// rdsConn waits for an RDS instance of the local cloud to be available and
// connects to its app database as the master user tagEnvironment made.
func rdsConn(t testing.TB, e *Env, id string) *pgx.Conn {
	t.Helper()
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	w := rds.NewDBInstanceAvailableWaiter(rds.NewFromConfig(cfg), func(o *rds.DBInstanceAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second })
	out, err := w.WaitForOutput(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, 5*time.Minute)
	if err != nil {
		t.Fatalf("waiting for RDS instance %s: %v", id, err)
	}
	ep := out.DBInstances[0].Endpoint
	c, err := pgx.Connect(t.Context(), fmt.Sprintf("postgres://app:app-password-1@%s:%d/app?sslmode=disable", aws.ToString(ep.Address), aws.ToInt32(ep.Port)))
	if err != nil {
		t.Fatalf("connecting to RDS instance %s: %v", id, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tableSum is a table's row count and a checksum of its rows in order.
func tableSum(t *testing.T, c *pgx.Conn, table string) (int64, string) {
	t.Helper()
	var n int64
	var sum string
	if err := c.QueryRow(t.Context(), "SELECT count(*), coalesce(md5(string_agg(id::text || ':' || body, ',' ORDER BY id)), '') FROM "+table).Scan(&n, &sum); err != nil {
		t.Fatalf("summing %s: %v", table, err)
	}
	return n, sum
}

// cloneUnderWrites clones staging (TestEnvClone's) into prod while a
// tenant router writes to both databases and reads its writes back. The
// clone is SIGKILLed twice (with the databases fenced, and as DST is being
// built) and run again. prod then holds every write acknowledged before
// the quiesce and none made after it, key by key; its RDS table and its
// bucket equal staging's, object by object; the references in its group's
// tags name prod's resources; staging's writes went on after the pause
// the clone reports.
func cloneUnderWrites(t *testing.T, e *Env, c envCLI, p *Pool, keep string) {
	ctx := t.Context()
	// The persistent parts other than the databases: a table, and
	// objects including two of the same size (what aws s3 sync's size
	// and time comparison can miss).
	pg := rdsConn(t, e, "staging-db")
	if _, err := pg.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, body text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Exec(ctx, "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g"); err != nil {
		t.Fatal(err)
	}
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	objects := map[string]string{"static/app.js": "console.log(1)", "static/app.css": "body{}", "data/a.json": `{"v":1}`, "data/b.json": `{"v":2}`}
	for k, v := range objects {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("staging-assets"), Key: aws.String(k), Body: strings.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
	}

	w := p.StartTenantWrites()
	defer w.Stop()
	time.Sleep(3 * time.Second) // writes acknowledged before the quiesce

	// Killed while the databases are fenced, then while DST is built.
	args := []string{"env", "clone", "staging", "prod", "--set", keep, "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	for _, at := range []string{"fenced", "created target-group"} {
		if !c.killAt(at, args...) {
			t.Fatalf("env clone ended before the kill at %q", at)
		}
	}
	code, out, errOut := c.run(append(args, "--output", "json")...)
	if code != 0 {
		t.Fatalf("env clone run again: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("$ handover env clone staging prod   # run again after two kills\n%s", errOut)
	if strings.Contains(errOut, "SDK ") {
		t.Errorf("the clone's stderr carries the SDK's own log lines:\n%s", errOut)
	}
	var op struct {
		ID      string
		State   string
		Cloning struct {
			QuiescedAt   time.Time `json:"quiesced_at"`
			UnquiescedAt time.Time `json:"unquiesced_at"`
			Items        []struct{ Kind, Name, ID string }
		} `json:"clone"`
		WritePauseMS int64 `json:"write_pause_ms"`
	}
	if err := json.Unmarshal([]byte(out), &op); err != nil || op.State != "Succeeded" {
		t.Fatalf("env clone --output json: %v\n%s", err, out)
	}
	t.Logf("staging's write pause: %d ms (two kills included)", op.WritePauseMS)
	time.Sleep(2 * time.Second) // writes after the quiesce, which prod must not have
	w.Stop()

	// prod's databases, key by key, through the instances that hold them.
	hc := newClient()
	acked := w.ackedKeys()
	after := 0
	for db, keys := range acked {
		dst := db + "-prod"
		addr, err := p.route(ctx, dst)
		if err != nil || addr == "" {
			t.Fatalf("finding the instance of %s: %v", dst, err)
		}
		present, absent := 0, 0
		for _, a := range keys {
			code, body, err := get(ctx, hc, addr, a.key)
			if err != nil {
				t.Fatalf("reading %s from %s: %v", a.key, dst, err)
			}
			switch {
			case a.at.Before(op.Cloning.QuiescedAt):
				if code != http.StatusOK || !bytes.Equal(body, value(a.key, 512)) {
					t.Errorf("%s: %s was acknowledged before the quiesce but reads %d from %s", dst, a.key, code, dst)
				}
				present++
			case a.at.After(op.Cloning.UnquiescedAt.Add(time.Second)):
				if code != http.StatusNotFound {
					t.Errorf("%s: %s was written after the quiesce ended but %s has it (%d)", dst, a.key, dst, code)
				}
				absent++
				after++
			}
		}
		t.Logf("%s: %d writes acknowledged before the quiesce all in %s; %d made after it absent", db, present, dst, absent)
		if present == 0 {
			t.Errorf("no write to %s was acknowledged before the quiesce", db)
		}
	}
	if after == 0 {
		t.Errorf("no write was acknowledged after the quiesce: staging did not take writes again")
	}
	res, err := w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.StaleReads != 0 {
		t.Errorf("%d stale reads on staging during the clone: %v", res.StaleReads, res.StaleKeys)
	}

	// The RDS table, and the bucket, object by object.
	n, sum := tableSum(t, pg, "orders")
	dn, dsum := tableSum(t, rdsConn(t, e, "prod-db"), "orders")
	if dn != n || dsum != sum {
		t.Errorf("prod-db's orders: %d rows (%s), staging-db's %d (%s)", dn, dsum, n, sum)
	}
	for k, v := range objects {
		got, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("prod-assets"), Key: aws.String(k)})
		if err != nil {
			t.Errorf("prod-assets %s: %v", k, err)
			continue
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(got.Body)
		got.Body.Close()
		if b.String() != v {
			t.Errorf("prod-assets %s = %q, want %q", k, b.String(), v)
		}
	}

	// prod is its own environment: env show lists it, its group in service.
	code, out, errOut = c.run("env", "show", "prod")
	if code != 0 {
		t.Fatalf("env show prod: exit %d: %s", code, errOut)
	}
	t.Logf("$ handover env show prod\n%s", out)
	g, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"orders-prod"}})
	if err != nil || len(g.AutoScalingGroups) != 1 || len(g.AutoScalingGroups[0].Instances) != 2 {
		t.Fatalf("prod's group: %v %+v", err, g)
	}
	// The references in its tags name prod's resources.
	var prod struct {
		LoadBalancers []struct {
			DNSName   string `json:"dns_name"`
			Listeners []struct{ Port int }
		} `json:"load_balancers"`
		RDS []struct{ ID, Endpoint string } `json:"rds_instances"`
	}
	code, out, errOut = c.run("env", "show", "prod", "--output", "json")
	if code != 0 || json.Unmarshal([]byte(out), &prod) != nil || len(prod.LoadBalancers) != 1 || len(prod.LoadBalancers[0].Listeners) != 1 || len(prod.RDS) != 1 {
		t.Fatalf("env show prod --output json: exit %d: %s%s", code, errOut, out)
	}
	tags := map[string]string{}
	for _, tg := range g.AutoScalingGroups[0].Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	for k, want := range map[string]string{
		"app:database":         "postgres://app@" + prod.RDS[0].Endpoint + "/app",
		"app:assets":           "s3://prod-assets/static",
		"app:peer":             fmt.Sprintf("http://%s:%d/", prod.LoadBalancers[0].DNSName, prod.LoadBalancers[0].Listeners[0].Port),
		"app:logs":             "s3://shared-logs/orders",
		"handover:environment": "prod",
	} {
		if tags[k] != want {
			t.Errorf("prod's group tag %s = %q, want %q", k, tags[k], want)
		}
	}

	// Run again: the clone ended and prod exists, so it is refused.
	code, _, errOut = c.run("env", "clone", "staging", "prod")
	if code != 2 || !strings.Contains(errOut, "environment prod exists") {
		t.Errorf("a second clone into prod: exit %d, %q", code, errOut)
	}

	verifyClone(t, e, c, p)
}
