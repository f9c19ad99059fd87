package deploy

import (
	"encoding/json"
	"fmt"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
)

// maxPatternSize is EventBridge's default bound on one rule's event
// pattern, in characters. Many long group names can exceed it.
const maxPatternSize = 2048

// rule is one EventBridge rule feeding the events queue.
type rule struct {
	id          string
	description string
	pattern     map[string]any
}

// eventRules are the rules that deliver exactly the events internal/events
// decodes and the controller acts on. The Auto Scaling events name their
// group, so they are limited to cfg.Groups (and, when the controller runs
// group updates, to the groups a replace-all creates in their place); the
// EC2 and EBS ones do not, so they are as narrow as their detail allows and
// match the whole region.
func eventRules(cfg Config) []rule {
	groups := groupNameValues(cfg)
	return []rule{
		{
			id:          idRuleLifecycle,
			description: "handover: lifecycle actions of its hooks in the named Auto Scaling groups",
			pattern: map[string]any{
				"source":      []string{events.SourceAutoScaling},
				"detail-type": []string{events.KindLaunchAction.DetailType(), events.KindTerminateAction.DetailType()},
				"detail": map[string]any{
					"AutoScalingGroupName": groups,
					"LifecycleHookName":    []string{LaunchHook, TerminateHook},
				},
			},
		},
		{
			id:          idRuleLaunch,
			description: "handover: launch results in the named Auto Scaling groups (commit or roll back)",
			pattern: map[string]any{
				"source":      []string{events.SourceAutoScaling},
				"detail-type": []string{events.KindLaunchSuccessful.DetailType(), events.KindLaunchUnsuccessful.DetailType()},
				"detail":      map[string]any{"AutoScalingGroupName": groups},
			},
		},
		{
			// Only createSnapshot results: the decoder ignores every other
			// EBS snapshot operation (copy, share, multi-volume).
			id:          idRuleSnapshot,
			description: "handover: results of createSnapshot in this region (EBS events carry no group name)",
			pattern: map[string]any{
				"source":      []string{events.SourceEC2},
				"detail-type": []string{events.KindSnapshot.DetailType()},
				"detail": map[string]any{
					"event":  []string{"createSnapshot"},
					"result": []string{"succeeded", "failed"},
				},
			},
		},
		{
			id:          idRuleVolume,
			description: "handover: results of createVolume in this region (EBS events carry no group name)",
			pattern: map[string]any{
				"source":      []string{events.SourceEC2},
				"detail-type": []string{events.KindVolume.DetailType()},
				"detail": map[string]any{
					"event":  []string{"createVolume"},
					"result": []string{"available", "failed"},
				},
			},
		},
		{
			// The states a migration waits for: running (a new instance),
			// stopped (the hard fence took hold), shutting-down and
			// terminated (a dead source). pending and stopping never end a
			// wait, so they are left out.
			id:          idRuleInstanceState,
			description: "handover: instance state changes in this region (these events carry no group name)",
			pattern: map[string]any{
				"source":      []string{events.SourceEC2},
				"detail-type": []string{events.KindInstanceState.DetailType()},
				"detail": map[string]any{
					"state": []string{handover.InstanceRunning, handover.InstanceStopped, handover.InstanceShuttingDown, handover.InstanceTerminated},
				},
			},
		},
	}
}

// groupNameValues match the AutoScalingGroupName of the served groups:
// each name exactly and, with group updates, every name that starts with
// "<group>-", as a replace-all's "<group>-<12 hex digits>" does (an
// array's values are alternatives, and a value may be a prefix filter).
// EventBridge has no pattern for "12 hex digits", so another group named
// "<group>-…" matches too: its launch results reach the controller, which
// drops those of instances no migration owns, and its lifecycle actions
// only if its hooks are handover's.
func groupNameValues(cfg Config) []any {
	var out []any
	for _, g := range cfg.Groups {
		out = append(out, g)
		if cfg.updates() {
			out = append(out, map[string]string{"prefix": g + "-"})
		}
	}
	return out
}

// checkPatternSizes refuses rules EventBridge would reject for size.
func checkPatternSizes(rules []rule) error {
	for _, r := range rules {
		b, err := json.Marshal(r.pattern)
		if err != nil {
			return err
		}
		if len(b) > maxPatternSize {
			return fmt.Errorf("the event pattern of rule %s would be %d characters, over EventBridge's default limit of %d: split the groups over several stacks", r.id, len(b), maxPatternSize)
		}
	}
	return nil
}
