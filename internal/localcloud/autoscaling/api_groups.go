package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The group API. Handlers change the state and save it; anything that
// needs another service (launching, terminating, target groups, events) is
// left to the controller, which picks the change up on its next pass.

var terminationPolicies = []string{"Default", "OldestInstance", "NewestInstance", "OldestLaunchTemplate", "OldestLaunchConfiguration", "ClosestToNextInstanceHour", "AllocationStrategy"}

func (s *Service) createGroup(ctx context.Context, f form) (any, error) {
	in, err := parseGroupInput(f, true)
	if err != nil {
		return nil, err
	}
	lt, lc, err := checkLaunchSource(in)
	if err != nil {
		return nil, err
	}
	if lt == nil && lc == "" {
		return nil, errNoLaunchSource()
	}
	desired := *in.MinSize
	if in.Desired != nil {
		desired = *in.Desired
	}
	if err := checkSizes(*in.MinSize, *in.MaxSize, desired); err != nil {
		return nil, err
	}
	zones, subnets, err := s.resolveZones(ctx, in.Zones, in.VPCZoneIdentifier)
	if err != nil {
		return nil, err
	}
	if len(zones) == 0 {
		return nil, awsproto.ValidationError("At least one Availability Zone or VPC Subnet is required.")
	}
	g := &group{
		Name:            in.Name,
		MinSize:         *in.MinSize,
		MaxSize:         *in.MaxSize,
		Desired:         desired,
		Zones:           zones,
		Subnets:         subnets,
		HealthCheckType: checkEC2,
		DefaultCooldown: 300 * time.Second,
		Hooks:           map[string]*hook{},
		Instances:       map[string]*instance{},
	}
	if len(subnets) > 0 {
		g.VPCZoneIdentifier = in.VPCZoneIdentifier
	}
	if lt != nil {
		g.LaunchTemplate = *lt
	}
	g.LaunchConfiguration = lc
	if err := s.applyCommonSettings(g, in); err != nil {
		return nil, err
	}
	if len(in.TargetGroupARNs) > 0 && s.cfg.Targets == nil {
		return nil, awsproto.ValidationError("This local cloud has no load balancers, so TargetGroupARNs cannot be used.")
	}
	g.TargetGroupARNs = slices.Compact(slices.Clone(in.TargetGroupARNs))
	for _, h := range in.Hooks {
		hk, err := buildHook(h, nil)
		if err != nil {
			return nil, err
		}
		if _, dup := g.Hooks[hk.Name]; dup {
			return nil, awsproto.ValidationError("Lifecycle hook %s is specified more than once.", hk.Name)
		}
		g.Hooks[hk.Name] = hk
	}
	if len(g.Hooks) > maxHooksPerGroup {
		return nil, errLimit("Cannot create more than %d lifecycle hooks per Auto Scaling group.", maxHooksPerGroup)
	}
	for _, t := range in.Tags {
		if t.ResourceType != "" && t.ResourceType != "auto-scaling-group" {
			return nil, awsproto.ValidationError("Invalid resource type %s for tag %s; only auto-scaling-group is supported.", t.ResourceType, t.Key)
		}
		g.Tags = slices.DeleteFunc(g.Tags, func(x tag) bool { return x.Key == t.Key })
		g.Tags = append(g.Tags, tag{Key: t.Key, Value: t.Value, PropagateAtLaunch: t.Propagate})
	}

	g.ARN = s.groupARN(g.Name)
	if err := s.testHookTargets(ctx, g); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Groups[in.Name]; ok {
		return nil, errGroupExists(in.Name)
	}
	if _, ok := s.st.LaunchConfigurations[lc]; lc != "" && !ok {
		return nil, errConfigurationNotFound(lc)
	}
	g.Created = s.now()
	s.st.Groups[g.Name] = g
	return nil, s.saveLocked()
}

// testHookTargets sends the test message to the notification target of
// each hook a new group comes with, as PutLifecycleHook does, after making
// sure the group does not exist already (a test message for a group that
// is then refused would be noise).
func (s *Service) testHookTargets(ctx context.Context, g *group) error {
	var targeted []*hook
	for _, name := range slices.Sorted(maps.Keys(g.Hooks)) {
		if h := g.Hooks[name]; h.TargetARN != "" {
			targeted = append(targeted, h)
		}
	}
	if len(targeted) == 0 {
		return nil
	}
	s.mu.Lock()
	_, exists := s.st.Groups[g.Name]
	_, lcExists := s.st.LaunchConfigurations[g.LaunchConfiguration]
	s.mu.Unlock()
	switch {
	case exists:
		return errGroupExists(g.Name)
	case g.LaunchConfiguration != "" && !lcExists:
		return errConfigurationNotFound(g.LaunchConfiguration)
	}
	for _, h := range targeted {
		if err := s.sendTestNotification(ctx, g.Name, g.ARN, h); err != nil {
			return err
		}
	}
	return nil
}

