package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/awscloud"
)

const (
	subSnapshots = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"}`
	subVolumes   = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*"}`
	subInstances = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}`
	subTemplates = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/*"}`
	subGroup     = `{"Fn::Sub": "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/`
	managedCond  = `{"StringEquals": {"ec2:ResourceTag/handover:managed": "true"}}`
	taggedCond   = `{"StringEquals": {"aws:RequestTag/handover:managed": "true"}}`
	updatable    = `{"StringEquals": {"ec2:ResourceTag/handover:updatable": "true"}}`

	// The groups orders-a and orders-b: by name alone (lambda mode), and
	// with their replace-all successors (controller mode).
	groupsCond   = `{"StringEquals": {"ec2:ResourceTag/aws:autoscaling:groupName": ["orders-a", "orders-b"]}}`
	servedCond   = `{"StringLike": {"ec2:ResourceTag/aws:autoscaling:groupName": ["orders-a", "orders-a-*", "orders-b", "orders-b-*"]}}`
	groupARNs    = subGroup + `orders-a"}, ` + subGroup + `orders-b"}`
	servedARNs   = subGroup + `orders-a"}, ` + subGroup + `orders-a-*"}, ` + subGroup + `orders-b"}, ` + subGroup + `orders-b-*"}`
	replacements = subGroup + `orders-a-*"}, ` + subGroup + `orders-b-*"}`
)

type wantStatement struct{ sid, json string }

// wantStatements is the controller's inline policy for groups orders-a
// and orders-b, statement by statement. Any widening — an action, a
// resource, a dropped condition — fails TestControllerPolicyExact.
func wantStatements(mode Mode) []wantStatement {
	instances, groupsSid, groups := groupsCond, "LifecycleActionsOfGroups", `{"Action": ["autoscaling:CompleteLifecycleAction",
		"autoscaling:RecordLifecycleActionHeartbeat", "autoscaling:TerminateInstanceInAutoScalingGroup"], "Resource": [`+groupARNs+`]}`
	if mode == ModeController {
		instances, groupsSid, groups = servedCond, "GroupsAndReplacements", `{"Action": ["autoscaling:CompleteLifecycleAction",
			"autoscaling:DeleteAutoScalingGroup", "autoscaling:RecordLifecycleActionHeartbeat",
			"autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"], "Resource": [`+servedARNs+`]}`
	}
	want := []wantStatement{
		{"CreateTaggedSnapshots", `{"Action": ["ec2:CreateSnapshot"], "Resource": [` + subSnapshots + `], "Condition": ` + taggedCond + `}`},
		{"SnapshotManagedVolumes", `{"Action": ["ec2:CreateSnapshot"], "Resource": [` + subVolumes + `], "Condition": ` + managedCond + `}`},
		{"CreateTaggedVolumes", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subVolumes + `], "Condition": ` + taggedCond + `}`},
		{"VolumesFromManagedSnapshots", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subSnapshots + `], "Condition": ` + managedCond + `}`},
		{"TagOnCreate", `{"Action": ["ec2:CreateTags"], "Resource": [` + subSnapshots + `, ` + subVolumes + `],
			"Condition": {"StringEquals": {"aws:RequestTag/handover:managed": "true", "ec2:CreateAction": ["CreateSnapshot", "CreateVolume"]}}}`},
		{"DeleteManaged", `{"Action": ["ec2:DeleteSnapshot", "ec2:DeleteVolume"], "Resource": [` + subSnapshots + `, ` + subVolumes + `], "Condition": ` + managedCond + `}`},
		{"AttachManagedVolumes", `{"Action": ["ec2:AttachVolume", "ec2:DetachVolume"], "Resource": [` + subVolumes + `], "Condition": ` + managedCond + `}`},
		{"AttachToGroupInstances", `{"Action": ["ec2:AttachVolume", "ec2:DetachVolume"], "Resource": [` + subInstances + `], "Condition": ` + instances + `}`},
		{"FenceGroupInstances", `{"Action": ["ec2:StartInstances", "ec2:StopInstances"], "Resource": [` + subInstances + `], "Condition": ` + instances + `}`},
		{"Drain", `{"Action": ["elasticloadbalancing:DeregisterTargets"],
			"Resource": [{"Fn::Sub": "arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}:targetgroup/*"}]}`},
		{groupsSid, groups},
		{"DescribeCalls", `{"Action": ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
			"autoscaling:DescribeLifecycleHooks", "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeVolumes",
			"elasticloadbalancing:DescribeTargetHealth"], "Resource": ["*"]}`},
		{"ConsumeEventsQueue", `{"Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
			"Resource": [{"Fn::GetAtt": ["EventsQueue", "Arn"]}]}`},
		{"DeadLetter", `{"Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]}`},
		{"Ledger", `{"Action": ["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
			"dynamodb:UpdateItem"], "Resource": [{"Fn::GetAtt": ["LedgerTable", "Arn"]}]}`},
	}
	if mode == ModeLambda {
		want = append(want, wantStatement{"FunctionLogs", `{"Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
			"Resource": [{"Fn::GetAtt": ["ControllerLogGroup", "Arn"]}]}`})
	}
	return want
}

