package deploy

import (
	"strings"
	"testing"
)

const (
	subSnapshots = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*"}`
	subVolumes   = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*"}`
	subInstances = `{"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}`
	subGroup     = `{"Fn::Sub": "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/`
	managedCond  = `{"StringEquals": {"ec2:ResourceTag/handover:managed": "true"}}`
	taggedCond   = `{"StringEquals": {"aws:RequestTag/handover:managed": "true"}}`
	groupsCond   = `{"StringEquals": {"ec2:ResourceTag/aws:autoscaling:groupName": ["orders-a", "orders-b"]}}`
)

// wantStatements is the controller's policy for groups orders-a and
// orders-b, statement by statement. Any widening — an action, a resource,
// a dropped condition — fails TestControllerPolicyExact.
var wantStatements = []struct{ sid, json string }{
	{"CreateTaggedSnapshots", `{"Action": ["ec2:CreateSnapshot"], "Resource": [` + subSnapshots + `], "Condition": ` + taggedCond + `}`},
	{"SnapshotManagedVolumes", `{"Action": ["ec2:CreateSnapshot"], "Resource": [` + subVolumes + `], "Condition": ` + managedCond + `}`},
	{"CreateTaggedVolumes", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subVolumes + `], "Condition": ` + taggedCond + `}`},
	{"VolumesFromManagedSnapshots", `{"Action": ["ec2:CreateVolume"], "Resource": [` + subSnapshots + `], "Condition": ` + managedCond + `}`},
	{"TagOnCreate", `{"Action": ["ec2:CreateTags"], "Resource": [` + subSnapshots + `, ` + subVolumes + `],
		"Condition": {"StringEquals": {"aws:RequestTag/handover:managed": "true", "ec2:CreateAction": ["CreateSnapshot", "CreateVolume"]}}}`},
	{"DeleteManaged", `{"Action": ["ec2:DeleteSnapshot", "ec2:DeleteVolume"], "Resource": [` + subSnapshots + `, ` + subVolumes + `], "Condition": ` + managedCond + `}`},
	{"AttachManagedVolumes", `{"Action": ["ec2:AttachVolume", "ec2:DetachVolume"], "Resource": [` + subVolumes + `], "Condition": ` + managedCond + `}`},
	{"AttachToGroupInstances", `{"Action": ["ec2:AttachVolume", "ec2:DetachVolume"], "Resource": [` + subInstances + `], "Condition": ` + groupsCond + `}`},
	{"FenceGroupInstances", `{"Action": ["ec2:StartInstances", "ec2:StopInstances"], "Resource": [` + subInstances + `], "Condition": ` + groupsCond + `}`},
	{"LifecycleActionsOfGroups", `{"Action": ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat",
		"autoscaling:TerminateInstanceInAutoScalingGroup"], "Resource": [` + subGroup + `orders-a"}, ` + subGroup + `orders-b"}]}`},
	{"DescribeCalls", `{"Action": ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
		"autoscaling:DescribeLifecycleHooks", "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeVolumes"], "Resource": ["*"]}`},
	{"ConsumeEventsQueue", `{"Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
		"Resource": [{"Fn::GetAtt": ["EventsQueue", "Arn"]}]}`},
	{"DeadLetter", `{"Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]}`},
	{"Ledger", `{"Action": ["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
		"dynamodb:UpdateItem"], "Resource": [{"Fn::GetAtt": ["LedgerTable", "Arn"]}]}`},
	// Lambda mode only.
	{"FunctionLogs", `{"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [{"Fn::GetAtt": ["ControllerLogGroup", "Arn"]}]}`},
}

func controllerStatements(t *testing.T, mode Mode) []map[string]any {
	t.Helper()
	tmpl := render(t, twoGroups(mode))
	docs := policyDocuments(t, tmpl)
	doc, ok := docs[idRole+".Policies.handover-controller"]
	if !ok {
		t.Fatalf("no controller policy among %v", docs)
	}
	if doc["Version"] != "2012-10-17" {
		t.Errorf("policy version %v: policy variables need 2012-10-17", doc["Version"])
	}
	return statements(t, doc)
}

func TestControllerPolicyExact(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			got := controllerStatements(t, mode)
			want := wantStatements
			if mode != ModeLambda {
				want = want[:len(want)-1]
			}
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
		})
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
// and every EC2 call that changes something is conditioned on a tag.
func TestControllerPolicyScoped(t *testing.T) {
	for _, s := range controllerStatements(t, ModeLambda) {
		actions := strs(s["Action"])
		for _, r := range strs(s["Resource"]) {
			if r != "*" {
				continue
			}
			for _, a := range actions {
				if _, name, _ := strings.Cut(a, ":"); !strings.HasPrefix(name, "Describe") {
					t.Errorf("statement %v grants %s on every resource", s["Sid"], a)
				}
			}
		}
		for _, a := range actions {
			if strings.HasPrefix(a, "ec2:") && !strings.HasPrefix(a, "ec2:Describe") && s["Condition"] == nil {
				t.Errorf("statement %v grants %s without a tag condition", s["Sid"], a)
			}
		}
	}
}

// Group names are literal in the policy even when they hold characters IAM
// or Fn::Sub would read as wildcards or variables.
func TestPolicyEscapesGroupNames(t *testing.T) {
	c := DefaultConfig()
	c.Groups = []string{"db*$?{x}"}
	st := statements(t, policyDocuments(t, render(t, c))[idRole+".Policies.handover-controller"])
	for _, s := range st {
		switch s["Sid"] {
		case "FenceGroupInstances":
			if got := compact(s["Condition"]); got != `{"StringEquals":{"ec2:ResourceTag/aws:autoscaling:groupName":["db${*}${$}${?}{x}"]}}` {
				t.Errorf("condition %s", got)
			}
		case "LifecycleActionsOfGroups":
			want := `[{"Fn::Sub":"arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/db${!*}${!$}${!?}{x}"}]`
			if got := compact(s["Resource"]); got != want {
				t.Errorf("resource\n got %s\nwant %s", got, want)
			}
		}
	}
}

// TestSSMFencePolicy: --fence ssm adds exactly the Run Command statements,
// scoped to the shell document and the groups' instances.
func TestSSMFencePolicy(t *testing.T) {
	c := twoGroups(ModeController)
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
		`{"Sid":"FenceBySSMOnGroupInstances","Effect":"Allow","Action":["ssm:SendCommand"],"Resource":[{"Fn::Sub":"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*"}],"Condition":{"StringEquals":{"ssm:resourceTag/aws:autoscaling:groupName":["orders-a","orders-b"]}}}`,
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
	for _, doc := range policyDocuments(t, render(t, twoGroups(ModeController))) {
		for _, s := range statements(t, doc) {
			for _, a := range strs(s["Action"]) {
				if strings.HasPrefix(a, "ssm:") {
					t.Errorf("http fence grants %s", a)
				}
			}
		}
	}
}
