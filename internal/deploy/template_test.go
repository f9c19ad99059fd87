package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
)

// parse reads the template back with goformation. Its typed resources
// refuse unknown properties; intrinsics are kept as marker strings
// ("GetAtt(X.Arn)") instead of being resolved, so typed fields can be
// checked too.
func parse(t *testing.T, b []byte) *cloudformation.Template {
	t.Helper()
	mark := func(fn string) intrinsics.IntrinsicHandler {
		return func(_ string, in any, _ any) any {
			switch v := in.(type) {
			case []any:
				return fmt.Sprintf("%s(%s)", fn, strings.Join(strs(v), "."))
			default:
				return fmt.Sprintf("%s(%v)", fn, v)
			}
		}
	}
	tmpl, err := goformation.ParseJSONWithOptions(b, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
		"Ref": mark("Ref"), "Fn::GetAtt": mark("GetAtt"), "Fn::Sub": mark("Sub"),
	}})
	if err != nil {
		t.Fatalf("goformation cannot parse the template: %v", err)
	}
	return tmpl
}

func TestTemplateResourceTypes(t *testing.T) {
	common := map[string]string{
		idQueue: "AWS::SQS::Queue", idDeadLetterQueue: "AWS::SQS::Queue", idQueuePolicy: "AWS::SQS::QueuePolicy",
		idTable: "AWS::DynamoDB::Table", idRole: "AWS::IAM::Role",
		idRuleLifecycle: "AWS::Events::Rule", idRuleLaunch: "AWS::Events::Rule", idRuleSnapshot: "AWS::Events::Rule",
		idRuleVolume: "AWS::Events::Rule", idRuleInstanceState: "AWS::Events::Rule",
	}
	for _, g := range []string{"orders-a", "orders-b"} {
		common[logicalID("LaunchHook", g)] = "AWS::AutoScaling::LifecycleHook"
		common[logicalID("TerminateHook", g)] = "AWS::AutoScaling::LifecycleHook"
	}
	want := map[Mode]map[string]string{
		ModeLambda: {
			idFunction: "AWS::Lambda::Function", idLogGroup: "AWS::Logs::LogGroup", idMapping: "AWS::Lambda::EventSourceMapping",
			idSchedule: "AWS::Events::Rule", idPermission: "AWS::Lambda::Permission",
		},
		ModeController: {
			idInstanceProfile: "AWS::IAM::InstanceProfile", idUpdatePolicy: "AWS::IAM::ManagedPolicy", idSignalPolicy: "AWS::IAM::ManagedPolicy",
			idReleasePolicy: "AWS::IAM::ManagedPolicy",
		},
	}
	known := cloudformation.AllResources()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			b, err := Template(twoGroups(mode))
			if err != nil {
				t.Fatal(err)
			}
			tmpl := parse(t, b)
			got := map[string]string{}
			for id, r := range tmpl.Resources {
				typ := r.AWSCloudFormationType()
				if _, ok := known[typ]; !ok {
					t.Errorf("resource %s has type %q, which CloudFormation does not know", id, typ)
				}
				got[id] = typ
			}
			w := maps.Clone(common)
			maps.Copy(w, want[mode])
			if !maps.Equal(got, w) {
				t.Errorf("resources:\n got %v\nwant %v", got, w)
			}
		})
	}
}

// knownAttributes are the Fn::GetAtt attributes of the types the template
// uses, as CloudFormation documents them.
var knownAttributes = map[string][]string{
	"AWS::SQS::Queue":           {"Arn", "QueueName", "QueueUrl"},
	"AWS::DynamoDB::Table":      {"Arn", "StreamArn"},
	"AWS::IAM::Role":            {"Arn", "RoleId"},
	"AWS::IAM::InstanceProfile": {"Arn"},
	"AWS::Lambda::Function":     {"Arn"},
	"AWS::Events::Rule":         {"Arn"},
	"AWS::Logs::LogGroup":       {"Arn"},
	"AWS::S3::Bucket":           {"Arn", "DomainName", "RegionalDomainName"},
}