// wantUpdateStatements is the controller's group update policy for
// orders-a and orders-b, whose launch templates carry instance profiles
// of the roles orders-instance and app/orders-migrate.
var wantUpdateStatements = []wantStatement{
	{"CreateReplacementGroups", `{"Action": ["autoscaling:CreateAutoScalingGroup", "autoscaling:CreateOrUpdateTags",
		"autoscaling:PutLifecycleHook"], "Resource": [` + replacements + `]}`},
	{"ReadLaunchTemplates", `{"Action": ["ec2:DescribeLaunchTemplates"], "Resource": ["*"]}`},
	{"VersionUpdatableTemplates", `{"Action": ["ec2:CreateLaunchTemplateVersion"], "Resource": [` + subTemplates + `], "Condition": ` + updatable + `}`},
	{"LaunchFromUpdatableTemplates", `{"Action": ["ec2:RunInstances"], "Resource": [` + subTemplates + `], "Condition": ` + updatable + `}`},
	{"TagOnLaunch", `{"Action": ["ec2:CreateTags"], "Resource": [` + subInstances + `, ` + subVolumes + `],
		"Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}}`},
	{"PassInstanceRoles", `{"Action": ["iam:PassRole"], "Resource": [
		{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/orders-instance"},
		{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/app/orders-migrate"}],
		"Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}`},
}

// wantReleaseStatements is the controller's release policy: release
// volumes only, and on existing ones no tag but the served mark.
var wantReleaseStatements = []wantStatement{
	{"CreateReleaseVolumes", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subVolumes + `],
		"Condition": {"StringEquals": {"aws:RequestTag/handover:release-managed": "true"}}}`},
	{"VolumesFromReleaseSnapshots", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subSnapshots + `],
		"Condition": {"StringEquals": {"ec2:ResourceTag/handover:release-managed": "true"}}}`},
	{"TagReleaseVolumesOnCreate", `{"Action": ["ec2:CreateTags"], "Resource": [` + subVolumes + `],
		"Condition": {"StringEquals": {"aws:RequestTag/handover:release-managed": "true", "ec2:CreateAction": "CreateVolume"}}}`},
	{"MarkReleaseServed", `{"Action": ["ec2:CreateTags"], "Resource": [` + subVolumes + `],
		"Condition": {"StringEquals": {"ec2:ResourceTag/handover:release-managed": "true"},
			"ForAllValues:StringEquals": {"aws:TagKeys": ["handover:release-served"]}}}`},
	{"AttachAndDeleteReleaseVolumes", `{"Action": ["ec2:AttachVolume", "ec2:DeleteVolume", "ec2:DetachVolume"], "Resource": [` + subVolumes + `],
		"Condition": {"StringEquals": {"ec2:ResourceTag/handover:release-managed": "true"}}}`},
}

// The release policy (controller mode) is a managed policy on the
// controller's role, with exactly wantReleaseStatements.
func TestReleasePolicyExact(t *testing.T) {
	tmpl := render(t, twoGroups(ModeController))
	sameStatements(t, policyStatements(t, tmpl, idReleasePolicy+".PolicyDocument"), wantReleaseStatements)
	if got := compact(props(t, tmpl, idReleasePolicy)["Roles"]); got != `[{"Ref":"ControllerRole"}]` {
		t.Errorf("the release policy is attached to %s, want the controller's role", got)
	}
}

// sameStatements compares a policy's statements with want, one by one.
func sameStatements(t *testing.T, got []map[string]any, want []wantStatement) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d statements, want %d", len(got), len(want))
	}
	for i, w := range want {
		if i >= len(got) {
			t.Errorf("missing statement %s", w.sid)
			continue
		}
		exp := mustJSON(t, w.json).(map[string]any)
		exp["Sid"], exp["Effect"] = w.sid, "Allow"
		if compact(got[i]) != compact(exp) {
			t.Errorf("statement %d:\n got %s\nwant %s", i, compact(got[i]), compact(exp))
		}
	}
}

