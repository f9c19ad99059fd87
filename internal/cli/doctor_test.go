package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/doctor"
	"github.com/handover-dev/handover/internal/doctor/doctortest"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

// doctorWorld is a healthy deployment on a local cloud of its own, with an
// SQLite ledger the controller has opened before.
type doctorWorld struct {
	tc     *testCloud
	d      doctortest.Deployment
	ledger string
}

func newDoctorWorld(t *testing.T, heartbeat time.Duration) *doctorWorld {
	t.Helper()
	hermeticAWS(t, "local")
	tc := startTestCloud(t)
	d, err := doctortest.Deploy(t.Context(), tc.aws, "orders-db", heartbeat)
	if err != nil {
		t.Fatal(err)
	}
	ledger := "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")
	led, err := dial.Open(t.Context(), ledger, nil)
	if err != nil {
		t.Fatal(err)
	}
	led.Close()
	return &doctorWorld{tc: tc, d: d, ledger: ledger}
}

func (w *doctorWorld) args(extra ...string) []string {
	return append([]string{"doctor", "--endpoint-url", w.tc.url, "--queue-url", w.d.QueueURL, "--ledger", w.ledger}, extra...)
}

// doctorJSON runs doctor with --output json and returns its report.
func (w *doctorWorld) doctorJSON(t *testing.T, extra ...string) (doctor.Report, int, string) {
	t.Helper()
	out, stderr, code := run(t, w.args(append(extra, "--output", "json")...)...)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --output json printed no report (exit %d): %v\n%s\n%s", code, err, out, stderr)
	}
	return rep, code, stderr
}

func row(rep doctor.Report, check string) (doctor.Result, bool) {
	for _, r := range rep.Checks {
		if r.Check == check {
			return r, true
		}
	}
	return doctor.Result{}, false
}

// TestDoctorHealthy: a deployment set up as the template sets one up
// passes every check, each of which has its row.
func TestDoctorHealthy(t *testing.T) {
	w := newDoctorWorld(t, 10*time.Minute)
	for _, extra := range [][]string{nil, {"--group", "orders-db"}} {
		rep, code, stderr := w.doctorJSON(t, extra...)
		if code != 0 {
			t.Errorf("%v: exit %d, want 0; stderr: %s", extra, code, stderr)
		}
		var checks []string
		for _, r := range rep.Checks {
			checks = append(checks, r.Check)
			if r.Status != doctor.OK {
				t.Errorf("%v: %s is %s: %s (fix: %s)", extra, r.Check, r.Status, r.Detail, r.Fix)
			}
		}
		want := []string{"credentials", "queue", "dead-letter-queue",
			"events/launch-action", "events/terminate-action", "events/launch-successful", "events/launch-unsuccessful",
			"events/snapshot", "events/volume", "events/instance-state", "queue-policy",
			"hooks/orders-db", "metadata/orders-db", "heartbeat/orders-db", "ledger"}
		if !slices.Equal(checks, want) {
			t.Errorf("%v: checks %v, want %v", extra, checks, want)
		}
	}
}

// TestDoctorChannelTag: a group tagged handover:channel joins a release
// channel with no channel in its hook's metadata, and doctor reads the
// metadata with the tag, as the controller does: {} is a release-only
// group, not bad metadata.
func TestDoctorChannelTag(t *testing.T) {
	w := newDoctorWorld(t, 10*time.Minute)
	asg := autoscaling.NewFromConfig(w.tc.aws)
	if _, err := asg.PutLifecycleHook(t.Context(), &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String("orders-db"), LifecycleHookName: aws.String("handover-launch"),
		NotificationMetadata: aws.String(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if rep, _, _ := w.doctorJSON(t); func() bool { r, _ := row(rep, "metadata/orders-db"); return r.Status != doctor.Fail }() {
		t.Fatal("{} without a channel tag passed the metadata check")
	}
	if _, err := asg.CreateOrUpdateTags(t.Context(), &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{
		ResourceId: aws.String("orders-db"), ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String("handover:channel"), Value: aws.String("web")}}}); err != nil {
		t.Fatal(err)
	}
	rep, _, stderr := w.doctorJSON(t)
	if r, _ := row(rep, "metadata/orders-db"); r.Status != doctor.OK || !strings.Contains(r.Detail, "release channel web") {
		t.Errorf("metadata/orders-db of a group tagged handover:channel=web: %s %q; stderr %s", r.Status, r.Detail, stderr)
	}
}