var pseudoParameters = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// Every Ref, Fn::GetAtt, Fn::Sub variable and DependsOn must name a
// resource or parameter of the template (or a pseudo parameter), every
// parameter must be used, and nothing may be null (what goformation leaves
// of an intrinsic it could not keep).
func TestTemplateReferencesResolve(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			checkReferences(t, render(t, twoGroups(mode)))
		})
	}
}

// checkReferences is TestTemplateReferencesResolve's check of one
// rendered template. Fn::If must name a condition of the template, and
// conditions may use Fn::Not and Fn::Equals.
func checkReferences(t *testing.T, tmpl map[string]any) {
	t.Helper()
	res := resources(t, tmpl)
	params, _ := tmpl["Parameters"].(map[string]any)
	conds, _ := tmpl["Conditions"].(map[string]any)
	used := map[string]bool{}
	typeOf := func(id string) string { s, _ := res[id]["Type"].(string); return s }
	checkRef := func(path, name string) {
		used[name] = true
		if _, ok := res[name]; ok {
			return
		}
		if _, ok := params[name]; ok {
			return
		}
		if !slices.Contains(pseudoParameters, name) {
			t.Errorf("%s: Ref %q names no resource, parameter or pseudo parameter", path, name)
		}
	}
	checkAtt := func(path, name, attr string) {
		if _, ok := res[name]; !ok {
			t.Errorf("%s: Fn::GetAtt %s.%s names no resource", path, name, attr)
			return
		}
		if !slices.Contains(knownAttributes[typeOf(name)], attr) {
			t.Errorf("%s: Fn::GetAtt %s.%s: %s has no attribute %q", path, name, attr, typeOf(name), attr)
		}
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			t.Errorf("%s is null", path)
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			for k, e := range x {
				p := path + "." + k
				switch {
				case k == "Ref":
					checkRef(p, e.(string))
				case k == "Fn::GetAtt":
					a := strs(e)
					if len(a) != 2 {
						t.Errorf("%s: malformed %v", p, e)
						continue
					}
					checkAtt(p, a[0], a[1])
				case k == "Fn::Sub":
					s, ok := e.(string)
					if !ok {
						t.Errorf("%s: only the string form of Fn::Sub is expected, got %v", p, e)
						continue
					}
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						if strings.HasPrefix(m[1], "!") {
							continue // a literal ${
						}
						if name, attr, ok := strings.Cut(m[1], "."); ok {
							checkAtt(p, name, attr)
						} else {
							checkRef(p, name)
						}
					}
				case k == "Fn::If":
					a, _ := e.([]any)
					if len(a) != 3 || conds[fmt.Sprint(a[0])] == nil {
						t.Errorf("%s: Fn::If %v names no condition of the template", p, e)
						continue
					}
					walk(p, a[1:])
				case k == "Fn::Not" || k == "Fn::Equals":
					walk(p, e)
				case strings.HasPrefix(k, "Fn::"):
					t.Errorf("%s: unexpected intrinsic %s", p, k)
				default:
					walk(p, e)
				}
			}
		}
	}
	walk("", tmpl)
	for id, r := range res {
		for _, d := range strs(r["DependsOn"]) {
			if _, ok := res[d]; !ok {
				t.Errorf("%s DependsOn %q, which is no resource", id, d)
			}
		}
	}
	for p := range params {
		if !used[p] {
			t.Errorf("parameter %s is never used", p)
		}
	}
}

func TestTemplateDeterministic(t *testing.T) {
	for _, mode := range modes {
		a, err := Template(twoGroups(mode))
		if err != nil {
			t.Fatal(err)
		}
		c := twoGroups(mode)
		slices.Reverse(c.Groups)
		b, err := Template(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the order of the groups changed the template", mode)
		}
	}
}

