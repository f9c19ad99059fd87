package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/handover-dev/handover/internal/deploy"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
)

// rule is an EventBridge rule on the default bus, where AWS services send
// their events.
type rule struct {
	Name, ARN, Pattern, State string
	// toQueue: one of its targets is the events queue; transformed: that
	// target rewrites the event (Input, InputPath or InputTransformer), so
	// the controller would not receive the event itself.
	toQueue, transformed bool
}

func (r rule) delivers() bool {
	return r.toQueue && !r.transformed && r.Pattern != "" && r.State != string(ebtypes.RuleStateDisabled)
}

// sample is one event handover must receive, and what to call it.
type sample struct {
	what string
	body string
	// direct: the hook itself notifies the events queue (its
	// NotificationTargetARN), which the controller reads as well as the
	// EventBridge event, so no rule is needed.
	direct bool
}

// kindCheck is one row of the rule check: a kind of event and the events
// of that kind handover must receive.
type kindCheck struct {
	kind    events.Kind
	samples []sample
	// groups names the groups the samples stand for ("" for the EC2 and
	// EBS kinds, which carry no group name).
	groups string
}

// checkRules checks that for every event handover consumes, an enabled
// rule matches it (as EventBridge itself decides, through
// TestEventPattern, on an event of the shape AWS sends) and delivers it
// unchanged to the queue.
func (a *audit) checkRules(ctx context.Context) {
	rules, err := a.listRules(ctx)
	if err != nil {
		a.add(Result{Check: "events", Status: Fail, Detail: "could not read the EventBridge rules: " + err.Error(),
			Fix: "run doctor again; the credentials need events:ListRules, ListRuleNamesByTarget, ListTargetsByRule and TestEventPattern"})
		a.add(Result{Check: "queue-policy", Status: Skip, Detail: "not checked: the rules could not be read"})
		return
	}
	for _, r := range rules {
		if r.delivers() {
			a.delivering = append(a.delivering, r)
		}
	}
	tester := &patternTester{api: a.deps.Events, seen: map[[2]string]bool{}, errs: map[string]error{}}
	for _, kc := range a.kindChecks() {
		a.add(a.kindRow(ctx, tester, rules, kc))
	}
}

