package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/jackc/pgx/v5"

	lcrds "github.com/handover-dev/handover/internal/localcloud/rds"
	"github.com/handover-dev/handover/internal/testenv"
)

// TestReplicaCommands runs `handover replica` against the local cloud's
// RDS on real servers: create (and its rerun), check passing and then
// failing with exit 1, status, the bad input that exits 2, promote, and
// that no password reaches the logs.
func TestReplicaCommands(t *testing.T) {
	if os.Getenv("HANDOVER_SKIP_POSTGRES") == "1" {
		t.Skip("HANDOVER_SKIP_POSTGRES=1")
	}
	dir := testenv.OpenTempDir(t)
	svc, err := lcrds.New(lcrds.Config{DataDir: filepath.Join(dir, "rds"), Region: "us-east-1", AccountID: "000000000000", MonitorInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	const masterPW = "cli-master-Secret1"
	t.Setenv("HANDOVER_MASTER_PASSWORD", masterPW)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	client := awsrds.New(awsrds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")})
	if _, err := client.CreateDBInstance(ctx, &awsrds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("app-db"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("app"), MasterUserPassword: aws.String(masterPW), DBName: aws.String("app"), BackupRetentionPeriod: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	w := awsrds.NewDBInstanceAvailableWaiter(client, func(o *awsrds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	})
	out, err := w.WaitForOutput(ctx, &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("app-db")}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ep := out.DBInstances[0].Endpoint
	m, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:%s@%s:%d/app?sslmode=disable", masterPW, aws.ToString(ep.Address), aws.ToInt32(ep.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if _, err := m.Exec(ctx, `CREATE TABLE events (id bigserial PRIMARY KEY, body text); INSERT INTO events (body) VALUES ('a')`); err != nil {
		t.Fatal(err)
	}

	common := []string{"--endpoint-url", srv.URL, "--poll", "50ms", "--log-level", "debug"}
	run := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		all := append(args, common...)
		if args[1] != "promote" && args[1] != "delete" { // the commands that connect to the servers
			all = append(all, "--sslmode", "disable")
		}
		code := Execute(ctx, all, &o, &e)
		return code, o.String(), e.String()
	}
	pwFile := filepath.Join(dir, "bi.pw")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no replica", []string{"replica", "create", "--source", "app-db", "--role", "bi"}, "--replica is required"},
		{"unknown source", []string{"replica", "create", "--source", "nope", "--replica", "app-rr", "--role", "bi"}, "source DB instance nope not found"},
		{"superuser role name", []string{"replica", "create", "--source", "app-db", "--replica", "app-rr", "--role", "rdsadmin"}, "is a superuser"},
		{"unknown output", []string{"replica", "status", "--replica", "app-rr", "--output", "yaml"}, "unknown output"},
		{"check without a password file", []string{"replica", "check", "--replica", "app-rr", "--role", "bi"}, "--password-file"},
	} {
		code, _, stderr := run(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, stderr, tc.want)
		}
	}
	if _, err := client.DescribeDBInstances(ctx, &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("app-rr")}); err == nil {
		t.Fatal("a refused create made the replica anyway")
	}

	code, stdout, stderr := run("replica", "create", "--source", "app-db", "--replica", "app-rr", "--role", "bi", "--database", "app", "--lock-public",
		"--password-file", pwFile, "--output", "json")
	if code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var created struct {
		Replica        string
		ReplicaCreated bool `json:"replica_created"`
		Drift          int
		Password       string `json:"generated_password"`
		Role           struct {
			Changes []struct{ What, State string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &created); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil || len(strings.TrimSpace(string(pw))) != 32 {
		t.Fatalf("password file: %q (%v)", pw, err)
	}
	if st, _ := os.Stat(pwFile); st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
	}
	if !created.ReplicaCreated || created.Password != "" || len(created.Role.Changes) == 0 {
		t.Errorf("create output %+v", created)
	}
	secret := strings.TrimSpace(string(pw))
	if strings.Contains(stdout+stderr, secret) || strings.Contains(stderr, masterPW) {
		t.Error("a password reached the output or the logs")
	}

	code, stdout, stderr = run("replica", "create", "--source", "app-db", "--replica", "app-rr", "--role", "bi", "--database", "app", "--lock-public", "--password-file", pwFile)
	if code != 0 || !strings.Contains(stdout, "found (made by an earlier run)") || !strings.Contains(stdout, "drift: 0 item(s)") {
		t.Errorf("rerun: exit %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = run("replica", "check", "--replica", "app-rr", "--role", "bi", "--database", "app", "--password-file", pwFile)
	if code != 0 || !strings.Contains(stdout, "PASSED: role bi on app-db") {
		t.Fatalf("check: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, secret) || strings.Contains(stderr, masterPW) {
		t.Error("a password reached the check's output or logs")
	}
	if _, err := m.Exec(ctx, `GRANT DELETE ON events TO bi_group`); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run("replica", "check", "--replica", "app-rr", "--role", "bi", "--database", "app", "--password-file", pwFile, "--output", "json")
	var rep struct {
		Passed  bool
		Results []struct{ Check, Status string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.Passed {
		t.Fatalf("check with DELETE granted: exit %d, passed %v (%v)", code, rep.Passed, err)
	}
	found := false
	for _, r := range rep.Results {
		found = found || r.Check == "DELETE from public.events is refused" && r.Status == "fail"
	}
	if !found {
		t.Errorf("the DELETE failure is not reported: %+v", rep.Results)
	}

	code, stdout, stderr = run("replica", "status", "--replica", "app-rr", "--output", "json")
	var st struct {
		Source   string
		LagBytes *int64 `json:"lag_bytes"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || st.Source != "app-db" || st.LagBytes == nil {
		t.Errorf("status: exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	code, stdout, stderr = run("replica", "promote", "--replica", "app-rr")
	if code != 0 || !strings.Contains(stdout, "app-rr promoted") {
		t.Errorf("promote: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = run("replica", "delete", "--replica", "app-rr")
	if code != 2 || !strings.Contains(stderr, "not a read replica") {
		t.Errorf("delete of a promoted instance: exit %d %s", code, stderr)
	}
}
