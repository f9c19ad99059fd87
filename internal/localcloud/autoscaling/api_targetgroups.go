package autoscaling

import (
	"context"
	"encoding/xml"
	"slices"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// maxAttachTargetGroups is how many target groups one
// AttachLoadBalancerTargetGroups call takes on AWS.
const maxAttachTargetGroups = 10

// attachTargetGroups is AttachLoadBalancerTargetGroups: the target groups
// join the group's TargetGroupARNs, so its launches are registered in them
// and its terminations deregistered from them, as for the ones it was
// created with; its InService instances are registered now. Attaching an
// attached target group changes nothing.
func (s *Service) attachTargetGroups(ctx context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	arns := f.List("TargetGroupARNs.member")
	if len(arns) == 0 {
		return nil, awsproto.ValidationError("The parameter TargetGroupARNs must contain at least one target group ARN.")
	}
	if len(arns) > maxAttachTargetGroups {
		return nil, awsproto.ValidationError("At most %d target groups can be attached in one call; %d were given.", maxAttachTargetGroups, len(arns))
	}
	if s.cfg.Targets == nil {
		return nil, awsproto.ValidationError("This local cloud has no load balancers, so TargetGroupARNs cannot be used.")
	}
	s.mu.Lock()
	g, err := s.mutableGroupLocked(name)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var ids []string
	for _, i := range g.Instances {
		if i.State == stateInService {
			ids = append(ids, i.ID)
		}
	}
	slices.Sort(ids)
	s.mu.Unlock()
	// Registered first, so a target group that does not exist is refused
	// before the group names it.
	for _, arn := range arns {
		for _, id := range ids {
			if err := s.cfg.Targets.Register(ctx, arn, id); err != nil {
				return nil, awsproto.ValidationError("Registering instance %s with target group %s failed: %v", id, arn, err)
			}
		}
	}
	s.mu.Lock()
	if g, err = s.mutableGroupLocked(name); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for _, arn := range arns {
		if !slices.Contains(g.TargetGroupARNs, arn) {
			g.TargetGroupARNs = append(g.TargetGroupARNs, arn)
		}
	}
	if err := s.saveLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	// An instance that came in service meanwhile was registered with the
	// target groups it had: register it with these too.
	var late []string
	for _, i := range g.Instances {
		if i.State == stateInService && !slices.Contains(ids, i.ID) {
			late = append(late, i.ID)
		}
	}
	s.mu.Unlock()
	for _, arn := range arns {
		for _, id := range late {
			if err := s.cfg.Targets.Register(ctx, arn, id); err != nil {
				return nil, awsproto.Internal("registering instance %s with target group %s: %v", id, arn, err)
			}
		}
	}
	return &attachResult{XMLName: xmlName("AttachLoadBalancerTargetGroupsResult")}, nil
}

// attachResult is AttachLoadBalancerTargetGroups' answer: an empty result
// element, which the SDKs expect.
type attachResult struct {
	XMLName xml.Name
}
