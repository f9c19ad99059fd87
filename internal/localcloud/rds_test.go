package localcloud

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/localcloud/faults"
	"github.com/handover-dev/handover/internal/testenv"
)

// TestQueryVersionIsCheckedAlike: every Query-protocol service answers an
// API version it does not speak with the same error, InvalidAction, as
// AWS's services do ("Could not find operation … for version …").
func TestQueryVersionIsCheckedAlike(t *testing.T) {
	c, err := New(Config{DataDir: testenv.OpenTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	for svc, action := range map[string]string{
		ServiceEC2: "DescribeVolumes", ServiceAutoScaling: "DescribeAutoScalingGroups",
		ServiceELB: "DescribeLoadBalancers", ServiceRDS: "DescribeDBInstances",
	} {
		t.Run(svc, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("Action="+action+"&Version=1999-01-01"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			// The router reads the service from the credential scope.
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20260101/us-east-1/"+svc+"/aws4_request, SignedHeaders=host, Signature=0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc struct {
				Code string `xml:"Errors>Error>Code"`
				Err  string `xml:"Error>Code"`
			}
			if err := xml.NewDecoder(resp.Body).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			if code := doc.Code + doc.Err; resp.StatusCode != 400 || code != "InvalidAction" {
				t.Errorf("%s with a bad Version: %d %s, want 400 InvalidAction", svc, resp.StatusCode, code)
			}
		})
	}
}

// TestRDSThroughTheRouter: the AWS CLI reaches RDS on the local cloud's
// one endpoint, and faults on demand work for it as for the others.
func TestRDSThroughTheRouter(t *testing.T) {
	if os.Getenv("HANDOVER_SKIP_POSTGRES") == "1" {
		t.Skip("HANDOVER_SKIP_POSTGRES=1")
	}
	c, err := New(Config{DataDir: testenv.OpenTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if c.RDS == nil {
		t.Fatal("RDS did not start")
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	cl := cli{t: t, endpoint: srv.URL, env: append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")}
	cl.run("rds", "create-db-instance", "--db-instance-identifier", "app-db", "--db-instance-class", "db.t3.micro", "--engine", "postgres",
		"--master-username", "app", "--master-user-password", "local-Secret1", "--vpc-security-group-ids", "sg-1", "sg-2",
		"--tags", "Key=handover:environment,Value=staging")
	type described struct {
		DBInstances []struct {
			DBInstanceStatus  string
			VpcSecurityGroups []struct{ VpcSecurityGroupId string }
			TagList           []struct{ Key, Value string }
		}
	}
	var d described
	cl.eventually("app-db available", func() bool {
		d = described{}
		_ = json.Unmarshal([]byte(cl.run("rds", "describe-db-instances", "--db-instance-identifier", "app-db")), &d)
		return len(d.DBInstances) == 1 && d.DBInstances[0].DBInstanceStatus == "available"
	})
	if in := d.DBInstances[0]; len(in.VpcSecurityGroups) != 2 || len(in.TagList) != 1 || in.TagList[0].Value != "staging" {
		t.Errorf("security groups %v, tags %v", in.VpcSecurityGroups, in.TagList)
	}

	if _, err := c.Faults.Add(faults.Rule{Service: ServiceRDS, Action: "DescribeDBInstances", Kind: faults.Throttle, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.try("rds", "describe-db-instances"); err == nil || !strings.Contains(out, "Throttling") {
		t.Errorf("throttled call: %v %s", err, out)
	}
	cl.run("rds", "delete-db-instance", "--db-instance-identifier", "app-db", "--skip-final-snapshot")
}

// try runs the CLI and returns its stderr and error instead of failing.
func (c cli) try(args ...string) (string, error) {
	cmd := exec.Command(awsCLI, append([]string{"--endpoint-url", c.endpoint, "--output", "json"}, args...)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
