package doctor

import (
	"testing"
	"time"
)

func TestQueuePolicyAllowsEventBridge(t *testing.T) {
	const queue = "arn:aws:sqs:eu-west-1:123456789012:handover-events"
	const rule = "arn:aws:events:eu-west-1:123456789012:rule/handover-lifecycle-action"
	const other = "arn:aws:events:eu-west-1:123456789012:rule/someone-elses"
	tests := []struct {
		name            string
		policy          string
		rule            string
		allowed, open   bool
		unknown, badDoc bool
	}{
		{name: "the template's", rule: rule, allowed: true, policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":["sqs:SendMessage"],"Resource":["` + queue + `"],"Condition":{"ArnEquals":{"aws:SourceArn":["` + rule + `"]}}}]}`},
		{name: "a rule the template's leaves out", rule: other, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + rule + `"}}}]}`},
		{name: "one statement, not a list; wildcards", rule: rule, allowed: true, policy: `{"Statement":{"Effect":"Allow","Principal":{"Service":["events.amazonaws.com"]},
			"Action":"sqs:*","Resource":"arn:aws:sqs:*:123456789012:handover-*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:events:*:123456789012:rule/handover-*"}}}}`},
		{name: "by account", rule: rule, allowed: true, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":"SQS:SendMessage","Resource":"` + queue + `","Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"}}}]}`},
		{name: "another account", rule: rule, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"StringEquals":{"aws:SourceAccount":"999999999999"}}}]}`},
		{name: "anyone", rule: rule, allowed: true, open: true, policy: `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"` + queue + `"}]}`},
		{name: "another service", rule: rule, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"` + queue + `"}]}`},
		{name: "another action", rule: rule, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:ReceiveMessage","Resource":"` + queue + `"}]}`},
		{name: "another queue", rule: rule, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"` + queue + `-dlq"}]}`},
		{name: "an explicit deny wins", rule: rule, policy: `{"Statement":[
			{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"` + queue + `"},
			{"Effect":"Deny","Principal":"*","Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"ArnNotEquals":{"aws:SourceArn":"` + other + `"}}}]}`},
		{name: "a condition doctor cannot know", rule: rule, unknown: true, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`},
		{name: "IfExists of a key doctor does not know", rule: rule, allowed: true, policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
			"Action":"sqs:SendMessage","Resource":"` + queue + `","Condition":{"StringEqualsIfExists":{"aws:SourceVpce":"vpce-1"},"ArnEquals":{"aws:SourceArn":"` + rule + `"}}}]}`},
		{name: "not JSON", policy: `{"Statement":`, badDoc: true},
		{name: "no statements", policy: `{"Statement":[]}`, badDoc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePolicy(tt.policy)
			if tt.badDoc {
				if err == nil {
					t.Fatal("parsed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v := p.allowsEventBridge(queue, tt.rule, "123456789012")
			if v.allowed != tt.allowed || v.open != tt.open || (v.unknown != "") != tt.unknown {
				t.Errorf("verdict %+v, want allowed %v open %v unknown %v", v, tt.allowed, tt.open, tt.unknown)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"a*c", "abbbc", true}, {"a*c", "ab", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*", "", true}, {"", "", true}, {"", "a", false}, {"arn:aws:sqs:*:1:q", "arn:aws:sqs:us-east-1:1:q", true},
	} {
		if got := glob(tt.p, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func TestHeartbeatFit(t *testing.T) {
	const advance, reconcile = 5 * time.Second, time.Minute
	tests := []struct {
		timeout time.Duration
		want    Status
	}{
		{10 * time.Minute, OK},
		{2*reconcile + advance, OK},
		{2*reconcile + advance - time.Second, Warn},
		{reconcile + advance, Warn},
		{reconcile + advance - time.Second, Fail},
		{30 * time.Second, Fail},
		{0, Fail},
	}
	for _, tt := range tests {
		if got, why := heartbeatFit(tt.timeout, advance, reconcile); got != tt.want || (got != OK && why == "") {
			t.Errorf("timeout %s: %s %q, want %s", tt.timeout, got, why, tt.want)
		}
	}
	if got, _ := heartbeatFit(10*time.Minute, 4*time.Minute, time.Minute); got != Fail {
		t.Errorf("advance-interval over timeout/3: %s, want fail", got)
	}
}
