package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/daemon"
)

// credentials resolves the credentials the way the controller does at
// start.
func (a *audit) credentials(ctx context.Context) bool {
	if err := daemon.CheckCredentials(ctx, a.deps.Credentials); err != nil {
		a.add(failFrom("credentials", err, "run doctor again; if it keeps failing, check the credential source"))
		return false
	}
	src := "the AWS credential chain"
	if c, err := a.deps.Credentials.Retrieve(ctx); err == nil && c.Source != "" {
		src = c.Source
	}
	a.add(Result{Check: "credentials", Status: OK, Detail: "resolved from " + src})
	return true
}

// checkQueues checks the events queue and its dead-letter queue, as the
// controller does at start.
func (a *audit) checkQueues(ctx context.Context) {
	found, err := daemon.CheckQueue(ctx, a.deps.SQS, a.cfg.QueueURL)
	if err != nil {
		a.add(failFrom("queue", err, "run doctor again; if it keeps failing, check that the endpoint and region are the queue's"))
		a.add(Result{Check: "dead-letter-queue", Status: Skip, Detail: "not checked: the events queue could not be read"})
		return
	}
	a.queues, a.queueOK = found, true
	a.add(Result{Check: "queue", Status: OK, Detail: found.QueueARN + " exists and answers these credentials"})

	found, err = daemon.CheckDeadLetter(ctx, a.deps.SQS, found, a.cfg.DeadLetterURL)
	a.queues = found
	if err != nil {
		a.add(failFrom("dead-letter-queue", err, "run doctor again"))
		return
	}
	var rp struct {
		MaxReceiveCount json.RawMessage `json:"maxReceiveCount"`
	}
	_ = json.Unmarshal([]byte(found.RedrivePolicy), &rp)
	detail := fmt.Sprintf("%s, after %s receives", found.DeadLetterARN, strings.Trim(string(rp.MaxReceiveCount), `"`))
	if a.cfg.DeadLetterURL != "" && found.ExplicitARN != found.DeadLetterARN {
		a.add(Result{Check: "dead-letter-queue", Status: Warn,
			Detail: fmt.Sprintf("messages that keep failing go to %s (the redrive policy), poison messages to %s (--dead-letter-queue-url)", found.DeadLetterARN, found.ExplicitARN),
			Fix:    "use one queue for both: leave --dead-letter-queue-url empty, or point the redrive policy at it"})
		return
	}
	a.add(Result{Check: "dead-letter-queue", Status: OK, Detail: detail})
}

// failFrom turns a start check's error into a row: a misconfiguration
// with its own fix, or a fault the check could not get past.
func failFrom(check string, err error, retryFix string) Result {
	var m *daemon.MisconfiguredError
	if errors.As(err, &m) {
		return Result{Check: check, Status: Fail, Detail: m.Err.Error(), Fix: m.Fix}
	}
	return Result{Check: check, Status: Fail, Detail: "could not check: " + err.Error(), Fix: retryFix}
}

// eventsPrincipal is the service principal EventBridge sends to SQS as
// (EventBridge user guide, "Using resource-based policies for Amazon
// EventBridge", Amazon SQS permissions).
const eventsPrincipal = "events.amazonaws.com"

// checkQueuePolicy checks that the queue policy lets EventBridge send
// from every rule that delivers to the queue: AWS drops, without a word,
// the events of a rule the policy does not allow.
func (a *audit) checkQueuePolicy() {
	if len(a.delivering) == 0 {
		a.add(Result{Check: "queue-policy", Status: Skip, Detail: "not checked: no rule delivers to the queue"})
		return
	}
	var arns []string
	for _, r := range a.delivering {
		arns = append(arns, r.ARN)
	}
	fix := "let EventBridge send from the rules: aws sqs set-queue-attributes --queue-url " + a.cfg.QueueURL +
		" --attributes '" + policyAttribute(a.queues.QueueARN, arns) + "' (the stack of `handover deploy template` sets this policy)"
	if a.queues.Policy == "" {
		a.add(Result{Check: "queue-policy", Status: Fail,
			Detail: "the queue has no policy, so EventBridge may not send to it and drops every event", Fix: fix})
		return
	}
	pol, err := parsePolicy(a.queues.Policy)
	if err != nil {
		a.add(Result{Check: "queue-policy", Status: Fail, Detail: "the queue policy cannot be read: " + err.Error(), Fix: fix})
		return
	}
	account := arnAccount(a.queues.QueueARN)
	var denied, unknown, open []string
	for _, r := range a.delivering {
		v := pol.allowsEventBridge(a.queues.QueueARN, r.ARN, account)
		switch {
		case v.unknown != "":
			unknown = append(unknown, fmt.Sprintf("%s (%s)", r.Name, v.unknown))
		case !v.allowed:
			denied = append(denied, r.Name)
		case v.open:
			open = append(open, r.Name)
		}
	}
	switch {
	case len(denied) > 0:
		a.add(Result{Check: "queue-policy", Status: Fail,
			Detail: fmt.Sprintf("the queue policy does not let %s send from rule %s, so its events are dropped", eventsPrincipal, strings.Join(denied, ", ")), Fix: fix})
	case len(unknown) > 0:
		a.add(Result{Check: "queue-policy", Status: Warn,
			Detail: "doctor cannot evaluate every condition of the queue policy for rule " + strings.Join(unknown, ", "),
			Fix:    "check by hand that the policy allows " + eventsPrincipal + " sqs:SendMessage with aws:SourceArn of those rules"})
	case len(open) > 0:
		a.add(Result{Check: "queue-policy", Status: Warn,
			Detail: "the queue policy lets any EventBridge rule (of any account) send, not only handover's: " + strings.Join(open, ", "),
			Fix:    "narrow it with an ArnEquals aws:SourceArn condition on the rules' ARNs: aws sqs set-queue-attributes --queue-url " + a.cfg.QueueURL + " --attributes '" + policyAttribute(a.queues.QueueARN, arns) + "'"})
	default:
		a.add(Result{Check: "queue-policy", Status: OK,
			Detail: fmt.Sprintf("%s may send sqs:SendMessage from the %d rule(s) that deliver to the queue", eventsPrincipal, len(arns))})
	}
}

// policyAttribute is the set-queue-attributes argument of a policy that
// lets exactly the rules send, as the template's queue policy does.
func policyAttribute(queueARN string, ruleARNs []string) string {
	doc := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "EventBridgeRulesOnly", "Effect": "Allow",
		"Principal": map[string]any{"Service": eventsPrincipal},
		"Action":    "sqs:SendMessage", "Resource": queueARN,
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARNs}},
	}}}
	b, _ := json.Marshal(doc)
	attr, _ := json.Marshal(map[string]string{"Policy": string(b)})
	return string(attr)
}
