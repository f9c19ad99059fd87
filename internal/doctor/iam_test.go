package doctor

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/deploy"
	"github.com/handover-dev/handover/internal/doctor/doctortest"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
	"github.com/handover-dev/handover/internal/localcloud"
)

// fakeIAM answers SimulatePrincipalPolicy: every action is allowed but
// those in Denied. The local cloud serves no IAM; this is the one fake.
type fakeIAM struct {
	mu      sync.Mutex
	Denied  map[string]bool
	NextErr error
	Calls   []*iam.SimulatePrincipalPolicyInput
}

var _ IAMAPI = (*fakeIAM)(nil)

func (f *fakeIAM) SimulatePrincipalPolicy(_ context.Context, in *iam.SimulatePrincipalPolicyInput, _ ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, in)
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return nil, err
	}
	out := &iam.SimulatePrincipalPolicyOutput{}
	for _, a := range in.ActionNames {
		d := iamtypes.PolicyEvaluationDecisionTypeAllowed
		if f.Denied[a] {
			d = iamtypes.PolicyEvaluationDecisionTypeImplicitDeny
		}
		out.EvaluationResults = append(out.EvaluationResults, iamtypes.EvaluationResult{
			EvalActionName: aws.String(a), EvalDecision: d, EvalResourceName: aws.String(in.ResourceArns[0])})
	}
	return out, nil
}

func (f *fakeIAM) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Denied, f.NextErr, f.Calls = nil, nil, nil
}

// deployment is a healthy deployment on a local cloud, and doctor's
// dependencies for it.
func deployment(t *testing.T) (Config, Deps) {
	t.Helper()
	c, err := localcloud.New(localcloud.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	creds := credentials.NewStaticCredentialsProvider("local", "local", "")
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"), config.WithCredentialsProvider(creds))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(srv.URL)
	d, err := doctortest.Deploy(t.Context(), cfg, "orders-db", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
			QueueURL: d.QueueURL, LedgerURL: "sqlite://" + filepath.Join(t.TempDir(), "ledger.db"), HookPrefix: "handover",
			AdvanceEvery: 5 * time.Second, ReconcileEvery: time.Minute, Fence: "http", RoleARN: "arn:aws:iam::000000000000:role/handover-ControllerRole-X",
		}, Deps{
			Credentials: creds, SQS: sqs.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg), AutoScaling: autoscaling.NewFromConfig(cfg),
			OpenLedger: func(ctx context.Context, url string) (ledger.Ledger, error) { return dial.Open(ctx, url, nil) },
			Clock:      clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)),
		}
}

// TestIAMCheck: with an IAM client, every statement of the controller's
// policy is simulated against the role, on the deployment's resources and
// with context that meets its conditions; a denied action fails its
// statement's row with the statement to grant.
func TestIAMCheck(t *testing.T) {
	cfg, deps := deployment(t)
	fake := &fakeIAM{}
	deps.IAM = fake
	want, err := deploy.LiveControllerPolicy(deploy.Config{Groups: []string{"orders-db"}}, deploy.Env{Partition: "aws", Region: "us-east-1", AccountID: "000000000000",
		QueueARN: "arn:aws:sqs:us-east-1:000000000000:handover-events", DeadLetterARN: "arn:aws:sqs:us-east-1:000000000000:handover-events-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	var wantRows []string
	for _, st := range want.Statement {
		wantRows = append(wantRows, "iam/"+st.Sid)
	}

	tests := []struct {
		name     string
		denied   []string
		nextErr  error
		wantFail []string
		wantFix  string
	}{
		{name: "allowed"},
		{name: "snapshots denied", denied: []string{"ec2:CreateSnapshot"}, wantFail: []string{"iam/CreateTaggedSnapshots", "iam/SnapshotManagedVolumes"},
			wantFix: `grant arn:aws:iam::000000000000:role/handover-ControllerRole-X this statement`},
		{name: "queue denied", denied: []string{"sqs:ReceiveMessage"}, wantFail: []string{"iam/ConsumeEventsQueue"}, wantFix: `"Resource":["arn:aws:sqs:us-east-1:000000000000:handover-events"]`},
		{name: "simulation refused", nextErr: errors.New("AccessDenied: not authorized to perform iam:SimulatePrincipalPolicy"),
			wantFail: []string{wantRows[0]}, wantFix: "iam:SimulatePrincipalPolicy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.Reset()
			fake.NextErr = tt.nextErr
			fake.Denied = map[string]bool{}
			for _, a := range tt.denied {
				fake.Denied[a] = true
			}
			rep := Run(t.Context(), cfg, deps)
			var rows, failed []string
			for _, r := range rep.Checks {
				if !strings.HasPrefix(r.Check, "iam") {
					if r.Status != OK {
						t.Errorf("%s: %s %s", r.Check, r.Status, r.Detail)
					}
					continue
				}
				rows = append(rows, r.Check)
				if r.Status == Fail {
					failed = append(failed, r.Check)
					if !strings.Contains(r.Fix, tt.wantFix) {
						t.Errorf("%s: fix %q lacks %q", r.Check, r.Fix, tt.wantFix)
					}
				}
			}
			if !slices.Equal(rows, wantRows) {
				t.Errorf("IAM rows %v, want one per statement %v", rows, wantRows)
			}
			if !slices.Equal(failed, tt.wantFail) {
				t.Errorf("failed %v, want %v", failed, tt.wantFail)
			}
		})
	}

	// What was simulated: the role, resolved resources, and context that
	// meets each statement's conditions.
	fake.Reset()
	Run(t.Context(), cfg, deps)
	ctxOf := map[string]map[string][]string{} // first action → key → values
	for _, in := range fake.Calls {
		if aws.ToString(in.PolicySourceArn) != cfg.RoleARN {
			t.Errorf("simulated %s, want the role", aws.ToString(in.PolicySourceArn))
		}
		for _, r := range in.ResourceArns {
			if _, err := base64.StdEncoding.DecodeString(r); err == nil || strings.Contains(r, "${") {
				t.Errorf("resource %q is not resolved", r)
			}
		}
		m := map[string][]string{}
		for _, e := range in.ContextEntries {
			m[aws.ToString(e.ContextKeyName)] = e.ContextKeyValues
		}
		ctxOf[in.ActionNames[0]+" "+in.ResourceArns[0]] = m
	}
	snap := ctxOf["ec2:CreateSnapshot arn:aws:ec2:us-east-1::snapshot/*"]
	if !slices.Equal(snap["aws:RequestTag/handover:managed"], []string{"true"}) {
		t.Errorf("CreateSnapshot on snapshots simulated with context %v, want the managed tag in the request", snap)
	}
	attach := ctxOf["ec2:AttachVolume arn:aws:ec2:us-east-1:000000000000:instance/*"]
	if !slices.Equal(attach["ec2:ResourceTag/aws:autoscaling:groupName"], []string{"orders-db"}) {
		t.Errorf("AttachVolume on instances simulated with context %v, want the group's tag", attach)
	}
}
