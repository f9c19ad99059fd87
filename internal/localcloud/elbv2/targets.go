package elbv2

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"
)

// Targets: registration, deregistration with draining, and the health the
// API and the Auto Scaling service read.

// targetRef names a target; Port 0 means "the group's port" when
// registering and "every port" when deregistering.
type targetRef struct {
	ID   string
	Port int
}

// inUseLocked reports whether a listener forwards to tg: only then does ALB
// health-check its targets.
func (s *Service) inUseLocked(tgARN string) bool {
	for _, l := range s.listeners {
		if l.TargetGroupARN == tgARN {
			return true
		}
	}
	return false
}

// validateTargets checks refs against EC2 (instance targets) or IP syntax
// (ip targets), outside s.mu since it may call the EC2 service.
func (s *Service) validateTargets(ctx context.Context, targetType string, refs []targetRef, needRunning bool) error {
	var invalid, stopped []string
	for _, r := range refs {
		if r.ID == "" {
			return errValidation("A target ID must be specified")
		}
		if r.Port != 0 && (r.Port < 1 || r.Port > 65535) {
			return errValidation("Port %d of target '%s' must be between 1 and 65535", r.Port, r.ID)
		}
		if targetType == "ip" {
			if ip := net.ParseIP(r.ID); ip == nil || ip.To4() == nil {
				invalid = append(invalid, r.ID)
			}
			continue
		}
		_, running, err := s.cfg.Instances.PrivateIP(ctx, r.ID)
		switch {
		case err != nil:
			invalid = append(invalid, r.ID)
		case !running && needRunning:
			stopped = append(stopped, r.ID)
		}
	}
	if len(invalid) > 0 {
		if targetType == "ip" {
			return errInvalidTarget("The following targets are not valid IPv4 addresses: %s", quoteList(invalid))
		}
		return errInvalidTarget("The following targets are not valid instances: %s", quoteList(invalid))
	}
	if len(stopped) > 0 {
		return errInvalidTarget("The following targets are not in a running state and cannot be registered: %s", quoteList(stopped))
	}
	return nil
}

func (s *Service) tgTargetType(arn string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgs[arn]
	if tg == nil {
		return "", errTargetGroupNotFound()
	}
	return tg.TargetType, nil
}

// registerTargets registers refs; registering a registered target is a
// no-op, and re-registering a draining one brings it back as new.
func (s *Service) registerTargets(ctx context.Context, tgARN string, refs []targetRef) error {
	if len(refs) == 0 {
		return errValidation("At least one target must be specified")
	}
	typ, err := s.tgTargetType(tgARN)
	if err != nil {
		return err
	}
	if err := s.validateTargets(ctx, typ, refs, true); err != nil {
		return err
	}
	return s.mutate(func() error {
		tg := s.tgs[tgARN]
		if tg == nil {
			return errTargetGroupNotFound()
		}
		now := s.clk.Now()
		for _, r := range refs {
			port := r.Port
			if port == 0 {
				port = tg.Port
			}
			if t := tg.find(r.ID, port); t != nil {
				if t.draining() {
					s.stopHealthLocked(t)
					t.DrainUntil = time.Time{}
					t.reset()
					s.log.Info("target re-registered while draining", "target-group", tg.Name, "target", r.ID, "port", port)
				}
				continue
			}
			tg.Targets = append(tg.Targets, newTarget(r.ID, port, s.nextSeqLocked(), now))
			s.log.Info("target registered", "target-group", tg.Name, "target", r.ID, "port", port)
		}
		s.reconcileHealthLocked()
		return nil
	})
}