// TestDoctorFindsEachBreak: breaking one piece of a healthy deployment
// fails exactly the rows it should, each with a fix that repairs it.
func TestDoctorFindsEachBreak(t *testing.T) {
	tests := []struct {
		name      string
		heartbeat time.Duration
		breakIt   func(t *testing.T, w *doctorWorld)
		extra     []string
		wantFail  []string
		wantFix   map[string]string // row → in its fix
		wantText  map[string]string // row → in its detail
	}{
		{
			name: "rule deleted",
			breakIt: func(t *testing.T, w *doctorWorld) {
				eb := eventbridge.NewFromConfig(w.tc.aws)
				name := aws.String(w.d.Rules["LifecycleActionRule"])
				if _, err := eb.RemoveTargets(t.Context(), &eventbridge.RemoveTargetsInput{Rule: name, Ids: []string{"handover-events"}}); err != nil {
					t.Fatal(err)
				}
				if _, err := eb.DeleteRule(t.Context(), &eventbridge.DeleteRuleInput{Name: name}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"events/launch-action", "events/terminate-action"},
			wantFix:  map[string]string{"events/launch-action": "aws events put-rule --name handover-lifecycle-action --event-pattern '{"},
			wantText: map[string]string{"events/launch-action": "no enabled rule delivers a launch-action of group orders-db, hook handover-launch"},
		},
		{
			name: "target dropped",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := eventbridge.NewFromConfig(w.tc.aws).RemoveTargets(t.Context(), &eventbridge.RemoveTargetsInput{
					Rule: aws.String(w.d.Rules["LaunchResultRule"]), Ids: []string{"handover-events"}}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"events/launch-successful", "events/launch-unsuccessful"},
			wantFix:  map[string]string{"events/launch-successful": "aws events put-targets --rule handover-launch-result --targets Id=handover-events,Arn=arn:aws:sqs:us-east-1:000000000000:handover-events"},
			wantText: map[string]string{"events/launch-successful": "rule handover-launch-result matches it but does not target the queue"},
		},
		{
			name: "rule disabled",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := eventbridge.NewFromConfig(w.tc.aws).DisableRule(t.Context(), &eventbridge.DisableRuleInput{Name: aws.String(w.d.Rules["SnapshotResultRule"])}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"events/snapshot"},
			wantFix:  map[string]string{"events/snapshot": "aws events enable-rule --name handover-snapshot-result"},
		},
		{
			name: "queue policy removed",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := sqs.NewFromConfig(w.tc.aws).SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(w.d.QueueURL),
					Attributes: map[string]string{"Policy": ""}}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"queue-policy"},
			wantFix:  map[string]string{"queue-policy": `aws sqs set-queue-attributes --queue-url ` + "%QUEUE%" + ` --attributes '{"Policy":`},
			wantText: map[string]string{"queue-policy": "the queue has no policy"},
		},
		{
			name: "queue policy misses a rule",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if err := doctortest.SetQueuePolicy(t.Context(), w.tc.aws, w.d, w.d.RuleARNs[1:]); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"queue-policy"},
			wantText: map[string]string{"queue-policy": "does not let events.amazonaws.com send from rule handover-lifecycle-action"},
		},
		{
			name: "hook deleted",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := autoscaling.NewFromConfig(w.tc.aws).DeleteLifecycleHook(t.Context(), &autoscaling.DeleteLifecycleHookInput{
					AutoScalingGroupName: aws.String("orders-db"), LifecycleHookName: aws.String("handover-terminate")}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"hooks/orders-db"},
			wantFix: map[string]string{"hooks/orders-db": "aws autoscaling put-lifecycle-hook --auto-scaling-group-name orders-db --lifecycle-hook-name handover-terminate " +
				"--lifecycle-transition autoscaling:EC2_INSTANCE_TERMINATING --heartbeat-timeout 600 --default-result CONTINUE"},
			wantText: map[string]string{"hooks/orders-db": `no terminate hook whose name starts with "handover"`},
		},
		{
			name: "bad metadata",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := autoscaling.NewFromConfig(w.tc.aws).PutLifecycleHook(t.Context(), &autoscaling.PutLifecycleHookInput{
					AutoScalingGroupName: aws.String("orders-db"), LifecycleHookName: aws.String("handover-launch"),
					NotificationMetadata: aws.String(`{"db":"orders"}`)}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"metadata/orders-db"},
			wantFix:  map[string]string{"metadata/orders-db": `--lifecycle-hook-name handover-launch --notification-metadata '{"database":"ID"}'`},
			wantText: map[string]string{"metadata/orders-db": `unknown field "db"`},
		},
		{
			name: "heartbeat too short", heartbeat: 30 * time.Second,
			wantFail: []string{"heartbeat/orders-db"},
			wantFix:  map[string]string{"heartbeat/orders-db": "--heartbeat-timeout 600"},
			wantText: map[string]string{"heartbeat/orders-db": "timeout 30s is under reconcile-interval + advance-interval (1m5s)"},
		},
		{
			name: "heartbeat under a slower reconcile", extra: []string{"--reconcile-interval", "10m"},
			wantFail: []string{"heartbeat/orders-db"},
			wantFix:  map[string]string{"heartbeat/orders-db": "--heartbeat-timeout 1205"},
		},
		{
			name: "bad ledger URL", extra: []string{"--ledger", "mysql://handover@db/handover"},
			wantFail: []string{"ledger"},
			wantFix:  map[string]string{"ledger": "sqlite:///absolute/path.db"},
			wantText: map[string]string{"ledger": `scheme "mysql" is not supported`},
		},
		{
			name: "no dead-letter queue",
			breakIt: func(t *testing.T, w *doctorWorld) {
				if _, err := sqs.NewFromConfig(w.tc.aws).SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(w.d.QueueURL),
					Attributes: map[string]string{"RedrivePolicy": ""}}); err != nil {
					t.Fatal(err)
				}
			},
			wantFail: []string{"dead-letter-queue"},
			wantFix:  map[string]string{"dead-letter-queue": "RedrivePolicy"},
		},
		{
			name: "missing queue", extra: []string{"--queue-url", "%URL%/000000000000/handover-evnets"},
			wantFail: []string{"queue"},
			wantFix:  map[string]string{"queue": "aws sqs create-queue --queue-name handover-evnets"},
		},
		{
			name: "group misnamed", extra: []string{"--group", "billing-db"},
			wantFail: []string{"hooks/billing-db"},
			wantFix:  map[string]string{"hooks/billing-db": "--group"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := tt.heartbeat
			if hb == 0 {
				hb = 10 * time.Minute
			}
			w := newDoctorWorld(t, hb)
			if tt.breakIt != nil {
				tt.breakIt(t, w)
			}
			var extra []string
			for _, a := range tt.extra {
				extra = append(extra, strings.ReplaceAll(a, "%URL%", w.tc.url))
			}
			rep, code, stderr := w.doctorJSON(t, extra...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr: %s", code, stderr)
			}
			var failed []string
			for _, r := range rep.Checks {
				if r.Status == doctor.Fail {
					failed = append(failed, r.Check)
					if r.Fix == "" {
						t.Errorf("%s fails without a fix", r.Check)
					}
				}
			}
			if !slices.Equal(failed, tt.wantFail) {
				t.Errorf("failed %v, want %v", failed, tt.wantFail)
				for _, r := range rep.Checks {
					if r.Status != doctor.OK {
						t.Logf("%s %s: %s (fix: %s)", r.Check, r.Status, r.Detail, r.Fix)
					}
				}
			}
			for check, want := range tt.wantFix {
				r, _ := row(rep, check)
				if want = strings.ReplaceAll(want, "%QUEUE%", w.d.QueueURL); !strings.Contains(r.Fix, want) {
					t.Errorf("%s: fix %q lacks %q", check, r.Fix, want)
				}
			}
			for check, want := range tt.wantText {
				if r, _ := row(rep, check); !strings.Contains(r.Detail, want) {
					t.Errorf("%s: detail %q lacks %q", check, r.Detail, want)
				}
			}
		})
	}
}

