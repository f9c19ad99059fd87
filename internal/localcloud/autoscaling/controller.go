package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Step runs one pass of the group controller: every instance is moved as
// far as it can go (hooks started, timed out or completed, target groups
// updated, terminations carried out), unhealthy instances are replaced,
// each group is brought to its desired capacity, and queued events are
// published. Start calls it every Tick; tests call it directly on a fake
// clock. Passes never overlap. The error, if any, joins what failed; the
// rest of the pass still ran, and what failed is retried on the next.
func (s *Service) Step(ctx context.Context) error {
	s.stepMu.Lock()
	defer s.stepMu.Unlock()
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.st.Groups))
	s.mu.Unlock()
	var errs []error
	for _, name := range names {
		if err := s.stepGroup(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", name, err))
		}
	}
	if err := s.flushOutbox(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Service) stepGroup(ctx context.Context, name string) error {
	errs := []error{s.advanceAll(ctx, name), s.checkHealth(ctx, name), s.retireReplaced(ctx, name)}
	errs = append(errs, s.reconcileCapacity(ctx, name), s.advanceAll(ctx, name))

	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.st.Groups[name]; g != nil && g.Deleting && len(g.Instances) == 0 {
		s.removeGroupLocked(g)
		errs = append(errs, s.saveLocked())
	}
	return errors.Join(errs...)
}

func (s *Service) advanceAll(ctx context.Context, name string) error {
	s.mu.Lock()
	var ids []string
	if g := s.st.Groups[name]; g != nil {
		ids = slices.Sorted(maps.Keys(g.Instances))
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, s.advance(ctx, name, id))
	}
	return errors.Join(errs...)
}

// checkHealth replaces InService instances that fail their health check
// once the grace period since their launch is over. EC2 checks: the
// instance is gone, stopping, stopped, shutting down or terminated, or its
// process died. ELB checks add: a target group that knows the instance
// says it is unhealthy.
//
// Without a maintenance policy the instance is terminated first, as AWS
// does by default. With one, it is left serving and marked for a
// replacement that launches first (see replacement.go) — unless EC2 says it
// is no longer running, which AWS documents as always terminate-and-launch:
// there is nothing left to keep serving.
func (s *Service) checkHealth(ctx context.Context, name string) error {
	type probe struct {
		id      string
		elb     bool
		targets []string
		// goneOnly probes an instance already awaiting its replacement:
		// only its no longer running changes anything.
		goneOnly bool
	}
	type finding struct {
		cause string
		gone  bool // EC2 no longer runs it
	}
	s.mu.Lock()
	g := s.st.Groups[name]
	if g == nil || g.Deleting {
		s.mu.Unlock()
		return nil
	}
	now := s.now()
	var probes []probe
	unhealthy := map[string]finding{}
	for _, i := range g.sortedInstances() {
		switch {
		case i.State != stateInService:
		case i.ReplaceCause != "":
			probes = append(probes, probe{id: i.ID, goneOnly: true})
		case i.Health == healthUnhealthy:
			unhealthy[i.ID] = finding{cause: "a user health-check"} // SetInstanceHealth
		case now.Sub(i.LaunchTime) >= g.GracePeriod:
			probes = append(probes, probe{id: i.ID, elb: g.HealthCheckType == checkELB, targets: g.TargetGroupARNs})
		}
	}
	s.mu.Unlock()

	const stoppedCause = "an EC2 health check indicating it has been terminated or stopped"
	var errs []error
	for _, p := range probes {
		info, err := s.cfg.Instances.Instance(ctx, p.id)
		switch {
		case errors.Is(err, ErrInstanceNotFound):
			unhealthy[p.id] = finding{cause: stoppedCause, gone: true}
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("checking instance %s: %w", p.id, err))
			continue
		}
		switch {
		case info.State == "stopping" || info.State == "stopped" || info.State == "shutting-down" || info.State == "terminated":
			unhealthy[p.id] = finding{cause: stoppedCause, gone: true}
			continue
		case p.goneOnly:
			continue
		case info.State == "running" && !info.ProcessAlive:
			// Running but not answering: AWS's impaired status check,
			// which its documentation does not exempt from the policy.
			unhealthy[p.id] = finding{cause: stoppedCause}
			continue
		}
		if !p.elb || s.cfg.Targets == nil {
			continue
		}
		for _, tg := range p.targets {
			healthy, known, err := s.cfg.Targets.Health(ctx, tg, p.id)
			if err != nil {
				errs = append(errs, fmt.Errorf("checking target %s in %s: %w", p.id, tg, err))
				continue
			}
			if known && !healthy {
				unhealthy[p.id] = finding{cause: "an ELB system health check failure"}
				break
			}
		}
	}
	if len(unhealthy) == 0 {
		return errors.Join(errs...)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if g = s.st.Groups[name]; g == nil || g.Deleting {
		return errors.Join(errs...)
	}
	now = s.now()
	for _, id := range slices.Sorted(maps.Keys(unhealthy)) {
		i, f := g.Instances[id], unhealthy[id]
		if i == nil || i.State != stateInService {
			continue
		}
		i.Health = healthUnhealthy
		cause := fmt.Sprintf("At %s an instance was taken out of service in response to %s.", stamp(now), f.cause)
		if g.Maintenance != nil && !f.gone {
			if i.ReplaceCause == "" {
				s.log.Info("launching a replacement before terminating unhealthy instance", "group", name, "instance-id", id, "cause", f.cause)
				i.ReplaceCause = cause
			}
			continue
		}
		s.log.Info("replacing unhealthy instance", "group", name, "instance-id", id, "cause", f.cause)
		s.beginTerminationLocked(g, i, now, cause)
	}
	errs = append(errs, s.saveLocked())
	return errors.Join(errs...)
}

