package autoscaling

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The lifecycle hook API. Completing or heartbeating an action only records
// it; the controller moves the instance on its next pass.

// buildHook validates a hook specification; old is the hook being updated,
// nil when creating one.
func buildHook(in hookInput, old *hook) (*hook, error) {
	h := &hook{Name: in.Name, Transition: transitionLaunching, HeartbeatTimeout: defaultHeartbeat, DefaultResult: resultAbandon}
	if old != nil {
		h = new(hook)
		*h = *old
	} else if in.Transition == "" {
		return nil, awsproto.ValidationError("LifecycleTransition is required to create lifecycle hook %s.", in.Name)
	}
	if in.Transition != "" {
		if in.Transition != transitionLaunching && in.Transition != transitionTerminating {
			return nil, awsproto.ValidationError("Invalid value '%s' for LifecycleTransition; use %s or %s.", in.Transition, transitionLaunching, transitionTerminating)
		}
		h.Transition = in.Transition
	}
	if in.HeartbeatTimeout != nil {
		hb := time.Duration(*in.HeartbeatTimeout) * time.Second
		if hb < minHeartbeat || hb > maxHeartbeat {
			return nil, awsproto.ValidationError("Heartbeat timeout of %d seconds for lifecycle hook %s is out of range: it must be between %d and %d seconds.", *in.HeartbeatTimeout, in.Name, int(minHeartbeat/time.Second), int(maxHeartbeat/time.Second))
		}
		h.HeartbeatTimeout = hb
	}
	if in.DefaultResult != "" {
		if in.DefaultResult != resultContinue && in.DefaultResult != resultAbandon {
			return nil, awsproto.ValidationError("Invalid value '%s' for DefaultResult; use CONTINUE or ABANDON.", in.DefaultResult)
		}
		h.DefaultResult = in.DefaultResult
	}
	if in.Metadata != "" {
		if len(in.Metadata) > 1023 {
			return nil, awsproto.ValidationError("NotificationMetadata is %d characters long; the limit is 1023.", len(in.Metadata))
		}
		h.Metadata = in.Metadata
	}
	if in.TargetSet {
		// An empty NotificationTargetARN clears the target, as in AWS.
		h.TargetARN = in.TargetARN
	}
	if in.RoleARN != "" {
		h.RoleARN = in.RoleARN
	}
	if h.TargetARN != "" && h.RoleARN == "" {
		// The API reference: RoleARN is required for new hooks that notify
		// an SNS topic or SQS queue, optional when updating one that has a
		// role. The wording is the local cloud's.
		return nil, awsproto.ValidationError("Lifecycle hook %s has NotificationTargetARN %s but no RoleARN: give the ARN of the IAM role that lets Auto Scaling publish to the target.", in.Name, h.TargetARN)
	}
	return h, nil
}

