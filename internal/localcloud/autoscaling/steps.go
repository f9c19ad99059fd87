package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// One step function per lifecycle state. Each runs with mu held and either
// changes the state there and then, or returns work: I/O to run without mu
// and a commit to apply afterwards, if the instance is still in the state
// the step started from. A state is the record of what is to be done next
// (Pending:Proceed means "register, then go InService"), saved before the
// I/O, so every step is safe to repeat after a crash or a failed call.

type work struct {
	io     func(ctx context.Context) error
	commit func(g *group, i *instance, now time.Time)
}

type stepFunc func(s *Service, g *group, i *instance, now time.Time) (changed bool, w *work)

var steps = map[lifecycleState]stepFunc{
	statePending:            (*Service).stepPending,
	statePendingWait:        (*Service).stepPendingWait,
	statePendingProceed:     (*Service).stepPendingProceed,
	stateEnteringStandby:    (*Service).stepEnteringStandby,
	stateTerminating:        (*Service).stepTerminating,
	stateTerminatingWait:    (*Service).stepTerminatingWait,
	stateTerminatingProceed: (*Service).stepTerminatingProceed,
	// InService and Standby wait for the API or the health check; an
	// instance is removed as it becomes Terminated.
}

// maxStepsPerPass bounds how far one pass moves an instance (Pending to
// InService is three steps).
const maxStepsPerPass = 8

// advance moves one instance as far as it can go in this pass.
func (s *Service) advance(ctx context.Context, groupName, id string) error {
	for range maxStepsPerPass {
		progressed, err := s.stepInstance(ctx, groupName, id)
		if err != nil || !progressed {
			return err
		}
	}
	return nil
}

func (s *Service) stepInstance(ctx context.Context, groupName, id string) (bool, error) {
	s.mu.Lock()
	g, i := s.st.Groups[groupName], (*instance)(nil)
	if g != nil {
		i = g.Instances[id]
	}
	step := steps[stateOf(i)]
	if i == nil || step == nil {
		s.mu.Unlock()
		return false, nil
	}
	from := i.State
	changed, w := step(s, g, i, s.now())
	if w == nil {
		var err error
		if changed {
			err = s.saveLocked()
		}
		s.mu.Unlock()
		return changed, err
	}
	s.mu.Unlock()

	ioErr := w.io(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	if g = s.st.Groups[groupName]; g != nil {
		i = g.Instances[id]
	}
	if i == nil || i.State != from {
		// An API call moved it meanwhile; look again.
		return i != nil, nil
	}
	if ioErr != nil {
		return false, fmt.Errorf("instance %s in %s: %w", id, from, ioErr)
	}
	w.commit(g, i, s.now())
	return true, s.saveLocked()
}

func stateOf(i *instance) lifecycleState {
	if i == nil {
		return ""
	}
	return i.State
}

// stepPending starts the launch hooks, if any.
func (s *Service) stepPending(g *group, i *instance, now time.Time) (bool, *work) {
	var hooks []*hook
	if !i.FromStandby || s.cfg.HooksOnExitStandby {
		hooks = g.hooksFor(transitionLaunching)
	}
	if len(hooks) == 0 {
		i.State = statePendingProceed
		return true, nil
	}
	s.startActionsLocked(g, i, hooks, now)
	i.State = statePendingWait
	if a := s.activityLocked(i.ActivityID); a != nil && !i.FromStandby {
		a.Status, a.Progress = activityMidLifecycleAction, 30
	}
	return true, nil
}

func (s *Service) startActionsLocked(g *group, i *instance, hooks []*hook, now time.Time) {
	i.Actions = nil
	for _, h := range hooks {
		a := &action{
			Token: newUUID(), Hook: h.Name, Transition: h.Transition,
			HeartbeatTimeout: h.HeartbeatTimeout, DefaultResult: h.DefaultResult,
			Started: now, HeartbeatDue: now.Add(h.HeartbeatTimeout), GlobalDue: now.Add(h.globalTimeout()),
		}
		i.Actions = append(i.Actions, a)
		s.queueLifecycleLocked(g, i, h, a, now)
	}
}

// settle applies the default result to actions past their deadline, and
// reports whether the instance may move on: every action ended, or one was
// abandoned (which ends the others, as AWS's ABANDON stops the remaining
// hooks).
func settle(i *instance, now time.Time) (changed, done bool, abandoned *action) {
	for _, a := range i.Actions {
		if a.Result != "" || a.active(now) {
			continue
		}
		a.Result, a.Reason, changed = a.DefaultResult, "Heartbeat Timeout", true
		if !now.Before(a.GlobalDue) {
			a.Reason = "Global Timeout"
		}
	}
	done = true
	for _, a := range i.Actions {
		switch a.Result {
		case "":
			done = false
		case resultAbandon:
			if abandoned == nil {
				abandoned = a
			}
		}
	}
	if abandoned != nil {
		for _, a := range i.Actions {
			if a.Result == "" {
				a.Result, a.Reason, changed = resultAbandon, "Abandoned with lifecycle hook "+abandoned.Hook, true
			}
		}
		done = true
	}
	return changed, done, abandoned
}

func (s *Service) stepPendingWait(g *group, i *instance, now time.Time) (bool, *work) {
	changed, done, abandoned := settle(i, now)
	if !done {
		return changed, nil
	}
	i.Actions = nil
	if abandoned == nil {
		i.State = statePendingProceed
		return true, nil
	}
	// An abandoned launch is terminated without terminate hooks (it never
	// served) and reported as AWS does.
	msg := fmt.Sprintf("Instance failed to complete user's Lifecycle Action: Lifecycle Action with token %s was abandoned: %s", abandoned.Token, abandoned.Reason)
	if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
		a.Description += ".  Status Reason: " + msg
		a.finish(now, activityCancelled, msg)
		if !i.FromStandby {
			s.queueLaunchResultLocked(g, i, a, i.Zone, false, now)
		}
	}
	i.State, i.SkipHooks = stateTerminating, true
	return true, nil
}

