package autoscaling

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The instance API: describing instances and activities, terminating
// instances, and Standby. As in api_groups.go, handlers only change the
// state; the controller carries the changes out.

func (s *Service) describeInstances(_ context.Context, f form) (any, error) {
	limit, err := f.maxRecords(50, 50)
	if err != nil {
		return nil, err
	}
	start, err := parsePageToken("instances", f.Get("NextToken"))
	if err != nil {
		return nil, err
	}
	ids := f.List("InstanceIds.member")

	s.mu.Lock()
	defer s.mu.Unlock()
	var out []xmlInstanceDetails
	for _, g := range s.st.Groups {
		for _, i := range g.Instances {
			if (len(ids) > 0 && !slices.Contains(ids, i.ID)) || i.ID < start {
				continue
			}
			// DescribeAutoScalingInstances spells health in capitals,
			// unlike DescribeAutoScalingGroups.
			out = append(out, xmlInstanceDetails{
				InstanceID:              i.ID,
				AutoScalingGroupName:    g.Name,
				AvailabilityZone:        i.Zone,
				LifecycleState:          i.State.String(),
				HealthStatus:            strings.ToUpper(i.Health),
				LaunchConfigurationName: i.LaunchConfiguration,
				LaunchTemplate:          toXMLTemplate(i.LaunchTemplate),
				ProtectedFromScaleIn:    i.Protected,
			})
		}
	}
	slices.SortFunc(out, func(a, b xmlInstanceDetails) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	res := &describeInstancesResult{}
	if len(out) > limit {
		res.NextToken = pageToken("instances", out[limit].InstanceID)
		out = out[:limit]
	}
	res.Instances.Member = out
	return res, nil
}

func (s *Service) terminateInstance(_ context.Context, f form) (any, error) {
	id, err := f.required("InstanceId")
	if err != nil {
		return nil, err
	}
	decrement, err := f.reqBool("ShouldDecrementDesiredCapacity")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, i := s.findInstanceLocked(id)
	if i == nil {
		return nil, errInstanceNotManaged(id)
	}
	if i.State.terminating() {
		// Already on its way out: answer with the activity doing it.
		if a := s.activityLocked(i.ActivityID); a != nil {
			return &terminateResult{Activity: toXMLActivity(a)}, nil
		}
		return nil, awsproto.ValidationError("The instance %s is already terminating.", id)
	}
	now := s.now()
	cause := fmt.Sprintf("At %s instance %s was taken out of service in response to a user request.", stamp(now), id)
	if decrement {
		if g.Desired <= g.MinSize {
			return nil, awsproto.ValidationError("Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.MinSize)
		}
		cause = fmt.Sprintf("At %s instance %s was taken out of service in response to a user request, shrinking the capacity from %d to %d.", stamp(now), id, g.Desired, g.Desired-1)
		g.Desired--
	}
	a := s.beginTerminationLocked(g, i, now, cause)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &terminateResult{Activity: toXMLActivity(a)}, nil
}

func (s *Service) enterStandby(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	decrement, err := f.reqBool("ShouldDecrementDesiredCapacity")
	if err != nil {
		return nil, err
	}
	ids, err := standbyIDs(f)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.mutableGroupLocked(name)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		i, ok := g.Instances[id]
		if !ok {
			return nil, awsproto.ValidationError("The instance %s is not part of Auto Scaling group %s.", id, name)
		}
		if i.State != stateInService {
			return nil, awsproto.ValidationError("The instance %s is not in InService.", id)
		}
	}
	if decrement && g.Desired-len(ids) < g.MinSize {
		return nil, awsproto.ValidationError("Moving %d instance(s) to Standby would decrease the desired capacity to %d, below the group's min size %d. Lower the min size, or do not decrement the desired capacity.", len(ids), g.Desired-len(ids), g.MinSize)
	}
	now := s.now()
	res := &activitiesResult{XMLName: xmlName("EnterStandbyResult")}
	for _, id := range ids {
		i := g.Instances[id]
		cause := fmt.Sprintf("At %s instance %s was moved to standby in response to a user request.", stamp(now), id)
		if decrement {
			cause = fmt.Sprintf("At %s instance %s was moved to standby in response to a user request, shrinking the capacity from %d to %d.", stamp(now), id, g.Desired, g.Desired-1)
			g.Desired--
		}
		a := s.newActivityLocked(g, now, "Moving EC2 instance to Standby: "+id, cause, i.Zone, activityInProgress, 50)
		// A pending replacement is dropped: Standby is not health-checked,
		// and the health check decides again once the instance is back.
		i.State, i.ActivityID, i.ReplaceCause = stateEnteringStandby, a.ID, ""
		res.Activities.Member = append(res.Activities.Member, toXMLActivity(a))
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *Service) exitStandby(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	ids, err := standbyIDs(f)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.mutableGroupLocked(name)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		i, ok := g.Instances[id]
		if !ok {
			return nil, awsproto.ValidationError("The instance %s is not part of Auto Scaling group %s.", id, name)
		}
		if i.State != stateStandby {
			return nil, awsproto.ValidationError("The instance %s is not in Standby.", id)
		}
	}
	if g.Desired+len(ids) > g.MaxSize {
		return nil, awsproto.ValidationError("Moving %d instance(s) out of Standby would increase the desired capacity to %d, above the group's max size %d.", len(ids), g.Desired+len(ids), g.MaxSize)
	}
	now := s.now()
	res := &activitiesResult{XMLName: xmlName("ExitStandbyResult")}
	for _, id := range ids {
		i := g.Instances[id]
		cause := fmt.Sprintf("At %s instance %s was moved out of standby in response to a user request, increasing the capacity from %d to %d.", stamp(now), id, g.Desired, g.Desired+1)
		g.Desired++
		a := s.newActivityLocked(g, now, "Moving EC2 instance out of Standby: "+id, cause, i.Zone, activityPreInService, 30)
		i.State, i.ActivityID, i.FromStandby = statePending, a.ID, true
		res.Activities.Member = append(res.Activities.Member, toXMLActivity(a))
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return res, nil
}

func standbyIDs(f form) ([]string, error) {
	ids := slices.Compact(f.List("InstanceIds.member"))
	switch {
	case len(ids) == 0:
		return nil, awsproto.ValidationError("The request must name at least one instance in InstanceIds.")
	case len(ids) > 20:
		return nil, awsproto.ValidationError("1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 20")
	}
	return ids, nil
}

func (s *Service) describeActivities(_ context.Context, f form) (any, error) {
	limit, err := f.maxRecords(100, 100)
	if err != nil {
		return nil, err
	}
	start, err := parsePageToken("activities", f.Get("NextToken"))
	if err != nil {
		return nil, err
	}
	includeDeleted, err := f.optBool("IncludeDeletedGroups")
	if err != nil {
		return nil, err
	}
	name := f.Get("AutoScalingGroupName")
	ids := f.List("ActivityIds.member")

	s.mu.Lock()
	defer s.mu.Unlock()
	// Newest first, as AWS lists them.
	var matched []*activity
	for i := len(s.st.Activities) - 1; i >= 0; i-- {
		a := s.st.Activities[i]
		if (name != "" && a.Group != name) || (len(ids) > 0 && !slices.Contains(ids, a.ID)) {
			continue
		}
		if a.GroupDeleted && (includeDeleted == nil || !*includeDeleted) && len(ids) == 0 {
			continue
		}
		matched = append(matched, a)
	}
	if start != "" {
		i := slices.IndexFunc(matched, func(a *activity) bool { return a.ID == start })
		if i < 0 {
			return nil, &awsproto.Error{Code: "InvalidNextToken", Message: "The token '" + f.Get("NextToken") + "' is invalid.", Status: 400}
		}
		matched = matched[i:]
	}
	res := &describeActivitiesResult{}
	for i, a := range matched {
		if i == limit {
			res.NextToken = pageToken("activities", a.ID)
			break
		}
		res.Activities.Member = append(res.Activities.Member, toXMLActivity(a))
	}
	return res, nil
}

func (s *Service) setInstanceProtection(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	protect, err := f.reqBool("ProtectedFromScaleIn")
	if err != nil {
		return nil, err
	}
	ids := slices.Compact(f.List("InstanceIds.member"))
	if len(ids) == 0 || len(ids) > 50 {
		return nil, awsproto.ValidationError("InstanceIds must name between 1 and 50 instances.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.mutableGroupLocked(name)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		i, ok := g.Instances[id]
		if !ok {
			return nil, awsproto.ValidationError("The instance %s is not part of Auto Scaling group %s.", id, name)
		}
		if i.State.terminating() {
			return nil, awsproto.ValidationError("The instance %s is not in InService or EnteringStandby or Standby.", id)
		}
	}
	for _, id := range ids {
		g.Instances[id].Protected = protect
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return &emptyResult{XMLName: xmlName("SetInstanceProtectionResult")}, nil
}

// setInstanceHealth lets a user (or a test) declare an instance unhealthy;
// the controller replaces it on its next pass.
func (s *Service) setInstanceHealth(_ context.Context, f form) (any, error) {
	id, err := f.required("InstanceId")
	if err != nil {
		return nil, err
	}
	status, err := f.required("HealthStatus")
	if err != nil {
		return nil, err
	}
	if status != healthHealthy && status != healthUnhealthy {
		return nil, awsproto.ValidationError("Invalid value '%s' for HealthStatus; use Healthy or Unhealthy.", status)
	}
	respect, err := f.optBool("ShouldRespectGracePeriod")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, i := s.findInstanceLocked(id)
	if i == nil {
		return nil, errInstanceNotManaged(id)
	}
	if status == healthUnhealthy && (respect == nil || *respect) && s.now().Sub(i.LaunchTime) < g.GracePeriod {
		return nil, nil // inside the grace period the report is ignored, as AWS does
	}
	i.Health = status
	return nil, s.saveLocked()
}
