package rds

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/faults"
)

const goodCreate = "Action=CreateDBInstance&Version=2014-10-31&DBInstanceIdentifier=db1&DBInstanceClass=db.t3.micro&Engine=postgres&MasterUsername=app&MasterUserPassword=long-enough-1"

// TestBadRequests sends malformed or impossible requests over HTTP and
// checks each gets RDS's error code and status, and that none of them
// creates anything.
func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown action", "Action=LaunchRockets&Version=2014-10-31", 400, "InvalidAction"},
		{"other version", "Action=DescribeDBInstances&Version=2013-09-09", 400, "InvalidAction"},
		{"no action", "Version=2014-10-31", 400, "MissingAction"},
		{"non-PostgreSQL engine", strings.Replace(goodCreate, "Engine=postgres", "Engine=mysql", 1), 400, "InvalidParameterValue"},
		{"engine version not installed", goodCreate + "&EngineVersion=9.6.1", 400, "InvalidParameterCombination"},
		{"identifier starts with a digit", strings.Replace(goodCreate, "=db1", "=1db", 1), 400, "InvalidParameterValue"},
		{"identifier with two hyphens", strings.Replace(goodCreate, "=db1", "=db--1", 1), 400, "InvalidParameterValue"},
		{"no password", strings.Replace(goodCreate, "&MasterUserPassword=long-enough-1", "", 1), 400, "InvalidParameterValue"},
		{"short password", strings.Replace(goodCreate, "long-enough-1", "short", 1), 400, "InvalidParameterValue"},
		{"password with @", strings.Replace(goodCreate, "long-enough-1", "long%40enough", 1), 400, "InvalidParameterValue"},
		{"reserved master user", strings.Replace(goodCreate, "MasterUsername=app", "MasterUsername=rdsadmin", 1), 400, "InvalidParameterValue"},
		{"pg_ master user", strings.Replace(goodCreate, "MasterUsername=app", "MasterUsername=pg_app", 1), 400, "InvalidParameterValue"},
		{"no class", strings.Replace(goodCreate, "&DBInstanceClass=db.t3.micro", "", 1), 400, "MissingParameter"},
		{"retention out of range", goodCreate + "&BackupRetentionPeriod=36", 400, "InvalidParameterValue"},
		{"storage too small", goodCreate + "&AllocatedStorage=5", 400, "InvalidParameterValue"},
		{"unknown zone", goodCreate + "&AvailabilityZone=mars-1a", 400, "InvalidParameterValue"},
		{"generic member name for tags", goodCreate + "&Tags.member.1.Key=a&Tags.member.1.Value=b", 400, "InvalidParameterValue"},
		{"aws: tag", goodCreate + "&Tags.Tag.1.Key=aws:x&Tags.Tag.1.Value=b", 400, "InvalidParameterValue"},
		{"reserved database name", goodCreate + "&DBName=template1", 400, "InvalidParameterValue"},
		{"unknown instance", "Action=DescribeDBInstances&DBInstanceIdentifier=nope", 404, "DBInstanceNotFound"},
		{"unknown instance by ARN", "Action=DescribeDBInstances&DBInstanceIdentifier=arn:aws:rds:us-east-1:123456789012:db:nope", 404, "DBInstanceNotFound"},
		{"ARN of a snapshot for an instance", "Action=DescribeDBInstances&DBInstanceIdentifier=arn:aws:rds:us-east-1:123456789012:snapshot:x", 400, "InvalidParameterValue"},
		{"unknown filter", "Action=DescribeDBInstances&Filters.Filter.1.Name=colour&Filters.Filter.1.Values.Value.1=red", 400, "InvalidParameterValue"},
		{"filter without values", "Action=DescribeDBInstances&Filters.Filter.1.Name=engine", 400, "InvalidParameterValue"},
		{"MaxRecords too small", "Action=DescribeDBInstances&MaxRecords=5", 400, "InvalidParameterValue"},
		{"bad marker", "Action=DescribeDBInstances&Marker=zzz", 400, "InvalidParameterValue"},
		{"unknown snapshot", "Action=DescribeDBSnapshots&DBSnapshotIdentifier=nope", 404, "DBSnapshotNotFound"},
		{"delete unknown snapshot", "Action=DeleteDBSnapshot&DBSnapshotIdentifier=nope", 404, "DBSnapshotNotFound"},
		{"snapshot of unknown instance", "Action=CreateDBSnapshot&DBSnapshotIdentifier=s1&DBInstanceIdentifier=nope", 404, "DBInstanceNotFound"},
		{"restore unknown snapshot", "Action=RestoreDBInstanceFromDBSnapshot&DBInstanceIdentifier=r1&DBSnapshotIdentifier=nope", 404, "DBSnapshotNotFound"},
		{"promote unknown", "Action=PromoteReadReplica&DBInstanceIdentifier=nope", 404, "DBInstanceNotFound"},
		{"replica of unknown source", "Action=CreateDBInstanceReadReplica&DBInstanceIdentifier=r1&SourceDBInstanceIdentifier=nope", 404, "DBInstanceNotFound"},
		{"modify unknown", "Action=ModifyDBInstance&DBInstanceIdentifier=nope&DeletionProtection=true", 404, "DBInstanceNotFound"},
		{"modify with a bad boolean", "Action=ModifyDBInstance&DBInstanceIdentifier=nope&DeletionProtection=maybe", 400, "InvalidParameterValue"},
		{"delete unknown", "Action=DeleteDBInstance&DBInstanceIdentifier=nope&SkipFinalSnapshot=true", 404, "DBInstanceNotFound"},
		{"tags of a malformed ARN", "Action=ListTagsForResource&ResourceName=db1", 400, "InvalidParameterValue"},
		{"tags of another region", "Action=ListTagsForResource&ResourceName=arn:aws:rds:eu-west-1:123456789012:db:db1", 400, "InvalidParameterValue"},
		{"tags of an unknown instance", "Action=ListTagsForResource&ResourceName=arn:aws:rds:us-east-1:123456789012:db:nope", 404, "DBInstanceNotFound"},
		{"tags of an unknown snapshot", "Action=AddTagsToResource&ResourceName=arn:aws:rds:us-east-1:123456789012:snapshot:nope&Tags.Tag.1.Key=a", 404, "DBSnapshotNotFound"},
		{"remove tags without keys", "Action=RemoveTagsFromResource&ResourceName=arn:aws:rds:us-east-1:123456789012:db:nope", 400, "MissingParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(e.srv.URL, "application/x-www-form-urlencoded", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc struct {
				XMLName xml.Name `xml:"ErrorResponse"`
				Code    string   `xml:"Error>Code"`
				Message string   `xml:"Error>Message"`
			}
			if err := xml.NewDecoder(resp.Body).Decode(&doc); err != nil {
				t.Fatalf("status %d, body not an ErrorResponse: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || doc.Code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", resp.StatusCode, doc.Code, doc.Message, tc.status, tc.code)
			}
			if doc.Message == "" {
				t.Error("the error has no message")
			}
		})
	}
	e.svc.mu.Lock()
	n, m := len(e.svc.st.Instances), len(e.svc.st.Snapshots)
	e.svc.mu.Unlock()
	entries, _ := os.ReadDir(filepath.Join(e.dir, "rds", "instances"))
	if n != 0 || m != 0 || len(entries) != 0 {
		t.Errorf("refused requests left %d instances, %d snapshots, %d directories", n, m, len(entries))
	}
}