// stepPendingProceed registers the instance with its target groups, then
// puts it in service.
func (s *Service) stepPendingProceed(g *group, i *instance, now time.Time) (bool, *work) {
	commit := func(g *group, i *instance, now time.Time) {
		i.State, i.Health, i.EverInService = stateInService, healthHealthy, true
		if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
			a.finish(now, activitySuccessful, "")
			if !i.FromStandby {
				s.queueLaunchResultLocked(g, i, a, i.Zone, true, now)
			}
		}
		i.FromStandby = false
	}
	tgs := g.TargetGroupARNs
	if len(tgs) == 0 || s.cfg.Targets == nil {
		commit(g, i, now)
		return true, nil
	}
	id := i.ID
	return false, &work{
		io: func(ctx context.Context) error {
			for _, tg := range tgs {
				if err := s.cfg.Targets.Register(ctx, tg, id); err != nil {
					return fmt.Errorf("registering with target group %s: %w", tg, err)
				}
			}
			return nil
		},
		commit: commit,
	}
}

func (s *Service) deregisterWork(g *group, id string, commit func(*group, *instance, time.Time)) *work {
	tgs := g.TargetGroupARNs
	return &work{
		io: func(ctx context.Context) error {
			if s.cfg.Targets == nil {
				return nil
			}
			for _, tg := range tgs {
				if err := s.cfg.Targets.Deregister(ctx, tg, id); err != nil {
					return fmt.Errorf("deregistering from target group %s: %w", tg, err)
				}
			}
			return nil
		},
		commit: commit,
	}
}

// stepEnteringStandby takes the instance out of its target groups.
func (s *Service) stepEnteringStandby(g *group, i *instance, now time.Time) (bool, *work) {
	return false, s.deregisterWork(g, i.ID, func(g *group, i *instance, now time.Time) {
		i.State = stateStandby
		if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
			a.finish(now, activitySuccessful, "")
		}
	})
}

// stepTerminating deregisters the instance first (AWS takes it out of the
// load balancer before the terminate hook runs), then starts the
// terminate hooks, if any.
func (s *Service) stepTerminating(g *group, i *instance, now time.Time) (bool, *work) {
	return false, s.deregisterWork(g, i.ID, func(g *group, i *instance, now time.Time) {
		var hooks []*hook
		if !i.SkipHooks {
			hooks = g.hooksFor(transitionTerminating)
		}
		if len(hooks) == 0 {
			i.State = stateTerminatingProceed
			return
		}
		s.startActionsLocked(g, i, hooks, now)
		i.State = stateTerminatingWait
		if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
			a.Status, a.Progress = activityMidLifecycleAction, 50
		}
	})
}

// stepTerminatingWait waits for the terminate hooks. CONTINUE and ABANDON
// both let the termination go on.
func (s *Service) stepTerminatingWait(g *group, i *instance, now time.Time) (bool, *work) {
	changed, done, _ := settle(i, now)
	if !done {
		return changed, nil
	}
	i.Actions = nil
	i.State = stateTerminatingProceed
	return true, nil
}

// stepTerminatingProceed terminates the instance and drops it.
func (s *Service) stepTerminatingProceed(g *group, i *instance, now time.Time) (bool, *work) {
	id := i.ID
	return false, &work{
		io: func(ctx context.Context) error {
			err := s.cfg.Instances.Terminate(ctx, id)
			if err != nil && !errors.Is(err, ErrInstanceNotFound) {
				return fmt.Errorf("terminating: %w", err)
			}
			return nil
		},
		commit: func(g *group, i *instance, now time.Time) {
			i.State = stateTerminated
			if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
				a.finish(now, activitySuccessful, "")
				s.queueTerminatedLocked(g, i, a, now)
			}
			delete(g.Instances, i.ID)
		},
	}
}

// beginTerminationLocked starts taking an instance out of the group. One
// that had not yet entered service has its launch cancelled first.
func (s *Service) beginTerminationLocked(g *group, i *instance, now time.Time, cause string) *activity {
	if i.State.pending() {
		if a := s.activityLocked(i.ActivityID); a != nil && a.End == nil {
			msg := "The instance was taken out of service before it completed its launch."
			a.Description += ".  Status Reason: " + msg
			a.finish(now, activityCancelled, msg)
			if !i.FromStandby {
				s.queueLaunchResultLocked(g, i, a, i.Zone, false, now)
			}
		}
	}
	for _, a := range i.Actions {
		if a.Result == "" {
			a.Result, a.Reason = resultAbandon, "Instance terminated"
		}
	}
	i.Actions = nil
	i.FromStandby, i.ReplaceCause = false, ""
	a := s.newActivityLocked(g, now, "Terminating EC2 instance: "+i.ID, cause, i.Zone, activityInProgress, 0)
	i.State, i.ActivityID = stateTerminating, a.ID
	return a
}
