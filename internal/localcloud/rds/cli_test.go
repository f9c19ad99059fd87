package rds

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// awsCLI is Debian's AWS CLI v2, called by path because another `aws` may
// come first on PATH; `make deps` installs it. Unlike the Go SDK, it reads
// list items only under the member names of the API model, so it catches a
// wrong <member> the SDK tests would pass.
const awsCLI = "/usr/bin/aws"

func (e *env) aws(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(awsCLI, append([]string{"--endpoint-url", e.srv.URL, "--output", "json", "rds"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION="+testRegion,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("aws rds %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// checkCLI runs while orders-db has the replica orders-rr, the snapshot
// orders-snap and its restore orders-restored.
func (e *env) checkCLI(t *testing.T) {
	var insts struct {
		DBInstances []struct {
			DBInstanceIdentifier, DBInstanceStatus, ReadReplicaSourceDBInstanceIdentifier string
			ReadReplicaDBInstanceIdentifiers                                              []string
			Endpoint                                                                      *struct {
				Address string
				Port    int
			}
			StatusInfos       []struct{ StatusType, Status string }
			VpcSecurityGroups []struct{ VpcSecurityGroupId, Status string }
			TagList           []struct{ Key, Value string }
			DBParameterGroups []struct{ DBParameterGroupName string }
		}
	}
	raw := e.aws(t, "describe-db-instances")
	if err := json.Unmarshal([]byte(raw), &insts); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	byID := map[string]int{}
	for i, in := range insts.DBInstances {
		byID[in.DBInstanceIdentifier] = i
	}
	for _, id := range []string{"orders-db", "orders-rr", "orders-restored"} {
		if _, ok := byID[id]; !ok {
			t.Fatalf("describe-db-instances lacks %s:\n%s", id, raw)
		}
	}
	p, r := insts.DBInstances[byID["orders-db"]], insts.DBInstances[byID["orders-rr"]]
	if !slices.Equal(p.ReadReplicaDBInstanceIdentifiers, []string{"orders-rr"}) {
		t.Errorf("CLI: primary's ReadReplicaDBInstanceIdentifiers %v, want [orders-rr]", p.ReadReplicaDBInstanceIdentifiers)
	}
	if p.Endpoint == nil || p.Endpoint.Port == 0 || len(p.VpcSecurityGroups) != 1 || len(p.TagList) != 1 || len(p.DBParameterGroups) != 1 {
		t.Errorf("CLI: primary endpoint %v, security groups %v, tags %v, parameter groups %v", p.Endpoint, p.VpcSecurityGroups, p.TagList, p.DBParameterGroups)
	}
	if r.ReadReplicaSourceDBInstanceIdentifier != "orders-db" || len(r.StatusInfos) != 1 || r.StatusInfos[0].Status != "replicating" {
		t.Errorf("CLI: replica source %q, StatusInfos %v", r.ReadReplicaSourceDBInstanceIdentifier, r.StatusInfos)
	}

	// Request-side list names: the CLI sends Tags.Tag.N and
	// Filters.Filter.N.Values.Value.M.
	raw = e.aws(t, "describe-db-instances", "--filters", "Name=db-instance-id,Values=orders-rr,orders-restored")
	if err := json.Unmarshal([]byte(raw), &insts); err != nil || len(insts.DBInstances) != 2 {
		t.Errorf("CLI: filtered describe gave %d instances (%v), want 2:\n%s", len(insts.DBInstances), err, raw)
	}
	arn := "arn:aws:rds:" + testRegion + ":" + testAccount + ":snapshot:orders-snap"
	e.aws(t, "add-tags-to-resource", "--resource-name", arn, "--tags", "Key=purpose,Value=restore-test", "Key=team,Value=data")
	var tags struct{ TagList []struct{ Key, Value string } }
	raw = e.aws(t, "list-tags-for-resource", "--resource-name", arn)
	if err := json.Unmarshal([]byte(raw), &tags); err != nil || len(tags.TagList) != 2 || tags.TagList[0].Key != "purpose" {
		t.Errorf("CLI: snapshot tags %v (%v):\n%s", tags.TagList, err, raw)
	}
	var snaps struct {
		DBSnapshots []struct {
			DBSnapshotIdentifier, DBInstanceIdentifier, Status, SnapshotType string
			PercentProgress                                                  int
		}
	}
	raw = e.aws(t, "describe-db-snapshots", "--db-instance-identifier", "orders-db")
	if err := json.Unmarshal([]byte(raw), &snaps); err != nil || len(snaps.DBSnapshots) != 1 || snaps.DBSnapshots[0].Status != "available" || snaps.DBSnapshots[0].PercentProgress != 100 {
		t.Errorf("CLI: snapshots %+v (%v):\n%s", snaps.DBSnapshots, err, raw)
	}
}