func controllerStatements(t *testing.T, mode Mode) []map[string]any {
	t.Helper()
	return policyStatements(t, render(t, twoGroups(mode)), idRole+".Policies.handover-controller")
}

// policyStatements returns the statements of the policy document at
// where (see policyDocuments), which must be of version 2012-10-17.
func policyStatements(t *testing.T, tmpl map[string]any, where string) []map[string]any {
	t.Helper()
	docs := policyDocuments(t, tmpl)
	doc, ok := docs[where]
	if !ok {
		t.Fatalf("no policy %s among %v", where, docs)
	}
	if doc["Version"] != "2012-10-17" {
		t.Errorf("policy version %v: policy variables need 2012-10-17", doc["Version"])
	}
	return statements(t, doc)
}

func TestControllerPolicyExact(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			sameStatements(t, controllerStatements(t, mode), wantStatements(mode))
		})
	}
}

// The group update policy (controller mode) is a managed policy on the
// controller's role, with exactly wantUpdateStatements.
func TestUpdatePolicyExact(t *testing.T) {
	c := twoGroups(ModeController)
	c.InstanceRoles = []string{"orders-instance", "app/orders-migrate"}
	tmpl := render(t, c)
	sameStatements(t, policyStatements(t, tmpl, idUpdatePolicy+".PolicyDocument"), wantUpdateStatements)
	if got := compact(props(t, tmpl, idUpdatePolicy)["Roles"]); got != `[{"Ref":"ControllerRole"}]` {
		t.Errorf("the update policy is attached to %s, want the controller's role", got)
	}

	// Without --instance-role, no role may be passed.
	sameStatements(t, policyStatements(t, render(t, twoGroups(ModeController)), idUpdatePolicy+".PolicyDocument"),
		wantUpdateStatements[:len(wantUpdateStatements)-1])
}

// Group updates are driven by the long-running controller only: the
// Lambda deployment grants none of their calls, nor the signal policy.
func TestLambdaCannotUpdateGroups(t *testing.T) {
	tmpl := render(t, twoGroups(ModeLambda))
	for _, id := range []string{idUpdatePolicy, idSignalPolicy, idReleasePolicy} {
		if _, ok := resources(t, tmpl)[id]; ok {
			t.Errorf("the Lambda deployment has %s", id)
		}
	}
	updateOnly := []string{
		"autoscaling:CreateAutoScalingGroup", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteAutoScalingGroup",
		"autoscaling:PutLifecycleHook", "autoscaling:UpdateAutoScalingGroup", "ec2:CreateLaunchTemplateVersion",
		"ec2:DescribeLaunchTemplates", "ec2:RunInstances", "iam:PassRole",
	}
	for where, doc := range policyDocuments(t, tmpl) {
		for _, s := range statements(t, doc) {
			for _, a := range strs(s["Action"]) {
				if slices.Contains(updateOnly, a) {
					t.Errorf("%s: statement %v grants %s", where, s["Sid"], a)
				}
			}
			if strings.Contains(compact(s), "-*") {
				t.Errorf("%s: statement %v names replace-all groups: %s", where, s["Sid"], compact(s))
			}
		}
	}
	md := compact(tmpl["Metadata"])
	if !strings.Contains(md, "no API to start one") || !strings.Contains(tmpl["Description"].(string), "need --mode controller") {
		t.Error("the Lambda template must say that group updates need --mode controller")
	}
	if err := func() error { c := twoGroups(ModeLambda); c.InstanceRoles = []string{"r"}; return c.Validate() }(); err == nil {
		t.Error("instance roles accepted in lambda mode")
	}
}

