package elbv2

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Target groups: create (idempotent) with ALB's health check defaults,
// describe, delete, and their attributes.

// healthCheckInput carries CreateTargetGroup's optional health check
// fields; nil means "not given".
type healthCheckInput struct {
	Enabled   *bool
	Protocol  string
	Port      string
	Path      string
	Interval  *int
	Timeout   *int
	Healthy   *int
	Unhealthy *int
	Matcher   string
}

type createTGInput struct {
	Name       string
	Protocol   string
	Port       *int
	TargetType string
	VpcID      string
	HC         healthCheckInput
	Tags       []tag
}

// resolveHealthCheck applies ALB's defaults to in and validates it. The
// interval may go down to 1 s (AWS: 5 s) so tests driving the API need
// not wait.
func resolveHealthCheck(in healthCheckInput) (healthCheck, error) {
	hc := healthCheck{Enabled: true, Protocol: "HTTP", Port: "traffic-port", Path: "/", Interval: 30, Timeout: 5, Healthy: 5, Unhealthy: 2, Matcher: "200"}
	if in.Enabled != nil {
		hc.Enabled = *in.Enabled
	}
	if in.Protocol != "" {
		hc.Protocol = in.Protocol
	}
	if in.Port != "" {
		hc.Port = in.Port
	}
	if in.Path != "" {
		hc.Path = in.Path
	}
	for _, f := range []struct {
		dst *int
		src *int
	}{{&hc.Interval, in.Interval}, {&hc.Timeout, in.Timeout}, {&hc.Healthy, in.Healthy}, {&hc.Unhealthy, in.Unhealthy}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if in.Matcher != "" {
		hc.Matcher = in.Matcher
	}
	switch {
	case !hc.Enabled:
		return hc, errValidation("Health checks cannot be disabled for target groups with target type 'instance' or 'ip'")
	case hc.Protocol != "HTTP":
		return hc, errValidation("Health check protocol '%s' is not supported by the local cloud; use HTTP", hc.Protocol)
	case hc.Port != "traffic-port" && !validPort(hc.Port):
		return hc, errValidation("Health check port '%s' must be 'traffic-port' or a port between 1 and 65535", hc.Port)
	case !strings.HasPrefix(hc.Path, "/") || len(hc.Path) > 1024:
		return hc, errValidation("Health check path '%s' must begin with '/' and be at most 1024 characters", hc.Path)
	case hc.Interval < 1 || hc.Interval > 300:
		return hc, errValidation("Health check interval must be between 1 and 300 seconds")
	case hc.Timeout < 1 || hc.Timeout > 120:
		return hc, errValidation("Health check timeout must be between 1 and 120 seconds")
	case in.Interval != nil && in.Timeout != nil && hc.Timeout >= hc.Interval:
		return hc, errValidation("Health check interval must be greater than the timeout.")
	case hc.Healthy < 2 || hc.Healthy > 10:
		return hc, errValidation("Healthy threshold count must be between 2 and 10")
	case hc.Unhealthy < 2 || hc.Unhealthy > 10:
		return hc, errValidation("Unhealthy threshold count must be between 2 and 10")
	}
	if _, err := parseMatcher(hc.Matcher); err != nil {
		return hc, err
	}
	// A short interval with the default timeout: shrink the timeout rather
	// than refuse what the caller never set.
	if hc.Timeout >= hc.Interval {
		hc.Timeout = max(1, hc.Interval-1)
	}
	return hc, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

func (s *Service) createTargetGroup(_ context.Context, in createTGInput) (targetGroup, error) {
	if in.TargetType == "" {
		in.TargetType = "instance"
	}
	if !nameRE.MatchString(in.Name) {
		return targetGroup{}, errValidation("Target group name '%s' must be 1-32 letters, digits or hyphens and must not begin or end with a hyphen", in.Name)
	}
	if in.TargetType != "instance" && in.TargetType != "ip" {
		return targetGroup{}, errValidation("Target type '%s' is not supported by the local cloud; use 'instance' or 'ip'", in.TargetType)
	}
	if in.Protocol == "" {
		return targetGroup{}, errValidation("A protocol must be specified")
	}
	if in.Protocol != "HTTP" {
		return targetGroup{}, awsproto.Errorf("UnsupportedProtocol", "Protocol '%s' is not supported by the local cloud; use HTTP", in.Protocol)
	}
	if in.Port == nil {
		return targetGroup{}, errValidation("A port must be specified")
	}
	if *in.Port < 1 || *in.Port > 65535 {
		return targetGroup{}, errValidation("Port must be between 1 and 65535")
	}
	hc, err := resolveHealthCheck(in.HC)
	if err != nil {
		return targetGroup{}, err
	}
	var out targetGroup
	err = s.mutate(func() error {
		for _, tg := range s.tgs {
			if tg.Name != in.Name {
				continue
			}
			if tg.Protocol == in.Protocol && tg.Port == *in.Port && tg.TargetType == in.TargetType && tg.HC == hc {
				out = copyTG(tg)
				return nil
			}
			return awsproto.Errorf("DuplicateTargetGroupName", "A target group with the same name '%s' exists, but with different settings", in.Name)
		}
		id := newID()
		tg := &targetGroup{
			ARN: s.arn("targetgroup/" + in.Name + "/" + id), Name: in.Name, ID: id,
			Protocol: in.Protocol, Port: *in.Port, TargetType: in.TargetType, VpcID: in.VpcID,
			HC: hc, Tags: in.Tags, Attributes: defaultTGAttributes(), Created: s.clk.Now().UTC(), Seq: s.nextSeqLocked(),
		}
		s.tgs[tg.ARN] = tg
		out = copyTG(tg)
		s.log.Info("target group created", "name", tg.Name, "arn", tg.ARN)
		return nil
	})
	return out, err
}

// copyTG copies tg without its targets.
func copyTG(tg *targetGroup) targetGroup {
	c := *tg
	c.Targets = nil
	c.Attributes = maps.Clone(tg.Attributes)
	return c
}

// tgView is a target group with the load balancers that use it.
type tgView struct {
	targetGroup
	LoadBalancerARNs []string
}

func (s *Service) tgLoadBalancersLocked(arn string) []string {
	var out []string
	for _, l := range s.listeners {
		if l.TargetGroupARN == arn && !slices.Contains(out, l.LoadBalancerARN) {
			out = append(out, l.LoadBalancerARN)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Service) describeTargetGroups(_ context.Context, lbARN string, arns, names []string, marker string, pageSize int) (page[tgView], error) {
	s.mu.Lock()
	var picked []*targetGroup
	var err error
	switch {
	case lbARN != "" && (len(arns) > 0 || len(names) > 0), len(arns) > 0 && len(names) > 0:
		err = errValidation("Only one of load balancer ARN, target group ARNs or names can be specified")
	case lbARN != "":
		if s.lbs[lbARN] == nil {
			err = errLoadBalancerNotFound()
			break
		}
		for _, tg := range s.tgs {
			if slices.Contains(s.tgLoadBalancersLocked(tg.ARN), lbARN) {
				picked = append(picked, tg)
			}
		}
	case len(arns) > 0:
		for _, a := range uniq(arns) {
			tg := s.tgs[a]
			if tg == nil {
				err = errTargetGroupNotFound()
				break
			}
			picked = append(picked, tg)
		}
	case len(names) > 0:
		for _, n := range uniq(names) {
			var found *targetGroup
			for _, tg := range s.tgs {
				if tg.Name == n {
					found = tg
				}
			}
			if found == nil {
				err = awsproto.Errorf("TargetGroupNotFound", "Target groups '[%s]' not found", n)
				break
			}
			picked = append(picked, found)
		}
	default:
		for _, tg := range s.tgs {
			picked = append(picked, tg)
		}
	}
	var out []tgView
	if err == nil {
		for _, tg := range picked {
			out = append(out, tgView{copyTG(tg), s.tgLoadBalancersLocked(tg.ARN)})
		}
	}
	s.mu.Unlock()
	if err != nil {
		return page[tgView]{}, err
	}
	slices.SortFunc(out, func(a, b tgView) int { return cmp.Compare(a.Seq, b.Seq) })
	return paginate(out, func(v tgView) int64 { return v.Seq }, marker, pageSize)
}

// deleteTargetGroup deletes an unused target group; a missing one is not
// an error.
func (s *Service) deleteTargetGroup(_ context.Context, arn string) error {
	return s.mutate(func() error {
		tg := s.tgs[arn]
		if tg == nil {
			return nil
		}
		if len(s.tgLoadBalancersLocked(arn)) > 0 {
			return awsproto.Errorf("ResourceInUse", "Target group '%s' is currently in use by a listener or a rule", arn)
		}
		for _, t := range tg.Targets {
			s.stopHealthLocked(t)
			t.leave()
		}
		delete(s.tgs, arn)
		s.log.Info("target group deleted", "name", tg.Name, "arn", arn)
		return nil
	})
}

func (s *Service) tgAttributes(_ context.Context, arn string) ([]kv, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgs[arn]
	if tg == nil {
		return nil, errTargetGroupNotFound()
	}
	return sortedAttributes(tg.Attributes), nil
}

func (s *Service) modifyTGAttributes(_ context.Context, arn string, changes []kv) ([]kv, error) {
	var out []kv
	err := s.mutate(func() error {
		tg := s.tgs[arn]
		if tg == nil {
			return errTargetGroupNotFound()
		}
		next, err := applyAttributes(tgAttrSpecs, tg.Attributes, changes, "Target group")
		if err != nil {
			return err
		}
		tg.Attributes = next
		out = sortedAttributes(next)
		return nil
	})
	return out, err
}
