package deploy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestEventRulesAreTheTemplates: the patterns doctor holds a live
// deployment against are the ones the template deploys.
func TestEventRulesAreTheTemplates(t *testing.T) {
	for _, mode := range modes {
		cfg := twoGroups(mode)
		cfg.Groups = []string{"orders-a", "orders-b"} // the template sorts them
		rules, err := EventRules(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := render(t, cfg)
		var names []string
		for _, r := range rules {
			names = append(names, r.Name)
		}
		if want := []string{"handover-lifecycle-action", "handover-launch-result", "handover-snapshot-result", "handover-volume-result", "handover-instance-state"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("%s: rules %v, want %v", mode, names, want)
		}
		for _, r := range rules {
			var got any
			if err := json.Unmarshal([]byte(r.Pattern), &got); err != nil {
				t.Fatalf("%s: pattern of %s is not JSON: %v", mode, r.ID, err)
			}
			want := props(t, tmpl, r.ID)["EventPattern"]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: pattern of %s = %s, template has %v", mode, r.ID, r.Pattern, want)
			}
			if r.Description != props(t, tmpl, r.ID)["Description"] {
				t.Errorf("%s: description of %s differs from the template's", mode, r.ID)
			}
		}
	}
}

func TestLiveControllerPolicy(t *testing.T) {
	env := Env{Partition: "aws", Region: "eu-west-1", AccountID: "123456789012",
		QueueARN: "arn:aws:sqs:eu-west-1:123456789012:events", DeadLetterARN: "arn:aws:sqs:eu-west-1:123456789012:dlq"}
	tests := []struct {
		name      string
		cfg       Config
		table     string
		wantSid   []string
		noSid     []string
		wantInARN string
	}{
		{name: "sql ledger", cfg: Config{Groups: []string{"orders"}}, noSid: []string{"Ledger", "FenceBySSMDocument", "FunctionLogs"},
			wantSid:   []string{"CreateTaggedSnapshots", "GroupsAndReplacements", "ConsumeEventsQueue", "DeadLetter"},
			wantInARN: "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/orders-*"},
		{name: "dynamodb ledger, ssm fence", cfg: Config{Groups: []string{"a*b"}, Fence: FenceSSM}, table: "arn:aws:dynamodb:eu-west-1:123456789012:table/t",
			wantSid:   []string{"Ledger", "FenceBySSMDocument", "FenceBySSMOnGroupInstances"},
			wantInARN: "autoScalingGroupName/a${*}b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env
			e.TableARN = tt.table
			doc, err := LiveControllerPolicy(tt.cfg, e)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(doc)
			for _, st := range doc.Statement {
				for _, r := range st.Resource {
					if readsAsIntrinsic(r) || (r != "*" && !strings.HasPrefix(r, "arn:aws:")) {
						t.Errorf("statement %s: resource %q is not resolved", st.Sid, r)
					}
				}
			}
			if strings.Contains(string(b), "AWS::") || strings.Contains(string(b), "${!") {
				t.Errorf("unresolved intrinsics left: %s", b)
			}
			sids := map[string]bool{}
			for _, st := range doc.Statement {
				sids[st.Sid] = true
			}
			for _, s := range tt.wantSid {
				if !sids[s] {
					t.Errorf("no statement %s", s)
				}
			}
			for _, s := range tt.noSid {
				if sids[s] {
					t.Errorf("statement %s should be left out", s)
				}
			}
			if !strings.Contains(string(b), tt.wantInARN) {
				t.Errorf("policy lacks %q: %s", tt.wantInARN, b)
			}
			if !strings.Contains(string(b), env.QueueARN) || !strings.Contains(string(b), env.DeadLetterARN) {
				t.Errorf("the queues' ARNs are missing: %s", b)
			}
		})
	}
	if _, err := LiveControllerPolicy(Config{Groups: []string{"g"}}, Env{}); err == nil {
		t.Error("an empty Env resolved")
	}
}