// deregisterTargets starts draining refs. Unknown targets are ignored, as
// on AWS.
func (s *Service) deregisterTargets(ctx context.Context, tgARN string, refs []targetRef) error {
	if len(refs) == 0 {
		return errValidation("At least one target must be specified")
	}
	for _, r := range refs {
		if r.ID == "" {
			return errValidation("A target ID must be specified")
		}
	}
	return s.mutate(func() error {
		tg := s.tgs[tgARN]
		if tg == nil {
			return errTargetGroupNotFound()
		}
		until := s.clk.Now().Add(tg.deregistrationDelay())
		for _, t := range tg.Targets {
			if t.draining() || !matches(t, refs) {
				continue
			}
			s.stopHealthLocked(t)
			t.DrainUntil = until
			t.state, t.reason, t.description = stateDraining, reasonDeregistrationInProgress, "Target deregistration is in progress"
			s.log.Info("target draining", "target-group", tg.Name, "target", t.ID, "port", t.Port, "until", until)
		}
		s.sweepLocked()
		return nil
	})
}

func matches(t *target, refs []targetRef) bool {
	return slices.ContainsFunc(refs, func(r targetRef) bool {
		return r.ID == t.ID && (r.Port == 0 || r.Port == t.Port)
	})
}

// targetHealth is one DescribeTargetHealth entry.
type targetHealth struct {
	ID              string
	Port            int
	HealthCheckPort string
	State           string
	Reason          string
	Description     string
}

func (s *Service) describeTargetHealth(ctx context.Context, tgARN string, refs []targetRef) ([]targetHealth, error) {
	typ, err := s.tgTargetType(tgARN)
	if err != nil {
		return nil, err
	}
	if len(refs) > 0 {
		if err := s.validateTargets(ctx, typ, refs, false); err != nil {
			return nil, err
		}
	}
	s.sweepAndPersist()
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgs[tgARN]
	if tg == nil {
		return nil, errTargetGroupNotFound()
	}
	inUse := s.inUseLocked(tgARN)
	var out []targetHealth
	if len(refs) == 0 {
		for _, t := range tg.Targets {
			out = append(out, s.healthOfLocked(tg, t, inUse))
		}
		return out, nil
	}
	for _, r := range refs {
		found := false
		for _, t := range tg.Targets {
			if t.ID == r.ID && (r.Port == 0 || r.Port == t.Port) {
				out = append(out, s.healthOfLocked(tg, t, inUse))
				found = true
			}
		}
		if !found {
			port := r.Port
			if port == 0 {
				port = tg.Port
			}
			out = append(out, targetHealth{
				ID: r.ID, Port: port, HealthCheckPort: hcPort(tg.HC, port),
				State: stateUnused, Reason: reasonNotRegistered, Description: "Target is not registered to the target group",
			})
		}
	}
	return out, nil
}

func hcPort(hc healthCheck, trafficPort int) string {
	if hc.Port == "traffic-port" {
		return strconv.Itoa(trafficPort)
	}
	return hc.Port
}

func (s *Service) healthOfLocked(tg *targetGroup, t *target, inUse bool) targetHealth {
	h := targetHealth{ID: t.ID, Port: t.Port, HealthCheckPort: hcPort(tg.HC, t.Port), State: t.state, Reason: t.reason, Description: t.description}
	if !inUse && !t.draining() {
		h.State, h.Reason, h.Description = stateUnused, reasonNotInUse, "Target group is not configured to receive traffic from the load balancer"
	}
	return h
}

// sweepAndPersist removes drained targets before an answer is read, so
// the answer does not depend on when the janitor last ran.
func (s *Service) sweepAndPersist() {
	s.mu.Lock()
	var snap *snapshot
	if s.sweepLocked() {
		snap = s.snapshotLocked()
	}
	s.mu.Unlock()
	if err := s.persist(snap); err != nil {
		s.log.Warn("persisting after drain", "error", err)
	}
}

