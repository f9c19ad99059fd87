package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// verifyClone runs handover env verify on cloneUnderWrites' clone of
// staging into prod: it passes as the clone left prod, with a
// --verify-cmd that sees prod's endpoints; then a key written to one of
// prod's databases, a row changed in prod-db and an object rewritten in
// prod-assets are each named, and so is a failing --verify-cmd; a verify
// SIGKILLed while its scratch instance is being restored, run again,
// finishes and leaves no scratch instance behind.
func verifyClone(t *testing.T, e *Env, c envCLI, p *Pool) {
	ctx := t.Context()
	pw := filepath.Join(t.TempDir(), "rds-password")
	if err := os.WriteFile(pw, []byte("app-password-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"env", "verify", "staging", "prod", "--rds-password-file", pw, "--poll", "300ms", "--lease-ttl", "2s", "--service-port", fmt.Sprint(servicePort)}

	code, out, errOut := c.run("env", "verify", "staging", "prod", "--dry-run")
	t.Logf("$ handover env verify staging prod --dry-run\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "database orders-1-prod: its data directory's manifest") || !strings.Contains(out, "scratch instance verify-") {
		t.Fatalf("verify --dry-run: exit %d", code)
	}
	code, _, errOut = c.run("env", "verify", "staging", "prod")
	if code != 2 || !strings.Contains(errOut, "HANDOVER_RDS_PASSWORD") {
		t.Errorf("verify without the RDS password: exit %d, %s", code, errOut)
	}
	code, _, errOut = c.run("env", "verify", "staging", "nope")
	if code != 2 || !strings.Contains(errOut, "no clone of staging into nope") {
		t.Errorf("verify of no clone: exit %d, %s", code, errOut)
	}

	check := `test "$HANDOVER_ENV" = prod && echo "entry $HANDOVER_LB_URL, rds $HANDOVER_RDS_PROD_DB_ENDPOINT, buckets $HANDOVER_BUCKETS"`
	start := time.Now()
	code, out, errOut = c.run(append(base, "--verify-cmd", check)...)
	took := time.Since(start)
	t.Logf("$ handover env verify staging prod --verify-cmd '%s'   # %s\n%s%s", check, took.Round(100*time.Millisecond), errOut, out)
	if code != 0 || !strings.Contains(out, ": passed") || !strings.Contains(out, "entry http://") {
		t.Fatalf("verify of the clone as it is: exit %d", code)
	}

	// Tamper with one of each: a key, a row, an object.
	addr, err := p.route(ctx, "orders-1-prod")
	if err != nil || addr == "" {
		t.Fatalf("finding orders-1-prod: %v", err)
	}
	if err := put(ctx, newClient(), addr, "tampered", []byte("x")); err != nil {
		t.Fatal(err)
	}
	prod := rdsConn(t, e, "prod-db")
	if _, err := prod.Exec(ctx, "UPDATE orders SET body = 'tampered' WHERE id = 42"); err != nil {
		t.Fatal(err)
	}
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("prod-assets"), Key: aws.String("data/a.json"), Body: strings.NewReader(`{"v":9}`)}); err != nil {
		t.Fatal(err)
	}

	// Killed while its scratch instance is restored, then run again.
	failing := "echo smoke test: order 42 is wrong; exit 7"
	args := append(base, "--verify-cmd", failing)
	if !c.killAt("restoring snapshot", args...) {
		t.Fatal("env verify ended before the kill")
	}
	code, out, errOut = c.run(args...)
	t.Logf("$ handover env verify staging prod --verify-cmd '%s'   # run again after the kill\n%s%s(exit %d)", failing, errOut, out, code)
	if code != 1 {
		t.Fatalf("verify of a tampered clone: exit %d", code)
	}
	for _, want := range []string{
		"database orders-1-prod: its volume differs from orders-1's at the quiesce point: seg-",
		"rds prod-db table public.orders: 5000 rows",
		"bucket prod-assets: data/a.json differs",
		"--verify-cmd exited 7",
		"smoke test: order 42 is wrong",
		"taking up the verify",
	} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("the verify of a tampered clone does not say %q", want)
		}
	}
	if strings.Contains(out+errOut, "orders-2-prod: its volume differs") {
		t.Errorf("orders-2-prod, untouched, is reported different")
	}
	left, err := rds.NewFromConfig(cfg).DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range left.DBInstances {
		if strings.HasPrefix(aws.ToString(d.DBInstanceIdentifier), "verify-") {
			t.Errorf("scratch instance %s (%s) left behind", aws.ToString(d.DBInstanceIdentifier), aws.ToString(d.DBInstanceStatus))
		}
	}

	code, out, _ = c.run(append(base, "--output", "json")...)
	var rep struct {
		OK         bool
		Mismatches []string
		Tables     []struct{ Table, Sum, WantSum string }
	}
	// Without --verify-cmd: the three tampered parts.
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.OK || len(rep.Mismatches) != 3 || len(rep.Tables) != 1 {
		t.Errorf("verify --output json: exit %d: %s", code, out)
	}
}