// applyCommonSettings applies the settings Create and Update share.
func (s *Service) applyCommonSettings(g *group, in groupInput) error {
	switch in.HealthCheckType {
	case "":
	case checkEC2, checkELB:
		g.HealthCheckType = in.HealthCheckType
	default:
		return awsproto.ValidationError("Health check type %s is not supported here; use EC2 or ELB.", in.HealthCheckType)
	}
	if in.GracePeriod != nil {
		if *in.GracePeriod < 0 {
			return awsproto.ValidationError("HealthCheckGracePeriod must not be negative.")
		}
		g.GracePeriod = time.Duration(*in.GracePeriod) * time.Second
	}
	if in.DefaultCooldown != nil {
		if *in.DefaultCooldown < 0 {
			return awsproto.ValidationError("DefaultCooldown must not be negative.")
		}
		g.DefaultCooldown = time.Duration(*in.DefaultCooldown) * time.Second
	}
	if len(in.TerminationPolicies) > 0 {
		for _, p := range in.TerminationPolicies {
			if !slices.Contains(terminationPolicies, p) {
				return awsproto.ValidationError("Termination policy %s is not one of %s.", p, strings.Join(terminationPolicies, ", "))
			}
		}
		g.TerminationPolicies = slices.Clone(in.TerminationPolicies)
	}
	if len(g.TerminationPolicies) == 0 {
		g.TerminationPolicies = []string{"Default"}
	}
	if in.NewProtected != nil {
		g.NewProtected = *in.NewProtected
	}
	if in.Maintenance != nil {
		p, err := buildMaintenancePolicy(*in.Maintenance)
		if err != nil {
			return err
		}
		g.Maintenance = p
	}
	return nil
}

// buildMaintenancePolicy validates an InstanceMaintenancePolicy as the API
// reference states its rules: MinHealthyPercentage 0–100 and
// MaxHealthyPercentage 100–200, both given, at most 100 apart, or both -1
// to clear the policy (nil). The range messages follow AWS's model
// constraint wording; the others are the local cloud's own.
func buildMaintenancePolicy(in maintenanceInput) (*maintenancePolicy, error) {
	for _, m := range []struct {
		name string
		v    *int
		hi   int
	}{
		{"minHealthyPercentage", in.MinHealthy, 100},
		{"maxHealthyPercentage", in.MaxHealthy, 200},
	} {
		switch {
		case m.v == nil:
		case *m.v < -1:
			return nil, awsproto.ValidationError("1 validation error detected: Value '%d' at 'instanceMaintenancePolicy.%s' failed to satisfy constraint: Member must have value greater than or equal to -1", *m.v, m.name)
		case *m.v > m.hi:
			return nil, awsproto.ValidationError("1 validation error detected: Value '%d' at 'instanceMaintenancePolicy.%s' failed to satisfy constraint: Member must have value less than or equal to %d", *m.v, m.name, m.hi)
		}
	}
	if in.MinHealthy == nil || in.MaxHealthy == nil {
		return nil, awsproto.ValidationError("Both MinHealthyPercentage and MaxHealthyPercentage must be specified in the instance maintenance policy.")
	}
	lo, hi := *in.MinHealthy, *in.MaxHealthy
	switch {
	case lo == -1 && hi == -1:
		return nil, nil
	case lo == -1 || hi == -1:
		return nil, awsproto.ValidationError("To clear the instance maintenance policy, set both MinHealthyPercentage and MaxHealthyPercentage to -1.")
	case hi < 100:
		return nil, awsproto.ValidationError("MaxHealthyPercentage must be between 100 and 200 (or -1 to clear the policy), not %d.", hi)
	case hi-lo > 100:
		return nil, awsproto.ValidationError("The difference between MaxHealthyPercentage (%d) and MinHealthyPercentage (%d) cannot be greater than 100.", hi, lo)
	}
	return &maintenancePolicy{MinHealthy: lo, MaxHealthy: hi}, nil
}

// checkLaunchSource returns what the input says to launch from: a launch
// template, or a launch configuration by name; nil and "" when it names
// neither, and an error when it names both.
func checkLaunchSource(in groupInput) (*launchTemplate, string, error) {
	lt := in.LaunchTemplate
	switch {
	case lt != nil && in.LaunchConfigurationName != "":
		return nil, "", errNoLaunchSource()
	case in.LaunchConfigurationName != "":
		return nil, in.LaunchConfigurationName, nil
	case lt == nil:
		return nil, "", nil
	}
	if (lt.ID == "") == (lt.Name == "") {
		return nil, "", awsproto.ValidationError("Valid requests must contain either launchTemplateId or LaunchTemplateName.")
	}
	out := *lt
	if out.Version == "" {
		out.Version = "$Default"
	}
	return &out, "", nil
}