// reconcileCapacity launches the shortfall, spread over the group's zones,
// or picks the surplus for termination. Instances awaiting a replacement
// are not counted (group.counts), so their replacements are launched here
// like any other instance, lifecycle hooks included.
//
// Launches go in batches of at most launchBatchSize, one batch per pass,
// and a full batch that leaves the group short makes the next wait
// LaunchBatchDelay: AWS launches a large group that way, so a consumer of
// a group of more than ten must cope with instances arriving in waves.
// The wait is a time to compare with the clock, not a sleep, so other
// groups and the lifecycle steps of the launched instances (hooks,
// registration) carry on meanwhile.
func (s *Service) reconcileCapacity(ctx context.Context, name string) error {
	s.mu.Lock()
	g := s.st.Groups[name]
	if g == nil || g.Deleting {
		s.mu.Unlock()
		return nil
	}
	now := s.now()
	have, want := g.capacity(), g.Desired
	if have > want {
		defer s.mu.Unlock()
		for _, v := range selectVictims(g, have-want) {
			cause := fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.  At %s instance %s was selected for termination.", stamp(now), have, want, stamp(now), v.ID)
			s.beginTerminationLocked(g, v, now, cause)
		}
		return s.saveLocked()
	}
	if until, ok := s.nextBatch[name]; ok {
		if now.Before(until) {
			s.mu.Unlock()
			return nil
		}
		delete(s.nextBatch, name)
	}
	s.mu.Unlock()

	// Every launch of this batch gives the same cause, the capacity
	// change as a whole as it stood when the batch began, as AWS does; a
	// replacement gives its own.
	from := have
	var errs []error
	// A failed launch is an attempt too (it is an activity of its own), so
	// a batch never makes more than launchBatchSize of either.
	attempts := 0
	for ; have < want && attempts < launchBatchSize; attempts++ {
		req, cause, ok, err := s.nextLaunch(g)
		if !ok {
			break
		}
		if cause == "" {
			cause = launchCause(s.now(), from, want)
		}
		if err != nil {
			errs = append(errs, s.launchFailed(g, req.Zone, cause, err))
			continue
		}
		info, err := s.cfg.Instances.Launch(ctx, req)
		if err != nil {
			errs = append(errs, s.launchFailed(g, req.Zone, cause, err))
			continue // another zone may do
		}
		if err := s.launched(ctx, g, req, info, cause); err != nil {
			errs = append(errs, err)
		}
		have++
	}
	if attempts == launchBatchSize && have < want {
		s.mu.Lock()
		if s.st.Groups[name] == g {
			s.nextBatch[name] = s.now().Add(s.cfg.LaunchBatchDelay)
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// launchBatchSize is the most launches one batch (and so one controller
// pass) makes for a group. AWS is seen to launch a large scale-out ten
// instances at a time, though its documentation does not say so; doing
// the same here makes consumers meet the waves before production does.
const launchBatchSize = 10

// nextLaunch plans one launch for g into its least-used zone that is not
// backing off, if g still exists, still needs one and, while instances
// await replacement, has room for it. The cause is the replacement's when
// this launch replaces one, "" otherwise. An error (with ok) is a launch
// that fails before EC2 is asked: the group's launch configuration is
// unusable.
func (s *Service) nextLaunch(g *group) (req LaunchRequest, cause string, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Groups[g.Name] != g || g.Deleting || g.capacity() >= g.Desired {
		return LaunchRequest{}, "", false, nil
	}
	now := s.now()
	if g.replacing() {
		if g.provisioned() >= g.launchCeiling() {
			return LaunchRequest{}, "", false, nil
		}
		// Launches up to the desired capacity, counting the instances
		// still serving, are scale-out; the rest replace.
		if g.provisioned() >= g.Desired {
			cause = g.replacementCause(now)
		}
	}
	perZone := map[string]int{}
	for _, i := range g.Instances {
		if g.counts(i) {
			perZone[i.Zone]++
		}
	}
	zone := ""
	for _, z := range g.Zones {
		if until, ok := s.launchBackoff[g.Name+"\x00"+z]; ok && now.Before(until) {
			continue
		}
		if zone == "" || perZone[z] < perZone[zone] {
			zone = z
		}
	}
	if zone == "" {
		return LaunchRequest{}, "", false, nil
	}
	req = LaunchRequest{
		LaunchTemplateID:   g.LaunchTemplate.ID,
		LaunchTemplateName: g.LaunchTemplate.Name,
		Version:            g.LaunchTemplate.Version,
		Zone:               zone,
		SubnetID:           g.Subnets[zone],
		Tags:               g.propagatedTags(),
	}
	if g.LaunchConfiguration != "" {
		req.Configuration, err = s.configurationLaunchLocked(g.LaunchConfiguration)
	}
	return req, cause, true, err
}

func launchCause(now time.Time, from, want int) string {
	return fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.", stamp(now), from, want)
}

// launchFailed records a launch EC2 refused and rests its zone.
func (s *Service) launchFailed(g *group, zone, cause string, launchErr error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.launchBackoff[g.Name+"\x00"+zone] = now.Add(s.cfg.LaunchRetryDelay)
	msg := launchErr.Error() + ". Launching EC2 instance failed."
	a := s.newActivityLocked(g, now, "Launching a new EC2 instance.  Status Reason: "+msg, cause, zone, activityFailed, 100)
	a.finish(now, activityFailed, msg)
	s.queueLaunchResultLocked(g, nil, a, zone, false, now)
	s.log.Warn("launch failed", "group", g.Name, "zone", zone, "err", launchErr)
	if err := s.saveLocked(); err != nil {
		return err
	}
	return nil
}

// launched adds a new instance to g, or terminates it again when g was
// deleted while it launched.
func (s *Service) launched(ctx context.Context, g *group, req LaunchRequest, info InstanceInfo, cause string) error {
	s.mu.Lock()
	if s.st.Groups[g.Name] != g || g.Deleting {
		s.mu.Unlock()
		if err := s.cfg.Instances.Terminate(ctx, info.ID); err != nil && !errors.Is(err, ErrInstanceNotFound) {
			return fmt.Errorf("terminating instance %s launched for a deleted group: %w", info.ID, err)
		}
		return nil
	}
	defer s.mu.Unlock()
	now := s.now()
	zone := info.Zone
	if zone == "" {
		zone = req.Zone
	}
	launchTime := info.LaunchTime
	if launchTime.IsZero() {
		launchTime = now
	}
	a := s.newActivityLocked(g, now, "Launching a new EC2 instance: "+info.ID, cause, zone, activityInProgress, 20)
	// The template is the one the instance was launched from, not the
	// group's now: an UpdateAutoScalingGroup during the launch changes
	// only later launches, and scale-in's OldestLaunchTemplate and
	// handover's own bookkeeping read this version.
	lt := launchTemplate{ID: req.LaunchTemplateID, Name: req.LaunchTemplateName, Version: req.Version}
	i := &instance{
		ID: info.ID, Zone: zone, State: statePending, Health: healthHealthy,
		LaunchTemplate: lt, Protected: g.NewProtected,
		LaunchTime: launchTime.UTC(), ActivityID: a.ID,
	}
	if req.Configuration != nil {
		i.LaunchTemplate, i.LaunchConfiguration = launchTemplate{}, req.Configuration.Name
	}
	g.Instances[info.ID] = i
	delete(s.launchBackoff, g.Name+"\x00"+zone)
	return s.saveLocked()
}