// InstanceSignalPolicy is what the groups' instance roles need for
// `handover signal`: the two signal tags, on instances of the groups and
// their replace-all successors, and nothing else.
func TestSignalPolicy(t *testing.T) {
	tmpl := render(t, twoGroups(ModeController))
	want := `{"Sid": "SignalOnGroupInstances", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": [` + subInstances + `],
		"Condition": {
			"StringLike": {"aws:ResourceTag/aws:autoscaling:groupName": ["orders-a", "orders-a-*", "orders-b", "orders-b-*"]},
			"ForAllValues:StringEquals": {"aws:TagKeys": ["handover:signal", "handover:signal-reason"]}}}`
	got := policyStatements(t, tmpl, idSignalPolicy+".PolicyDocument")
	if len(got) != 1 || compact(got[0]) != compact(mustJSON(t, want)) {
		t.Errorf("signal policy:\n got %s\nwant %s", compact(got), compact(mustJSON(t, want)))
	}
	if r := resources(t, tmpl)[idSignalPolicy]; r["Type"] != "AWS::IAM::ManagedPolicy" {
		t.Errorf("%s is a %v, want a managed policy", idSignalPolicy, r["Type"])
	}
	if _, attached := props(t, tmpl, idSignalPolicy)["Roles"]; attached {
		t.Error("the signal policy is attached to a role: the instance roles are the user's to attach it to")
	}
	out := tmpl["Outputs"].(map[string]any)["InstanceSignalPolicyArn"]
	if compact(out.(map[string]any)["Value"]) != `{"Ref":"InstanceSignalPolicy"}` {
		t.Errorf("output InstanceSignalPolicyArn: %s", compact(out))
	}
	if tagSignal != awscloud.TagSignal || tagSignalReason != awscloud.TagSignalReason {
		t.Errorf("signal tags %s, %s differ from what handover signal puts: %s, %s", tagSignal, tagSignalReason, awscloud.TagSignal, awscloud.TagSignalReason)
	}
}

// No policy in the template, trust and queue policies included, names an
// action with a wildcard, uses NotAction or NotResource, or denies (a deny
// would hide a missing scope elsewhere).
func TestPoliciesNoWildcardActions(t *testing.T) {
	for _, mode := range modes {
		tmpl := render(t, twoGroups(mode))
		docs := policyDocuments(t, tmpl)
		if len(docs) < 3 {
			t.Fatalf("%s: found only %d policy documents", mode, len(docs))
		}
		for where, doc := range docs {
			for _, s := range statements(t, doc) {
				for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
					if _, ok := s[k]; ok {
						t.Errorf("%s %s: statement %v uses %s", mode, where, s["Sid"], k)
					}
				}
				if s["Effect"] != "Allow" {
					t.Errorf("%s %s: statement %v has effect %v", mode, where, s["Sid"], s["Effect"])
				}
				actions := strs(s["Action"])
				if len(actions) == 0 {
					t.Errorf("%s %s: statement %v has no action", mode, where, s["Sid"])
				}
				for _, a := range actions {
					if strings.ContainsAny(a, "*?") {
						t.Errorf("%s %s: action %q has a wildcard", mode, where, a)
					}
				}
			}
		}
	}
}

// Only calls without resource-level permissions may name every resource,
// every EC2 call that changes something is conditioned on a tag (or on
// being part of a create), a role is passed only to EC2, and groups are
// created only under a replace-all's name. Every policy of the template
// is checked, in each mode.
func TestControllerPolicyScoped(t *testing.T) {
	for _, mode := range modes {
		c := twoGroups(mode)
		if mode == ModeController {
			c.InstanceRoles = []string{"orders-instance"}
		}
		for where, doc := range policyDocuments(t, render(t, c)) {
			for _, s := range statements(t, doc) {
				actions := strs(s["Action"])
				for _, r := range strs(s["Resource"]) {
					if r != "*" {
						continue
					}
					for _, a := range actions {
						if _, name, _ := strings.Cut(a, ":"); !strings.HasPrefix(name, "Describe") {
							t.Errorf("%s %s: statement %v grants %s on every resource", mode, where, s["Sid"], a)
						}
					}
				}
				for _, a := range actions {
					if strings.HasPrefix(a, "ec2:") && !strings.HasPrefix(a, "ec2:Describe") && s["Condition"] == nil {
						t.Errorf("%s %s: statement %v grants %s without a tag condition", mode, where, s["Sid"], a)
					}
					if a == "iam:PassRole" && compact(s["Condition"]) != `{"StringEquals":{"iam:PassedToService":"ec2.amazonaws.com"}}` {
						t.Errorf("%s %s: statement %v passes roles to any service", mode, where, s["Sid"])
					}
					if a == "autoscaling:CreateAutoScalingGroup" {
						for _, r := range s["Resource"].([]any) {
							if !strings.HasSuffix(subText(r), "-*") {
								t.Errorf("%s %s: statement %v creates groups other than replacements: %s", mode, where, s["Sid"], compact(r))
							}
						}
					}
				}
			}
		}
	}
}

// subText returns the text of an Fn::Sub as the template renders it, ""
// for anything else.
func subText(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["Fn::Sub"].(string)
	return s
}