// TestDoctorFixesRepair: running the fixes doctor prints, as written,
// repairs what they are the fix for.
func TestDoctorQueuePolicyFixRepairs(t *testing.T) {
	w := newDoctorWorld(t, 10*time.Minute)
	q := sqs.NewFromConfig(w.tc.aws)
	if _, err := q.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(w.d.QueueURL),
		Attributes: map[string]string{"Policy": ""}}); err != nil {
		t.Fatal(err)
	}
	rep, _, _ := w.doctorJSON(t)
	r, _ := row(rep, "queue-policy")
	_, attr, ok := strings.Cut(r.Fix, "--attributes '")
	attr, _, _ = strings.Cut(attr, "'")
	var attrs map[string]string
	if !ok || json.Unmarshal([]byte(attr), &attrs) != nil {
		t.Fatalf("the fix %q holds no --attributes JSON", r.Fix)
	}
	if _, err := q.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(w.d.QueueURL), Attributes: attrs}); err != nil {
		t.Fatal(err)
	}
	rep, code, _ := w.doctorJSON(t)
	if r, _ := row(rep, "queue-policy"); code != 0 || r.Status != doctor.OK {
		t.Errorf("after the fix: exit %d, queue-policy %s: %s", code, r.Status, r.Detail)
	}
}

