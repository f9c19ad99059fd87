package autoscaling

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Replacements that launch before they terminate. AWS has two that matter
// here: a group whose instance maintenance policy has a MaxHealthyPercentage
// above 100 replaces an unhealthy instance by launching first, and
// Availability Zone rebalancing (here: after a zone is removed from the
// group) launches first with or without a policy. Either way the old
// instance keeps serving, InService and registered with its target groups,
// until enough replacements are InService. handover depends on it: the
// replacement's launch hook is when the data moves, and reads must not stop
// meanwhile.
//
// Nothing links an old instance to its replacement. The old one stops
// counting toward the desired capacity (group.counts), so the ordinary
// capacity loop launches the replacement, lifecycle hooks and all, within
// launchCeiling; and retireReplaced starts terminating old ones only while
// the group keeps minHealthy instances in service. A replacement
// that fails to launch or is abandoned by its hook leaves the count short,
// so a later pass launches another and the old instance keeps waiting, as
// AWS retries. Because all of it is worked out from the saved instances, a
// restart resumes a replacement instead of launching a second one.

// minHealthy is how many instances must stay in service while instances
// are replaced: MinHealthyPercentage of the desired capacity, rounded up as
// AWS rounds it; without a policy, all of it (rebalancing launches first).
func (g *group) minHealthy() int {
	if g.Maintenance == nil {
		return g.Desired
	}
	return (g.Desired*g.Maintenance.MinHealthy + 99) / 100
}

// launchCeiling is how many instances may be in service or pending,
// counting those awaiting replacement, while replacements are under way.
//
// With a policy it is MaxHealthyPercentage of the desired capacity, but
// never less than one above it when the percentage is above 100: 100/110 is
// the usual way to ask for launch before terminating, and must work for
// groups of fewer than ten instances too (AWS does not document its
// rounding here; this is the local cloud's reading). The policy's
// percentages are of the desired capacity, not the max size, so a group at
// its max size can still launch first.
//
// Without a policy only rebalancing launches first, and AWS documents that
// it may exceed the max size by 10 percent of it or one instance, whichever
// is greater.
func (g *group) launchCeiling() int {
	if p := g.Maintenance; p != nil {
		extra := 0
		if p.MaxHealthy > 100 {
			extra = max(1, g.Desired*(p.MaxHealthy-100)/100)
		}
		return g.Desired + extra
	}
	return max(g.Desired, g.MaxSize) + max(1, g.MaxSize/10)
}

// replacing reports whether any instance awaits its replacement.
func (g *group) replacing() bool {
	for _, i := range g.Instances {
		if g.awaitingReplacement(i) {
			return true
		}
	}
	return false
}

// provisioned counts the instances in service or pending, including those
// awaiting replacement (they still serve) but not those terminating.
func (g *group) provisioned() int {
	n := 0
	for _, i := range g.Instances {
		if i.State.counted() {
			n++
		}
	}
	return n
}

// replacementCause is the cause of a launch that replaces an instance, in
// the words AWS's activities use.
func (g *group) replacementCause(now time.Time) string {
	for _, i := range g.sortedInstances() {
		if g.awaitingReplacement(i) && i.ReplaceCause != "" {
			return fmt.Sprintf("At %s an instance was launched in response to an unhealthy instance needing to be replaced.", stamp(now))
		}
	}
	return fmt.Sprintf("At %s instances were launched to balance instances in zones %s with other zones resulting in more than desired number of instances in the group.", stamp(now), strings.Join(g.Zones, " "))
}

// retireReplaced starts terminating the instances awaiting replacement
// that the group can spare: those whose going leaves at least minHealthy
// instances in service. Their termination then runs as any other,
// deregistration and terminate hooks first.
//
// An instance awaiting replacement counts as in service here even when it
// is unhealthy: AWS documents that a policy with MinHealthyPercentage 100
// waits for the replacement to be ready before terminating the unhealthy
// instance, and counting it is also what lets a group replace several
// unhealthy instances within a small MaxHealthyPercentage, one batch at a
// time, instead of waiting for a healthy count it cannot reach. Pending
// replacements do not count: reads must not move to an instance whose
// launch hook has not finished.
//
// A replacement registered with target groups is ready only once every
// target group that knows it reports it healthy: a load balancer routes
// only to healthy targets, so retiring the old instance earlier would leave
// it nothing to route to for a health-check interval.
func (s *Service) retireReplaced(ctx context.Context, name string) error {
	unready := s.unreadyTargets(ctx, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.Groups[name]
	if g == nil || g.Deleting {
		return nil
	}
	var waiting []*instance
	serving, busy := 0, false
	for _, i := range g.sortedInstances() {
		awaiting := g.awaitingReplacement(i)
		if awaiting {
			waiting = append(waiting, i)
		}
		if i.State == stateInService && (awaiting || !unready[i.ID]) {
			serving++
		}
		busy = busy || i.State.pending() || i.State.terminating()
	}
	if len(waiting) == 0 {
		return nil
	}
	now := s.now()
	floor, provisioned := g.minHealthy(), g.provisioned()
	noRoom := g.Maintenance != nil && g.launchCeiling() <= g.Desired
	retired := 0
	for _, i := range waiting {
		switch {
		case i.ReplaceCause != "" && g.Maintenance == nil:
			// The policy was removed meanwhile; AWS's default for an
			// unhealthy instance is to terminate it first.
		case serving-1 >= floor:
		case noRoom && !busy:
			// MaxHealthyPercentage 100 leaves no room to launch first and
			// the minimum forbids terminating: replace one instance at a
			// time, terminating first, as AWS documents for an instance
			// refresh at a minimum healthy percentage of 100.
		default:
			continue
		}
		cause := i.ReplaceCause
		if cause == "" {
			cause = fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.  At %s instance %s was selected for termination.", stamp(now), provisioned, provisioned-1, stamp(now), i.ID)
		}
		s.log.Info("terminating replaced instance", "group", name, "instance-id", i.ID)
		s.beginTerminationLocked(g, i, now, cause)
		serving, provisioned, busy = serving-1, provisioned-1, true
		retired++
	}
	if retired == 0 {
		return nil
	}
	return s.saveLocked()
}

// TargetReadiness is an optional interface of Targets: whether a load
// balancer would route to an instance now (registered and healthy, or
// nothing to wait for).
type TargetReadiness interface {
	Ready(ctx context.Context, targetGroupARN, instanceID string) (bool, error)
}

// unreadyTargets returns the InService instances of a group with a pending
// replacement that some target group knows but does not report healthy
// (yet). Errors count as unready: retiring waits for the next pass.
func (s *Service) unreadyTargets(ctx context.Context, name string) map[string]bool {
	s.mu.Lock()
	g := s.st.Groups[name]
	if g == nil || len(g.TargetGroupARNs) == 0 {
		s.mu.Unlock()
		return nil
	}
	tgs := append([]string(nil), g.TargetGroupARNs...)
	var ids []string
	replacing := false
	for _, i := range g.sortedInstances() {
		replacing = replacing || g.awaitingReplacement(i)
		if i.State == stateInService && !g.awaitingReplacement(i) {
			ids = append(ids, i.ID)
		}
	}
	s.mu.Unlock()
	if !replacing {
		return nil
	}
	unready := map[string]bool{}
	ready, ok := s.cfg.Targets.(TargetReadiness)
	if !ok {
		return nil
	}
	for _, id := range ids {
		for _, tg := range tgs {
			if r, err := ready.Ready(ctx, tg, id); err != nil || !r {
				unready[id] = true
			}
		}
	}
	return unready
}