func TestTemplateHooks(t *testing.T) {
	c := twoGroups(ModeController)
	c.HeartbeatTimeout = 1800e9
	b, err := Template(c)
	if err != nil {
		t.Fatal(err)
	}
	hooks := parse(t, b).GetAllAutoScalingLifecycleHookResources()
	if len(hooks) != 4 {
		t.Fatalf("%d hooks, want 2 per group", len(hooks))
	}
	for _, tc := range []struct{ group, db string }{{"orders-a", "orders"}, {"orders-b", "orders-b"}} {
		for _, w := range []struct{ prefix, name, transition, result string }{
			{"LaunchHook", "handover-launch", "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON"},
			{"TerminateHook", "handover-terminate", "autoscaling:EC2_INSTANCE_TERMINATING", "CONTINUE"},
		} {
			id := logicalID(w.prefix, tc.group)
			h, ok := hooks[id]
			if !ok {
				t.Errorf("no hook %s", id)
				continue
			}
			if h.AutoScalingGroupName != tc.group || cloudformation.StringValue(h.LifecycleHookName) != w.name ||
				h.LifecycleTransition != w.transition || cloudformation.StringValue(h.DefaultResult) != w.result ||
				cloudformation.IntValue(h.HeartbeatTimeout) != 1800 || h.NotificationTargetARN != nil {
				t.Errorf("hook %s: %+v", id, h)
			}
			md, err := handover.ParseMetadata(cloudformation.StringValue(h.NotificationMetadata))
			if err != nil || md.Database != tc.db {
				t.Errorf("hook %s: metadata %q → %+v, %v; want database %q", id, cloudformation.StringValue(h.NotificationMetadata), md, err, tc.db)
			}
			if !strings.HasPrefix(w.name, handover.DefaultConfig().HookPrefix) {
				t.Errorf("hook %s is not under the controller's default hook prefix %q", w.name, handover.DefaultConfig().HookPrefix)
			}
		}
	}
}

func TestTemplateLedgerTable(t *testing.T) {
	tmpl := render(t, twoGroups(ModeLambda))
	want := mustJSON(t, `{
		"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
		"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
		"BillingMode": "PAY_PER_REQUEST",
		"TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true},
		"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true}
	}`)
	if got := props(t, tmpl, idTable); compact(got) != compact(want) {
		t.Errorf("table:\n got %s\nwant %s", compact(got), compact(want))
	}
	r := resources(t, tmpl)[idTable]
	if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("the ledger table must be retained: %v", r)
	}
}

func TestTemplateQueues(t *testing.T) {
	for _, tc := range []struct {
		mode       Mode
		visibility float64
	}{{ModeLambda, 360}, {ModeController, 60}} {
		tmpl := render(t, twoGroups(tc.mode))
		q := props(t, tmpl, idQueue)
		want := mustJSON(t, fmt.Sprintf(`{
			"RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "maxReceiveCount": 5},
			"SqsManagedSseEnabled": true, "VisibilityTimeout": %v}`, tc.visibility))
		if compact(q) != compact(want) {
			t.Errorf("%s: events queue:\n got %s\nwant %s", tc.mode, compact(q), compact(want))
		}
		if tc.mode == ModeLambda && tc.visibility < 6*functionTimeout {
			t.Errorf("visibility timeout %v is under six times the function timeout", tc.visibility)
		}
	}
}