func (s *Service) putHook(ctx context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	in, err := parseHookInput(f, "")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	h, g, err := s.prepareHookLocked(name, in)
	var groupARN string
	if g != nil {
		groupARN = g.ARN
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// AWS sends the target a test message whenever a request names one,
	// and refuses the hook when it cannot be delivered. It goes out
	// without mu held, as every call to another service does.
	if in.TargetSet && h.TargetARN != "" {
		if err := s.sendTestNotification(ctx, name, groupARN, h); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Again: the group or the hook may have changed meanwhile.
	if h, g, err = s.prepareHookLocked(name, in); err != nil {
		return nil, err
	}
	// The new settings apply to transitions that start from now on.
	g.Hooks[h.Name] = h
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &emptyResult{XMLName: xmlName("PutLifecycleHookResult")}, nil
}

// prepareHookLocked builds the hook a PutLifecycleHook asks for, with the
// group it goes in. Callers hold mu.
func (s *Service) prepareHookLocked(groupName string, in hookInput) (*hook, *group, error) {
	g, err := s.mutableGroupLocked(groupName)
	if err != nil {
		return nil, nil, err
	}
	old := g.Hooks[in.Name]
	h, err := buildHook(in, old)
	if err != nil {
		return nil, nil, err
	}
	if old == nil && len(g.Hooks) >= maxHooksPerGroup {
		return nil, nil, errLimit("Cannot create more than %d lifecycle hooks per Auto Scaling group.", maxHooksPerGroup)
	}
	return h, g, nil
}

func (s *Service) describeHooks(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	names := f.List("LifecycleHookNames.member")
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupLocked(name)
	if err != nil {
		return nil, err
	}
	res := &describeHooksResult{}
	hooks := make([]*hook, 0, len(g.Hooks))
	for _, h := range g.Hooks {
		if len(names) == 0 || slices.Contains(names, h.Name) {
			hooks = append(hooks, h)
		}
	}
	slices.SortFunc(hooks, func(a, b *hook) int { return strings.Compare(a.Name, b.Name) })
	for _, h := range hooks {
		res.Hooks.Member = append(res.Hooks.Member, toXMLHook(g.Name, h))
	}
	return res, nil
}

func (s *Service) deleteHook(_ context.Context, f form) (any, error) {
	hookName, err := f.required("LifecycleHookName")
	if err != nil {
		return nil, err
	}
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupLocked(name)
	if err != nil {
		return nil, err
	}
	if _, ok := g.Hooks[hookName]; !ok {
		return nil, awsproto.ValidationError("No Lifecycle Hook found with name %s for Auto Scaling group %s.", hookName, name)
	}
	// AWS completes the hook's outstanding actions first: ABANDON for
	// launching instances, CONTINUE for terminating ones.
	for _, i := range g.Instances {
		for _, a := range i.Actions {
			if a.Hook != hookName || a.Result != "" {
				continue
			}
			a.Result, a.Reason = resultContinue, "Lifecycle Hook Deleted"
			if a.Transition == transitionLaunching {
				a.Result = resultAbandon
			}
		}
	}
	delete(g.Hooks, hookName)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &emptyResult{XMLName: xmlName("DeleteLifecycleHookResult")}, nil
}

// findActionLocked returns the active action a Complete or Heartbeat call
// names, or AWS's "No active Lifecycle Action found" error.
func (s *Service) findActionLocked(in actionInput, now time.Time) (*action, error) {
	g, err := s.groupLocked(in.Group)
	if err != nil {
		return nil, err
	}
	for _, i := range g.Instances {
		if in.InstanceID != "" && i.ID != in.InstanceID {
			continue
		}
		for _, a := range i.Actions {
			if a.Hook != in.Hook || (in.Token != "" && a.Token != in.Token) {
				continue
			}
			if a.active(now) {
				return a, nil
			}
		}
	}
	return nil, errNoActiveAction(in.Token, in.InstanceID)
}

func (s *Service) completeAction(_ context.Context, f form) (any, error) {
	in, err := parseActionInput(f, true)
	if err != nil {
		return nil, err
	}
	if in.Result != resultContinue && in.Result != resultAbandon {
		return nil, awsproto.ValidationError("Invalid value '%s' for LifecycleActionResult; use CONTINUE or ABANDON.", in.Result)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findActionLocked(in, s.now())
	if err != nil {
		return nil, err
	}
	a.Result, a.Reason = in.Result, "Lifecycle Action Completed with "+in.Result+" Result"
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &emptyResult{XMLName: xmlName("CompleteLifecycleActionResult")}, nil
}

func (s *Service) recordHeartbeat(_ context.Context, f form) (any, error) {
	in, err := parseActionInput(f, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	a, err := s.findActionLocked(in, now)
	if err != nil {
		return nil, err
	}
	// A heartbeat restarts the heartbeat timeout, never past the global one.
	a.HeartbeatDue = now.Add(a.HeartbeatTimeout)
	if a.HeartbeatDue.After(a.GlobalDue) {
		a.HeartbeatDue = a.GlobalDue
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &emptyResult{XMLName: xmlName("RecordLifecycleActionHeartbeatResult")}, nil
}