// reconcileHealthLocked runs a health loop for exactly the targets that
// need one: registered, not draining, in a target group a listener uses,
// once the service has started.
func (s *Service) reconcileHealthLocked() {
	running := s.runCtx != nil && s.runCtx.Err() == nil && !s.closed
	for _, tg := range s.tgs {
		inUse := s.inUseLocked(tg.ARN)
		for _, t := range tg.Targets {
			want := running && inUse && !t.draining()
			switch {
			case want && t.stopHealth == nil:
				ctx, cancel := context.WithCancel(s.runCtx)
				t.stopHealth = cancel
				s.loops.Add(1)
				go s.healthLoop(ctx, tg.ARN, t)
			case !want && t.stopHealth != nil:
				s.stopHealthLocked(t)
			}
			// A group taken out of use starts over when it is used again.
			if !inUse && !t.draining() {
				t.resetHealth()
			}
		}
	}
}

func (s *Service) stopHealthLocked(t *target) {
	if t.stopHealth != nil {
		t.stopHealth()
		t.stopHealth = nil
	}
}

// Register registers an instance with a target group on the group's port,
// for the Auto Scaling service. Registering a registered instance is a
// no-op, so it is safe to repeat. It returns a TargetGroupNotFound error
// (IsTargetGroupNotFound) for an unknown group and an InvalidTarget error
// (IsInvalidTarget) for an unknown or stopped instance.
func (s *Service) Register(ctx context.Context, targetGroupARN, instanceID string) error {
	if err := s.inject(ctx, "RegisterTargets"); err != nil {
		return err
	}
	return s.registerTargets(ctx, targetGroupARN, []targetRef{{ID: instanceID}})
}

// Deregister starts draining every registration of an instance with a
// target group, for the Auto Scaling service. An instance that is not
// registered is not an error, so it is safe to repeat. It returns a
// TargetGroupNotFound error for an unknown group.
func (s *Service) Deregister(ctx context.Context, targetGroupARN, instanceID string) error {
	if err := s.inject(ctx, "DeregisterTargets"); err != nil {
		return err
	}
	return s.deregisterTargets(ctx, targetGroupARN, []targetRef{{ID: instanceID}})
}

// Health reports the load balancer's verdict on an instance, for Auto
// Scaling's ELB health check. known is false while there is no verdict:
// the instance is not registered (or is draining), its health checks are
// still in their initial phase, the group is unused by any listener, or
// the instance is not running. healthy is true only when known and every
// registration of the instance is healthy. It is read-only; an unknown
// group is a TargetGroupNotFound error.
func (s *Service) Health(ctx context.Context, targetGroupARN, instanceID string) (healthy, known bool, err error) {
	if err := s.inject(ctx, "DescribeTargetHealth"); err != nil {
		return false, false, err
	}
	s.sweepAndPersist()
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgs[targetGroupARN]
	if tg == nil {
		return false, false, errTargetGroupNotFound()
	}
	if !s.inUseLocked(targetGroupARN) {
		return false, false, nil
	}
	seen, allHealthy := false, true
	for _, t := range tg.Targets {
		if t.ID != instanceID || t.draining() {
			continue
		}
		seen = true
		switch t.state {
		case stateHealthy:
		case stateUnhealthy:
			allHealthy = false
		default:
			return false, false, nil
		}
	}
	if !seen {
		return false, false, nil
	}
	return allHealthy, true, nil
}

// Ready reports whether the load balancer would route to the instance: it
// is registered and healthy, or there is nothing to wait for (the group
// has no listener, or does not know the instance). Auto Scaling asks it
// before retiring an instance whose replacement this is. An unknown group
// is a TargetGroupNotFound error.
func (s *Service) Ready(ctx context.Context, targetGroupARN, instanceID string) (bool, error) {
	if err := s.inject(ctx, "DescribeTargetHealth"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgs[targetGroupARN]
	if tg == nil {
		return false, errTargetGroupNotFound()
	}
	if !s.inUseLocked(targetGroupARN) {
		return true, nil
	}
	for _, t := range tg.Targets {
		if t.ID == instanceID && !t.draining() && t.state != stateHealthy {
			return false, nil
		}
	}
	return true, nil
}