// errNoLaunchSource is AWS's answer to a group given no launch template
// or configuration, or more than one.
func errNoLaunchSource() error {
	return awsproto.ValidationError("Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
}

func checkSizes(minSize, maxSize, desired int) error {
	switch {
	case minSize < 0 || maxSize < 0 || desired < 0:
		return awsproto.ValidationError("MinSize, MaxSize and DesiredCapacity must not be negative.")
	case minSize > maxSize:
		return awsproto.ValidationError("The value for MinSize (%d) must be less than or equal to the value for MaxSize (%d).", minSize, maxSize)
	case desired < minSize || desired > maxSize:
		return awsproto.ValidationError("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, minSize, maxSize)
	}
	return nil
}

// resolveZones turns AvailabilityZones and VPCZoneIdentifier into the
// zones to launch in. VPCZoneIdentifier wins when both are given, as in
// AWS; its entries may be zone names (the local cloud's shorthand) or, when
// Instances resolves subnets, subnet ids.
func (s *Service) resolveZones(ctx context.Context, zones []string, vpcZoneIdentifier string) ([]string, map[string]string, error) {
	known := s.cfg.Instances.Zones()
	legal := func(z string) bool { return len(known) == 0 || slices.Contains(known, z) }
	var out []string
	subnets := map[string]string{}
	if vpcZoneIdentifier != "" {
		resolver, _ := s.cfg.Instances.(SubnetResolver)
		for _, e := range strings.Split(vpcZoneIdentifier, ",") {
			e = strings.TrimSpace(e)
			switch {
			case e == "":
				continue
			case legal(e) && !strings.HasPrefix(e, "subnet-"):
				out = append(out, e)
			case resolver != nil:
				z, err := resolver.SubnetZone(ctx, e)
				if errors.Is(err, ErrSubnetNotFound) {
					return nil, nil, awsproto.ValidationError("The subnet ID '%s' does not exist", e)
				}
				if err != nil {
					return nil, nil, awsproto.Internal("resolving subnet %s: %v", e, err)
				}
				if _, dup := subnets[z]; !dup {
					subnets[z] = e
				}
				out = append(out, z)
			default:
				return nil, nil, awsproto.ValidationError("The subnet ID '%s' does not exist (the local cloud takes zone names in VPCZoneIdentifier: %s)", e, strings.Join(known, ", "))
			}
		}
	} else {
		for _, z := range zones {
			if !legal(z) {
				return nil, nil, awsproto.ValidationError("Invalid Availability Zone: %s (this region has %s)", z, strings.Join(known, ", "))
			}
			out = append(out, z)
		}
	}
	var uniq []string
	for _, z := range out {
		if !slices.Contains(uniq, z) {
			uniq = append(uniq, z)
		}
	}
	if len(subnets) == 0 {
		subnets = nil
	}
	return uniq, subnets, nil
}

func (s *Service) updateGroup(ctx context.Context, f form) (any, error) {
	in, err := parseGroupInput(f, false)
	if err != nil {
		return nil, err
	}
	lt, lc, err := checkLaunchSource(in)
	if err != nil {
		return nil, err
	}
	var zones []string
	var subnets map[string]string
	if len(in.Zones) > 0 || in.VPCZoneIdentifier != "" {
		if zones, subnets, err = s.resolveZones(ctx, in.Zones, in.VPCZoneIdentifier); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.mutableGroupLocked(in.Name)
	if err != nil {
		return nil, err
	}
	// Validate on a copy so a rejected update changes nothing.
	next := *g
	if in.MinSize != nil {
		next.MinSize = *in.MinSize
	}
	if in.MaxSize != nil {
		next.MaxSize = *in.MaxSize
	}
	if in.Desired != nil {
		next.Desired = *in.Desired
	} else {
		// Without a new desired capacity, AWS moves the current one into
		// the new bounds.
		next.Desired = max(next.MinSize, min(next.Desired, next.MaxSize))
	}
	if err := checkSizes(next.MinSize, next.MaxSize, next.Desired); err != nil {
		return nil, err
	}
	if err := s.applyCommonSettings(&next, in); err != nil {
		return nil, err
	}
	switch {
	case lt != nil:
		next.LaunchTemplate, next.LaunchConfiguration = *lt, ""
	case lc != "":
		if _, ok := s.st.LaunchConfigurations[lc]; !ok {
			return nil, errConfigurationNotFound(lc)
		}
		next.LaunchTemplate, next.LaunchConfiguration = launchTemplate{}, lc
	}
	if zones != nil {
		next.Zones, next.Subnets = zones, subnets
		next.VPCZoneIdentifier = ""
		if len(subnets) > 0 {
			next.VPCZoneIdentifier = in.VPCZoneIdentifier
		}
	}
	*g = next
	return nil, s.saveLocked()
}

func (s *Service) deleteGroup(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	force, err := f.optBool("ForceDelete")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.groupLocked(name)
	if err != nil {
		return nil, err
	}
	if len(g.Instances) == 0 {
		s.removeGroupLocked(g)
		return nil, s.saveLocked()
	}
	if force == nil || !*force {
		for _, i := range g.Instances {
			if !i.State.terminating() {
				return nil, errInUse()
			}
		}
		return nil, errActivityInProgress()
	}
	// A forced delete terminates everything without terminate hooks (AWS
	// documents that hooks do not apply to it); the controller removes the
	// group once it is empty.
	now := s.now()
	g.Deleting = true
	g.MinSize, g.Desired = 0, 0
	for _, i := range g.sortedInstances() {
		for _, a := range i.Actions {
			if a.Result == "" {
				a.Result, a.Reason = resultAbandon, "Auto Scaling group deleted"
			}
		}
		i.SkipHooks = true
		if !i.State.terminating() {
			s.beginTerminationLocked(g, i, now, fmt.Sprintf("At %s an instance was taken out of service in response to a user request to delete the group.", stamp(now)))
		}
	}
	return nil, s.saveLocked()
}

// removeGroupLocked forgets a group; its activities stay, marked deleted.
func (s *Service) removeGroupLocked(g *group) {
	for _, a := range s.st.Activities {
		if a.GroupARN == g.ARN {
			a.GroupDeleted = true
		}
	}
	delete(s.st.Groups, g.Name)
	delete(s.nextBatch, g.Name)
	for k := range s.launchBackoff {
		if strings.HasPrefix(k, g.Name+"\x00") {
			delete(s.launchBackoff, k)
		}
	}
}

func (s *Service) describeGroups(_ context.Context, f form) (any, error) {
	limit, err := f.maxRecords(50, 100)
	if err != nil {
		return nil, err
	}
	start, err := parsePageToken("groups", f.Get("NextToken"))
	if err != nil {
		return nil, err
	}
	names := f.List("AutoScalingGroupNames.member")
	filters, err := parseFilters(f)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*group
	for name, g := range s.st.Groups {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		if name < start || !filters.match(g) {
			continue
		}
		matched = append(matched, g)
	}
	slices.SortFunc(matched, func(a, b *group) int { return strings.Compare(a.Name, b.Name) })
	res := &describeGroupsResult{}
	for i, g := range matched {
		if i == limit {
			res.NextToken = pageToken("groups", g.Name)
			break
		}
		res.Groups.Member = append(res.Groups.Member, toXMLGroup(g))
	}
	return res, nil
}

// groupFilters are DescribeAutoScalingGroups' tag filters.
type groupFilters []struct {
	name   string
	values []string
}

func parseFilters(f form) (groupFilters, error) {
	var out groupFilters
	for _, m := range f.Structs("Filters.member") {
		name := m.Get("Name")
		if name != "tag-key" && name != "tag-value" && !strings.HasPrefix(name, "tag:") {
			return nil, awsproto.ValidationError("Filter name %s is not supported; use tag:<key>, tag-key or tag-value.", name)
		}
		out = append(out, struct {
			name   string
			values []string
		}{name, m.List("Values.member")})
	}
	return out, nil
}

func (fs groupFilters) match(g *group) bool {
	for _, f := range fs {
		ok := false
		for _, t := range g.Tags {
			switch {
			case f.name == "tag-key":
				ok = ok || slices.Contains(f.values, t.Key)
			case f.name == "tag-value":
				ok = ok || slices.Contains(f.values, t.Value)
			default:
				ok = ok || (t.Key == strings.TrimPrefix(f.name, "tag:") && slices.Contains(f.values, t.Value))
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *Service) setDesiredCapacity(_ context.Context, f form) (any, error) {
	name, err := f.required("AutoScalingGroupName")
	if err != nil {
		return nil, err
	}
	desired, err := f.reqInt("DesiredCapacity")
	if err != nil {
		return nil, err
	}
	if _, err := f.optBool("HonorCooldown"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.mutableGroupLocked(name)
	if err != nil {
		return nil, err
	}
	switch {
	case desired > g.MaxSize:
		return nil, awsproto.ValidationError("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", desired, g.MaxSize)
	case desired < g.MinSize:
		return nil, awsproto.ValidationError("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", desired, g.MinSize)
	}
	g.Desired = desired
	return nil, s.saveLocked()
}