func (a *audit) listRules(ctx context.Context) ([]rule, error) {
	var rules []rule
	var token *string
	for {
		out, err := a.deps.Events.ListRules(ctx, &eventbridge.ListRulesInput{NextToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing rules: %w", err)
		}
		for _, r := range out.Rules {
			rules = append(rules, rule{Name: aws.ToString(r.Name), ARN: aws.ToString(r.Arn), Pattern: aws.ToString(r.EventPattern), State: string(r.State)})
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	toQueue := map[string]bool{}
	token = nil
	for {
		out, err := a.deps.Events.ListRuleNamesByTarget(ctx, &eventbridge.ListRuleNamesByTargetInput{TargetArn: aws.String(a.queues.QueueARN), NextToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing the rules that target %s: %w", a.queues.QueueARN, err)
		}
		for _, n := range out.RuleNames {
			toQueue[n] = true
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	for i := range rules {
		r := &rules[i]
		if !toQueue[r.Name] {
			continue
		}
		r.toQueue = true
		var token *string
		for {
			out, err := a.deps.Events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String(r.Name), NextToken: token})
			if err != nil {
				return nil, fmt.Errorf("listing the targets of rule %s: %w", r.Name, err)
			}
			for _, t := range out.Targets {
				if aws.ToString(t.Arn) == a.queues.QueueARN && (t.Input != nil || t.InputPath != nil || t.InputTransformer != nil) {
					r.transformed = true
				}
			}
			if token = out.NextToken; token == nil {
				break
			}
		}
	}
	return rules, nil
}

// kindRow checks one kind of event against the rules.
func (a *audit) kindRow(ctx context.Context, t *patternTester, rules []rule, kc kindCheck) Result {
	check := "events/" + kc.kind.String()
	if len(kc.samples) == 0 {
		return Result{Check: check, Status: Skip, Detail: "not checked: handover serves no group, so no event of this kind is expected"}
	}
	var by []string
	var missed []sample
	for _, s := range kc.samples {
		found := ""
		if s.direct {
			found = "the hook's own notification target"
		}
		for _, r := range rules {
			if found != "" {
				break
			}
			if r.delivers() && t.matches(ctx, r, s) {
				found = "rule " + r.Name
			}
		}
		if found == "" {
			missed = append(missed, s)
		} else if !slices.Contains(by, found) {
			by = append(by, found)
		}
	}
	if len(missed) == 0 {
		detail := "delivered to the queue by " + strings.Join(by, ", ")
		if kc.groups != "" {
			detail += " for " + kc.groups
		}
		return Result{Check: check, Status: OK, Detail: detail}
	}
	s := missed[0]
	detail := fmt.Sprintf("no enabled rule delivers %s (%q) to the queue", s.what, kc.kind.DetailType())
	if len(missed) > 1 {
		detail += fmt.Sprintf(", nor %d more of this kind", len(missed)-1)
	}
	// Say why, if a rule comes close.
	for _, r := range rules {
		if r.delivers() || r.Pattern == "" || !t.matches(ctx, r, s) {
			continue
		}
		switch {
		case !r.toQueue:
			return Result{Check: check, Status: Fail, Detail: detail + ": rule " + r.Name + " matches it but does not target the queue",
				Fix: fmt.Sprintf("aws events put-targets --rule %s --targets Id=handover-events,Arn=%s", r.Name, a.queues.QueueARN)}
		case r.State == string(ebtypes.RuleStateDisabled):
			return Result{Check: check, Status: Fail, Detail: detail + ": rule " + r.Name + " matches it but is disabled",
				Fix: "aws events enable-rule --name " + r.Name}
		case r.transformed:
			return Result{Check: check, Status: Fail, Detail: detail + ": rule " + r.Name + " matches it but rewrites the event for the queue (Input, InputPath or InputTransformer)",
				Fix: fmt.Sprintf("deliver the whole event: aws events put-targets --rule %s --targets Id=handover-events,Arn=%s", r.Name, a.queues.QueueARN)}
		}
	}
	if err := t.firstErr(); err != nil {
		detail += " (some patterns could not be tested: " + err.Error() + ")"
	}
	return Result{Check: check, Status: Fail, Detail: detail, Fix: a.ruleFix(kc.kind)}
}

// ruleFix proposes the template's rule for kind.
func (a *audit) ruleFix(kind events.Kind) string {
	id := map[events.Kind]string{
		events.KindLaunchAction: "LifecycleActionRule", events.KindTerminateAction: "LifecycleActionRule",
		events.KindLaunchSuccessful: "LaunchResultRule", events.KindLaunchUnsuccessful: "LaunchResultRule",
		events.KindSnapshot: "SnapshotResultRule", events.KindVolume: "VolumeResultRule", events.KindInstanceState: "InstanceStateRule",
	}[kind]
	groups := a.cfg.Groups
	if len(groups) == 0 {
		for _, g := range a.served {
			groups = append(groups, g.Name)
		}
	}
	rules, err := deploy.EventRules(deploy.Config{Groups: groups, Mode: deploy.ModeController})
	var r deploy.Rule
	if err == nil {
		for _, c := range rules {
			if c.ID == id {
				r = c
			}
		}
	}
	fix := fmt.Sprintf("aws events put-rule --name %s --event-pattern '%s' && aws events put-targets --rule %s --targets Id=handover-events,Arn=%s (the stack of `handover deploy template` has every rule)",
		r.Name, r.Pattern, r.Name, a.queues.QueueARN)
	if kind == events.KindLaunchAction || kind == events.KindTerminateAction {
		fix += fmt.Sprintf("; that pattern names the hooks %s and %s", deploy.LaunchHook, deploy.TerminateHook)
	}
	return fix
}

// kindChecks are the events handover must receive, one check per kind.
func (a *audit) kindChecks() []kindCheck {
	region, account, partition := arnRegion(a.queues.QueueARN), arnAccount(a.queues.QueueARN), arnPartition(a.queues.QueueARN)
	now := a.deps.Clock.Now().UTC().Truncate(time.Second)
	const instance, volume, snapshot = "i-0d0c70d0c70d0c70d", "vol-0d0c70d0c70d0c70d", "snap-0d0c70d0c70d0c70d"
	base := func(k events.Kind, resources ...string) events.Event {
		return events.Event{ID: "handover-doctor-" + k.String(), DetailType: k.DetailType(), Source: k.Source(), Region: region,
			Account: account, Time: now, Kind: k, Resources: resources}
	}
	instanceARN := fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", partition, region, account, instance)
	groupARN := func(g string) string {
		return fmt.Sprintf("arn:%s:autoscaling:%s:%s:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/%s", partition, region, account, g)
	}
	enc := func(e events.Event, what string) sample {
		b, err := events.Encode(&e)
		if err != nil {
			// Only a region or account events cannot name gets here.
			return sample{what: what + " (cannot be built: " + err.Error() + ")"}
		}
		return sample{what: what, body: string(b)}
	}
	groups := a.served
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	groupList := ""
	if len(names) > 0 {
		groupList = "group " + strings.Join(names, ", ")
	}

	var out []kindCheck
	for _, k := range []events.Kind{events.KindLaunchAction, events.KindTerminateAction} {
		transition, suffix := events.TransitionLaunching, "-launch"
		if k == events.KindTerminateAction {
			transition, suffix = events.TransitionTerminating, "-terminate"
		}
		kc := kindCheck{kind: k, groups: groupList}
		for _, g := range groups {
			hooks := g.hooks(transition)
			if len(hooks) == 0 {
				hooks = []hook{{Name: a.cfg.HookPrefix + suffix}}
			}
			for _, h := range hooks {
				e := base(k, groupARN(g.Name), instanceARN)
				e.Lifecycle = &events.LifecycleAction{Group: g.Name, Hook: h.Name, Token: "00000000-0000-0000-0000-000000000000",
					InstanceID: instance, Transition: transition, Metadata: h.Metadata}
				smp := enc(e, fmt.Sprintf("a %s of group %s, hook %s", k, g.Name, h.Name))
				smp.direct = h.Target != "" && h.Target == a.queues.QueueARN
				kc.samples = append(kc.samples, smp)
			}
		}
		out = append(out, kc)
	}
	for _, k := range []events.Kind{events.KindLaunchSuccessful, events.KindLaunchUnsuccessful} {
		kc := kindCheck{kind: k, groups: groupList}
		for _, g := range groups {
			e := base(k, groupARN(g.Name), instanceARN)
			e.Launch = &events.LaunchResult{Group: g.Name, InstanceID: instance, ActivityID: "00000000-0000-0000-0000-000000000000",
				StatusCode: map[bool]string{true: "InProgress", false: "Failed"}[k == events.KindLaunchSuccessful], Successful: k == events.KindLaunchSuccessful}
			kc.samples = append(kc.samples, enc(e, fmt.Sprintf("a %s of group %s", k, g.Name)))
		}
		out = append(out, kc)
	}
	snap := kindCheck{kind: events.KindSnapshot}
	for _, ok := range []bool{true, false} {
		e := base(events.KindSnapshot, fmt.Sprintf("arn:%s:ec2::%s:snapshot/%s", partition, region, snapshot))
		e.Snapshot = &events.SnapshotResult{SnapshotID: snapshot, VolumeID: volume, Succeeded: ok, Region: region}
		snap.samples = append(snap.samples, enc(e, "a createSnapshot that "+map[bool]string{true: "succeeded", false: "failed"}[ok]))
	}
	vol := kindCheck{kind: events.KindVolume}
	for _, ok := range []bool{true, false} {
		e := base(events.KindVolume, fmt.Sprintf("arn:%s:ec2:%s:%s:volume/%s", partition, region, account, volume))
		e.Volume = &events.VolumeResult{VolumeID: volume, Available: ok, Region: region}
		vol.samples = append(vol.samples, enc(e, "a createVolume that "+map[bool]string{true: "became available", false: "failed"}[ok]))
	}
	state := kindCheck{kind: events.KindInstanceState}
	for _, s := range []string{handover.InstanceRunning, handover.InstanceStopped, handover.InstanceShuttingDown, handover.InstanceTerminated} {
		e := base(events.KindInstanceState, instanceARN)
		e.InstanceState = &events.InstanceStateChange{InstanceID: instance, State: s}
		state.samples = append(state.samples, enc(e, "an instance entering "+s))
	}
	return append(out, snap, vol, state)
}

// patternTester asks EventBridge whether rules match samples, once per
// pair.
type patternTester struct {
	api  EventsAPI
	seen map[[2]string]bool
	errs map[string]error
}

func (t *patternTester) matches(ctx context.Context, r rule, s sample) bool {
	if s.body == "" || r.Pattern == "" {
		return false
	}
	key := [2]string{r.Name, s.body}
	if m, ok := t.seen[key]; ok {
		return m
	}
	out, err := t.api.TestEventPattern(ctx, &eventbridge.TestEventPatternInput{EventPattern: aws.String(r.Pattern), Event: aws.String(s.body)})
	if err != nil {
		t.errs[r.Name] = fmt.Errorf("rule %s: %w", r.Name, err)
		return false
	}
	t.seen[key] = out.Result
	return out.Result
}

func (t *patternTester) firstErr() error {
	for _, name := range slices.Sorted(maps.Keys(t.errs)) {
		return t.errs[name]
	}
	return nil
}

func arnPartition(arn string) string { return arnField(arn, 1) }
func arnRegion(arn string) string    { return arnField(arn, 3) }
func arnAccount(arn string) string   { return arnField(arn, 4) }

func arnField(arn string, i int) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[i]
}