// TestFaults checks that the fault injector is asked for RDS calls, and
// that what it injects reaches the SDK with the code RDS uses.
func TestFaults(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		kind, code string
	}{{faults.Throttle, "Throttling"}, {faults.Error, "InternalError"}} {
		t.Run(tc.kind, func(t *testing.T) {
			e.faults.Clear()
			if _, err := e.faults.Add(faults.Rule{Service: ServiceName, Action: "DescribeDBInstances", Kind: tc.kind, Count: 1}); err != nil {
				t.Fatal(err)
			}
			_, err := e.client.DescribeDBInstances(ctx(t), &awsrds.DescribeDBInstancesInput{}, func(o *awsrds.Options) { o.RetryMaxAttempts = 1 })
			if apiCode(err) != tc.code {
				t.Fatalf("injected %s: %v, want %s", tc.kind, err, tc.code)
			}
			if _, err := e.client.DescribeDBInstances(ctx(t), &awsrds.DescribeDBInstancesInput{}); err != nil {
				t.Fatalf("after the fault's one hit: %v", err)
			}
		})
	}
	// A fault on another action leaves this one alone.
	e.faults.Clear()
	if _, err := e.faults.Add(faults.Rule{Service: ServiceName, Action: "CreateDBInstance", Kind: faults.Error}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DescribeDBInstances(ctx(t), &awsrds.DescribeDBInstancesInput{MaxRecords: aws.Int32(20)}); err != nil {
		t.Fatal(err)
	}
}

// FuzzRequestParsing feeds arbitrary form bodies to the request parsers:
// none may panic, and what they accept must be what RDS accepts.
func FuzzRequestParsing(f *testing.F) {
	for _, seed := range []string{
		goodCreate,
		"DBInstanceIdentifier=arn:aws:rds:us-east-1:123456789012:db:x&Tags.Tag.1.Key=a&Tags.Tag.2.Key=b&Tags.Tag.2.Value=c",
		"Filters.Filter.1.Name=engine&Filters.Filter.1.Values.Value.1=postgres&Filters.Filter.2.Name=db-instance-id",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1=sg-1&MaxRecords=20&Marker=lc1:abc",
		"DBInstanceIdentifier=A--b-&MasterUsername=pg_x&MasterUserPassword=%00%01",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		raw, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		v := awsproto.Values{Values: raw}
		if id, err := identifier(v, "DBInstanceIdentifier", "db", false); err == nil && id != "" {
			if !identRE.MatchString(id) || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
				t.Errorf("accepted identifier %q", id)
			}
		}
		if tg, err := tags(v); err == nil {
			seen := map[string]bool{}
			for _, x := range tg {
				if x.Key == "" || seen[x.Key] || len(x.Key) > maxTagKeyLen {
					t.Errorf("accepted tags %v", tg)
				}
				seen[x.Key] = true
			}
		}
		_, _ = filters(v, "engine", "db-instance-id")
		_, _ = securityGroups(v)
		if u, err := masterUsername(v); err == nil && (strings.HasPrefix(u, "pg_") || reservedUsers[u]) {
			t.Errorf("accepted master user %q", u)
		}
		if p := v.Get("MasterUserPassword"); checkPassword(p) == nil && (len(p) < 8 || strings.ContainsAny(p, "/@\" ")) {
			t.Errorf("accepted password %q", p)
		}
		if limit, _, err := page(v); err == nil && (limit < 20 || limit > 100) {
			t.Errorf("accepted MaxRecords %d", limit)
		}
	})
}