// TestDoctorTable: the text output, one row per check with each fix
// under its row, is a golden file (addresses and paths replaced).
func TestDoctorTable(t *testing.T) {
	w := newDoctorWorld(t, 10*time.Minute)
	clean := func(s string) string {
		s = strings.ReplaceAll(s, w.tc.url, "http://LOCALCLOUD")
		return strings.ReplaceAll(s, strings.TrimPrefix(w.ledger, "sqlite://"), "/LEDGER/ledger.db")
	}
	out, _, code := run(t, w.args()...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	golden(t, "doctor-healthy.txt", clean(out))

	if _, err := autoscaling.NewFromConfig(w.tc.aws).PutLifecycleHook(t.Context(), &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String("orders-db"), LifecycleHookName: aws.String("handover-launch"), NotificationMetadata: aws.String("has space")}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventbridge.NewFromConfig(w.tc.aws).DisableRule(t.Context(), &eventbridge.DisableRuleInput{Name: aws.String(w.d.Rules["VolumeResultRule"])}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, w.args("--advance-interval", "4m")...)
	if code != 1 || !strings.Contains(stderr, "check(s) failed") {
		t.Fatalf("exit %d, stderr %q:\n%s", code, stderr, out)
	}
	golden(t, "doctor-broken.txt", clean(out))
}

func TestDoctorFlags(t *testing.T) {
	hermeticAWS(t, "local")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor"}, "--queue-url is required"},
		{[]string{"doctor", "--queue-url", "http://127.0.0.1:1/000000000000/q", "--check-iam"}, "--check-iam needs --role-arn"},
		{[]string{"doctor", "--queue-url", "http://127.0.0.1:1/000000000000/q", "--reconcile-interval", "0s"}, "must be positive"},
		{[]string{"doctor", "--queue-url", "http://127.0.0.1:1/000000000000/q", "--output", "yaml"}, `unknown output "yaml"`},
		{[]string{"doctor", "--queue-url", "http://127.0.0.1:1/000000000000/q", "--fence", "pigeon"}, `unknown --fence "pigeon"`},
	} {
		_, stderr, code := run(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	out, _, code := run(t, "doctor", "--help")
	for _, want := range []string{"Examples:", "heartbeat timeout fits when", "--check-iam", "--output"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("doctor --help lacks %q", want)
		}
	}
	docs := "../../docs/doctor.md"
	cmds := handoverCommands(t, docs)
	if len(cmds) == 0 {
		t.Fatalf("no handover commands in %s", docs)
	}
	for _, args := range cmds {
		checkCommand(t, args)
	}
}

// TestDoctorHookNotifiesQueue: a hook whose notification target is the
// events queue delivers its lifecycle actions itself, so no lifecycle rule
// is needed for it.
func TestDoctorHookNotifiesQueue(t *testing.T) {
	w := newDoctorWorld(t, 10*time.Minute)
	eb := eventbridge.NewFromConfig(w.tc.aws)
	name := aws.String(w.d.Rules["LifecycleActionRule"])
	if _, err := eb.RemoveTargets(t.Context(), &eventbridge.RemoveTargetsInput{Rule: name, Ids: []string{"handover-events"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.DeleteRule(t.Context(), &eventbridge.DeleteRuleInput{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := doctortest.SetQueuePolicy(t.Context(), w.tc.aws, w.d, w.d.RuleARNs[1:]); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"handover-launch", "handover-terminate"} {
		if _, err := autoscaling.NewFromConfig(w.tc.aws).PutLifecycleHook(t.Context(), &autoscaling.PutLifecycleHookInput{
			AutoScalingGroupName: aws.String("orders-db"), LifecycleHookName: aws.String(h),
			NotificationTargetARN: aws.String(w.d.QueueARN), RoleARN: aws.String("arn:aws:iam::000000000000:role/asg-notify")}); err != nil {
			t.Fatal(err)
		}
	}
	rep, code, stderr := w.doctorJSON(t)
	if code != 0 {
		t.Errorf("exit %d; stderr %s", code, stderr)
	}
	for _, c := range []string{"events/launch-action", "events/terminate-action"} {
		if r, _ := row(rep, c); r.Status != doctor.OK || !strings.Contains(r.Detail, "the hook's own notification target") {
			t.Errorf("%s: %s %s", c, r.Status, r.Detail)
		}
	}
}