func TestTemplateLambda(t *testing.T) {
	tmpl := render(t, twoGroups(ModeLambda))
	fn := props(t, tmpl, idFunction)
	for k, want := range map[string]string{
		"Runtime": `"provided.al2023"`, "Handler": `"bootstrap"`,
		"Code": `{"S3Bucket":{"Ref":"CodeS3Bucket"},"S3Key":{"Ref":"CodeS3Key"}}`,
		"Environment": `{"Variables":{"HANDOVER_DEAD_LETTER_QUEUE_URL":{"Ref":"DeadLetterQueue"},"HANDOVER_FENCE":"http","HANDOVER_HOOK_PREFIX":"handover",` +
			`"HANDOVER_LEDGER":{"Fn::Sub":"dynamodb://${LedgerTable}?region=${AWS::Region}"},"HANDOVER_QUEUE_URL":{"Ref":"EventsQueue"}}}`,
		"Role": `{"Fn::GetAtt":["ControllerRole","Arn"]}`,
	} {
		if got := compact(fn[k]); got != want {
			t.Errorf("function %s = %s, want %s", k, got, want)
		}
	}
	m := props(t, tmpl, idMapping)
	if compact(m["FunctionResponseTypes"]) != `["ReportBatchItemFailures"]` || compact(m["EventSourceArn"]) != `{"Fn::GetAtt":["EventsQueue","Arn"]}` {
		t.Errorf("event source mapping: %s", compact(m))
	}
	s := props(t, tmpl, idSchedule)
	if s["ScheduleExpression"] != "rate(1 minute)" || compact(s["Targets"]) != `[{"Arn":{"Fn::GetAtt":["ControllerFunction","Arn"]},"Id":"handover-reconcile"}]` {
		t.Errorf("schedule: %s", compact(s))
	}
	outs := slices.Sorted(maps.Keys(tmpl["Outputs"].(map[string]any)))
	if want := []string{"DeadLetterQueueUrl", "EventsQueueUrl", "FunctionName", "LedgerTableName", "LedgerUrl", "LogGroupName", "RoleArn"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
	p := props(t, tmpl, idPermission)
	if compact(p) != `{"Action":"lambda:InvokeFunction","FunctionName":{"Ref":"ControllerFunction"},"Principal":"events.amazonaws.com","SourceArn":{"Fn::GetAtt":["ReconcileSchedule","Arn"]}}` {
		t.Errorf("permission: %s", compact(p))
	}
}

func TestTemplateControllerRole(t *testing.T) {
	tmpl := render(t, twoGroups(ModeController))
	trust := props(t, tmpl, idRole)["AssumeRolePolicyDocument"]
	want := mustJSON(t, `{"Version": "2012-10-17", "Statement": [
		{"Sid": "Ec2", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole"]},
		{"Sid": "EcsTasks", "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": ["sts:AssumeRole"],
		 "Condition": {"ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*"}},
		               "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}`)
	if compact(trust) != compact(want) {
		t.Errorf("trust:\n got %s\nwant %s", compact(trust), compact(want))
	}
	if got := compact(props(t, tmpl, idInstanceProfile)); got != `{"Roles":[{"Ref":"ControllerRole"}]}` {
		t.Errorf("instance profile: %s", got)
	}
	outs := slices.Sorted(maps.Keys(tmpl["Outputs"].(map[string]any)))
	if want := []string{"DeadLetterQueueUrl", "EventsQueueUrl", "InstanceProfileArn", "InstanceProfileName", "InstanceSignalPolicyArn",
		"LedgerTableName", "LedgerUrl", "RoleArn"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
}

// The queue accepts messages from this stack's event rules only.
func TestTemplateQueuePolicy(t *testing.T) {
	tmpl := render(t, twoGroups(ModeLambda))
	p := props(t, tmpl, idQueuePolicy)
	want := mustJSON(t, `{"Queues": [{"Ref": "EventsQueue"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
		"Sid": "EventBridgeRulesOnly", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
		"Action": ["sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["EventsQueue", "Arn"]}],
		"Condition": {"ArnEquals": {"aws:SourceArn": [
			{"Fn::GetAtt": ["LifecycleActionRule", "Arn"]}, {"Fn::GetAtt": ["LaunchResultRule", "Arn"]},
			{"Fn::GetAtt": ["SnapshotResultRule", "Arn"]}, {"Fn::GetAtt": ["VolumeResultRule", "Arn"]},
			{"Fn::GetAtt": ["InstanceStateRule", "Arn"]}]}}}]}}`)
	if compact(p) != compact(want) {
		t.Errorf("queue policy:\n got %s\nwant %s", compact(p), compact(want))
	}
	// Every rule that targets the queue is allowed, and no other.
	var targeting []string
	for id, r := range resources(t, tmpl) {
		if r["Type"] != "AWS::Events::Rule" {
			continue
		}
		if strings.Contains(compact(r["Properties"].(map[string]any)["Targets"]), `"EventsQueue"`) {
			targeting = append(targeting, id)
		}
	}
	slices.Sort(targeting)
	want2 := []string{idRuleInstanceState, idRuleLaunch, idRuleLifecycle, idRuleSnapshot, idRuleVolume}
	slices.Sort(want2)
	if !slices.Equal(targeting, want2) {
		t.Errorf("rules targeting the queue %v, want %v", targeting, want2)
	}
}

// matches applies an EventBridge pattern of the kinds the template uses:
// lists of exact values and prefix filters.
func matches(pattern, event map[string]any) bool {
	for k, want := range pattern {
		got, ok := event[k]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !ok || !matches(w, g) {
				return false
			}
		case []any:
			if !slices.ContainsFunc(w, func(v any) bool { return matchesValue(v, got) }) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// matchesValue applies one value of a pattern's list.
func matchesValue(want, got any) bool {
	f, ok := want.(map[string]any)
	if !ok {
		return want == got
	}
	s, isString := got.(string)
	prefix, isPrefix := f["prefix"].(string)
	if len(f) != 1 || !isPrefix {
		panic(fmt.Sprintf("the test does not know the filter %v", f))
	}
	return isString && strings.HasPrefix(s, prefix)
}

// rulePatterns returns the event pattern of each rule that feeds the
// queue in the template for c.
func rulePatterns(t *testing.T, c Config) map[string]map[string]any {
	t.Helper()
	tmpl := render(t, c)
	out := map[string]map[string]any{}
	for _, id := range []string{idRuleLifecycle, idRuleLaunch, idRuleSnapshot, idRuleVolume, idRuleInstanceState} {
		out[id] = props(t, tmpl, id)["EventPattern"].(map[string]any)
	}
	return out
}

// hits are the rules of patterns that match ev, sorted.
func hits(patterns map[string]map[string]any, ev map[string]any) []string {
	var ids []string
	for id, p := range patterns {
		if matches(p, ev) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// withGroup returns a copy of the Auto Scaling event ev naming group
// instead of its own.
func withGroup(t *testing.T, ev map[string]any, group string) map[string]any {
	t.Helper()
	c := mustJSON(t, compact(ev)).(map[string]any)
	c["detail"].(map[string]any)["AutoScalingGroupName"] = group
	return c
}

// The rules carry exactly the events handover decodes: every sample event
// of internal/events that Decode accepts reaches the queue through one
// rule, and every one it ignores is dropped by EventBridge already. In
// controller mode, an Auto Scaling event of a replace-all's group
// ("<group>-<12 hex digits>") takes the same rule as one of the group
// itself; in lambda mode, which runs no updates, it is dropped, and in
// both, so is one of a group whose name merely starts with the group's.
func TestTemplateRulesMatchDecodedEvents(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) { testRulesMatchDecodedEvents(t, mode) })
	}
}

func testRulesMatchDecodedEvents(t *testing.T, mode Mode) {
	c := DefaultConfig()
	c.Mode = mode
	c.Groups = []string{"orders-db", "tenant-42-db"}
	others := c
	others.Groups = []string{"someone-else"}
	mine, theirs := rulePatterns(t, c), rulePatterns(t, others)
	// Decoded, but no migration waits for an instance to become pending.
	notRouted := map[string]bool{"instance-state-pending.json": true}

	files, err := filepath.Glob(filepath.Join("..", "events", "testdata", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample events: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ev := mustJSON(t, string(raw)).(map[string]any)
			got := hits(mine, ev)
			decoded, err := events.Decode(raw)
			switch {
			case err != nil && events.IsIgnored(err):
				if len(got) != 0 {
					t.Errorf("handover ignores this event, but rules %v send it to the queue", got)
				}
			case err != nil:
				t.Fatalf("sample event does not decode: %v", err)
			case notRouted[name]:
				if len(got) != 0 {
					t.Errorf("rules %v route an event no migration waits for", got)
				}
			default:
				if len(got) != 1 {
					t.Errorf("decoded %s event matched rules %v, want exactly one", decoded.Kind, got)
				}
				if decoded.Source == events.SourceAutoScaling {
					if h := hits(theirs, ev); len(h) != 0 {
						t.Errorf("an event of group %q reached the queue of a stack for other groups through %v", ev["detail"].(map[string]any)["AutoScalingGroupName"], h)
					}
				}
			}
			if ev["source"] != events.SourceAutoScaling {
				return
			}
			group := ev["detail"].(map[string]any)["AutoScalingGroupName"].(string)
			var want []string // a replacement's event takes the group's rules with updates, none without
			if mode == ModeController {
				want = got
			}
			for _, tc := range []struct {
				group string
				want  []string
			}{
				{group + "-0123456789ab", want},
				{group + "-0123456789ab-fedcba987654", want}, // a replace-all of the replacement
				{group + "X", nil},
				{"X" + group + "-0123456789ab", nil},
			} {
				if h := hits(mine, withGroup(t, ev, tc.group)); !slices.Equal(h, tc.want) {
					t.Errorf("the event of group %s matched rules %v, want %v", tc.group, h, tc.want)
				}
			}
		})
	}
}

// The brief's own case: with group "orders", a launch of the replace-all
// group orders-0123456789ab reaches the queue in controller mode, one of
// ordersX never does, and the hooks stay on "orders" alone.
func TestTemplateRulesReplacementGroup(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "events", "testdata", "events", "launch-lifecycle-action.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev := mustJSON(t, string(raw)).(map[string]any)
	for _, tc := range []struct {
		mode          Mode
		group         string
		wantDelivered bool
	}{
		{ModeController, "orders", true},
		{ModeController, "orders-0123456789ab", true},
		{ModeController, "ordersX", false},
		{ModeLambda, "orders", true},
		{ModeLambda, "orders-0123456789ab", false},
		{ModeLambda, "ordersX", false},
	} {
		c := DefaultConfig()
		c.Mode, c.Groups = tc.mode, []string{"orders"}
		got := hits(rulePatterns(t, c), withGroup(t, ev, tc.group))
		want := []string(nil)
		if tc.wantDelivered {
			want = []string{idRuleLifecycle}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s, lifecycle action of %s: rules %v, want %v", tc.mode, tc.group, got, want)
		}
	}
	b, err := Template(func() Config { c := DefaultConfig(); c.Mode, c.Groups = ModeController, []string{"orders"}; return c }())
	if err != nil {
		t.Fatal(err)
	}
	for id, h := range parse(t, b).GetAllAutoScalingLifecycleHookResources() {
		if h.AutoScalingGroupName != "orders" {
			t.Errorf("hook %s is on group %s, want only orders", id, h.AutoScalingGroupName)
		}
	}
}

func TestTemplateMetadata(t *testing.T) {
	tmpl := render(t, twoGroups(ModeLambda))
	md := tmpl["Metadata"].(map[string]any)["Handover"].(map[string]any)
	if compact(md["Ledger"]) != `{"PartitionKey":"pk","SortKey":"sk","TTLAttribute":"expires_at"}` {
		t.Errorf("ledger metadata: %s", compact(md["Ledger"]))
	}
	if compact(md["Groups"]) != `["orders-a","orders-b"]` || compact(md["Databases"]) != `{"orders-a":"orders","orders-b":"orders-b"}` {
		t.Errorf("groups metadata: %s %s", compact(md["Groups"]), compact(md["Databases"]))
	}
	if !strings.Contains(compact(md["Notes"]), "carry no group name") || !strings.Contains(tmpl["Description"].(string), "carry no group name") {
		t.Error("the template must say that the EC2 and EBS events carry no group name")
	}
	if d := tmpl["Description"].(string); len(d) > 1024 {
		t.Errorf("Description is %d bytes, over CloudFormation's 1024", len(d))
	}
}

func TestTemplateSizeLimits(t *testing.T) {
	c := DefaultConfig()
	c.Databases = map[string]string{}
	for i := range 12 {
		g := fmt.Sprintf("%03d-%s", i, strings.Repeat("g", 200))
		c.Groups = append(c.Groups, g)
		c.Databases[g] = fmt.Sprintf("db-%d", i)
	}
	if _, err := Template(c); err == nil || !strings.Contains(err.Error(), "over EventBridge's default limit of 2048") {
		t.Errorf("12 groups of 204 characters: got %v, want the pattern size error", err)
	}
	// A realistic fleet fits: 20 groups for the Lambda deployment; for the
	// controller, whose policy also names each group's replace-all
	// successors and runs group updates, 15 (12 with the SSM fence).
	fleet := func(mode Mode, fence string, n int) Config {
		c := DefaultConfig()
		c.Mode, c.Fence = mode, fence
		if mode == ModeController {
			c.InstanceRoles = []string{"orders-instance", "app/orders-migrate"}
		}
		for i := range n {
			c.Groups = append(c.Groups, fmt.Sprintf("tenant-%02d-postgres-primary", i))
		}
		return c
	}
	for _, tc := range []struct {
		mode  Mode
		fence string
		fits  int
	}{{ModeLambda, FenceHTTP, 20}, {ModeLambda, FenceSSM, 20}, {ModeController, FenceHTTP, 15}, {ModeController, FenceSSM, 12}} {
		if _, err := Template(fleet(tc.mode, tc.fence, tc.fits)); err != nil {
			t.Errorf("%s, fence %s, %d groups: %v", tc.mode, tc.fence, tc.fits, err)
		}
	}
	if _, err := Template(fleet(ModeController, FenceHTTP, 20)); err == nil || !strings.Contains(err.Error(), "over IAM's limit of 10240") {
		t.Errorf("controller, 20 groups: got %v, want the policy size error", err)
	}
	// The policy checks count what IAM would.
	big := controllerPolicy(fleet(ModeLambda, FenceHTTP, 20), true)
	for range 40 {
		big.Statement = append(big.Statement, big.Statement[0])
	}
	if err := checkPolicySize(big, "the controller's policy", maxRolePolicySize); err == nil || !strings.Contains(err.Error(), "over IAM's limit of 10240") {
		t.Errorf("oversized policy: got %v", err)
	}
	if err := checkPolicySize(updatePolicy(fleet(ModeController, FenceHTTP, 60)), "the update policy", maxManagedPolicySize); err == nil ||
		!strings.Contains(err.Error(), "over IAM's limit of 6144") {
		t.Errorf("oversized update policy: got %v", err)
	}
}

// estimate never counts an Fn::Sub shorter than CloudFormation could
// resolve it: with the longest partition, region and account id there are.
func TestEstimateBoundsResolvedSubs(t *testing.T) {
	longest := strings.NewReplacer("${AWS::Partition}", "aws-us-gov", "${AWS::Region}", "us-isof-south-1", "${AWS::AccountId}", "123456789012")
	c := twoGroups(ModeController)
	c.InstanceRoles = []string{"orders-instance"}
	tmpl := render(t, c)
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			if sub, ok := x["Fn::Sub"].(string); ok {
				n++
				est := estimate(cloudformation.Sub(sub)).(string)
				if resolved := longest.Replace(sub); len(est) < len(resolved) {
					t.Errorf("%s: estimated %d characters, resolves to up to %d", sub, len(est), len(resolved))
				}
				return
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, doc := range policyDocuments(t, tmpl) {
		walk(doc)
	}
	if n == 0 {
		t.Fatal("no Fn::Sub in the policies")
	}
}

func TestLogicalID(t *testing.T) {
	for _, tc := range []struct{ group, prefix string }{
		{"orders-a", "LaunchHookOrdersA"},
		{"tenant_42.db", "LaunchHookTenant42Db"},
		{"***", "LaunchHook"},
	} {
		id := logicalID("LaunchHook", tc.group)
		if !strings.HasPrefix(id, tc.prefix) || len(id) != len(tc.prefix)+8 {
			t.Errorf("logicalID(%q) = %q, want %s + 8 hex digits", tc.group, id, tc.prefix)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9]+$`).MatchString(id) {
			t.Errorf("logicalID(%q) = %q is not alphanumeric", tc.group, id)
		}
	}
	if logicalID("H", "a-b") == logicalID("H", "a.b") {
		t.Error("groups differing in punctuation share a logical id")
	}
	if long := logicalID("LaunchHook", strings.Repeat("x", 255)); len(long) > 255 {
		t.Errorf("logical id of %d characters, over CloudFormation's 255", len(long))
	}
}