// Group names are literal in the policies even when they hold characters
// IAM or Fn::Sub would read as wildcards or variables; only the "-*" of
// the replace-all successors is a wildcard. EventBridge reads none of them.
func TestPolicyEscapesGroupNames(t *testing.T) {
	const (
		arn  = `{"Fn::Sub":"arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/db${!*}${!$}${!?}{x}`
		name = `db${*}${$}${?}{x}`
	)
	for _, tc := range []struct {
		mode                       Mode
		sid, resource, cond, event string
	}{
		{ModeLambda, "LifecycleActionsOfGroups", `[` + arn + `"}]`,
			`{"StringEquals":{"ec2:ResourceTag/aws:autoscaling:groupName":["` + name + `"]}}`, `["db*$?{x}"]`},
		{ModeController, "GroupsAndReplacements", `[` + arn + `"},` + arn + `-*"}]`,
			`{"StringLike":{"ec2:ResourceTag/aws:autoscaling:groupName":["` + name + `","` + name + `-*"]}}`, `["db*$?{x}",{"prefix":"db*$?{x}-"}]`},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			c := DefaultConfig()
			c.Mode, c.Groups = tc.mode, []string{"db*$?{x}"}
			tmpl := render(t, c)
			seen := 0
			for _, s := range policyStatements(t, tmpl, idRole+".Policies.handover-controller") {
				switch s["Sid"] {
				case "FenceGroupInstances", "AttachToGroupInstances":
					seen++
					if got := compact(s["Condition"]); got != tc.cond {
						t.Errorf("%s condition\n got %s\nwant %s", s["Sid"], got, tc.cond)
					}
				case tc.sid:
					seen++
					if got := compact(s["Resource"]); got != tc.resource {
						t.Errorf("resource\n got %s\nwant %s", got, tc.resource)
					}
				}
			}
			if seen != 3 {
				t.Errorf("found %d of the 3 group-scoped statements", seen)
			}
			pattern := props(t, tmpl, idRuleLaunch)["EventPattern"].(map[string]any)["detail"].(map[string]any)
			if got := compact(pattern["AutoScalingGroupName"]); got != tc.event {
				t.Errorf("event pattern %s, want %s", got, tc.event)
			}
		})
	}
}

// TestSSMFencePolicy: --fence ssm adds exactly the Run Command statements,
// scoped to the shell document and the groups' instances (with their
// replace-all successors in controller mode).
func TestSSMFencePolicy(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		cond string
	}{
		{ModeLambda, `{"StringEquals":{"ssm:resourceTag/aws:autoscaling:groupName":["orders-a","orders-b"]}}`},
		{ModeController, `{"StringLike":{"ssm:resourceTag/aws:autoscaling:groupName":["orders-a","orders-a-*","orders-b","orders-b-*"]}}`},
	} {
		t.Run(string(tc.mode), func(t *testing.T) { testSSMFencePolicy(t, tc.mode, tc.cond) })
	}
}

func testSSMFencePolicy(t *testing.T, mode Mode, cond string) {
	c := twoGroups(mode)
	c.Fence = FenceSSM
	tmpl := render(t, c)
	var got []map[string]any
	for _, doc := range policyDocuments(t, tmpl) {
		for _, s := range statements(t, doc) {
			for _, a := range strs(s["Action"]) {
				if strings.HasPrefix(a, "ssm:") {
					got = append(got, s)
					break
				}
			}
		}
	}
	want := []string{
		`{"Sid":"FenceBySSMDocument","Effect":"Allow","Action":["ssm:SendCommand"],"Resource":[{"Fn::Sub":"arn:${AWS::Partition}:ssm:${AWS::Region}::document/AWS-RunShellScript"}]}`,
		`{"Sid":"FenceBySSMOnGroupInstances","Effect":"Allow","Action":["ssm:SendCommand"],"Resource":[{"Fn::Sub":"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}],"Condition":` + cond + `}`,
		`{"Sid":"ReadSSMCommandResults","Effect":"Allow","Action":["ssm:GetCommandInvocation"],"Resource":["*"]}`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d SSM statements, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if compact(got[i]) != compact(mustJSON(t, w)) {
			t.Errorf("statement %d:\n got %s\nwant %s", i, compact(got[i]), compact(mustJSON(t, w)))
		}
	}
	// Without it, no SSM permission at all.
	for _, doc := range policyDocuments(t, render(t, twoGroups(mode))) {
		for _, s := range statements(t, doc) {
			for _, a := range strs(s["Action"]) {
				if strings.HasPrefix(a, "ssm:") {
					t.Errorf("http fence grants %s", a)
				}
			}
		}
	}
}
