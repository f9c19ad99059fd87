package elbv2

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Load balancers: create (idempotent), describe with paging, delete, and
// their attributes.

type createLBInput struct {
	Name           string
	Scheme         string
	Type           string
	IPAddressType  string
	Subnets        []string
	SecurityGroups []string
	Tags           []tag
}

func (s *Service) createLoadBalancer(_ context.Context, in createLBInput) (loadBalancer, error) {
	if in.Scheme == "" {
		in.Scheme = "internet-facing"
	}
	if in.Type == "" {
		in.Type = "application"
	}
	if in.IPAddressType == "" {
		in.IPAddressType = "ipv4"
	}
	switch {
	case !nameRE.MatchString(in.Name) || strings.HasPrefix(in.Name, "internal-"):
		return loadBalancer{}, errValidation("Load balancer name '%s' must be 1-32 letters, digits or hyphens, must not begin or end with a hyphen, and must not begin with 'internal-'", in.Name)
	case in.Type != "application":
		return loadBalancer{}, errValidation("Load balancer type '%s' is not supported by the local cloud; use 'application'", in.Type)
	case in.Scheme != "internet-facing" && in.Scheme != "internal":
		return loadBalancer{}, errValidation("Scheme '%s' must be 'internet-facing' or 'internal'", in.Scheme)
	case in.IPAddressType != "ipv4" && in.IPAddressType != "dualstack":
		return loadBalancer{}, errValidation("IP address type '%s' must be 'ipv4' or 'dualstack'", in.IPAddressType)
	}
	var out loadBalancer
	err := s.mutate(func() error {
		for _, lb := range s.lbs {
			if lb.Name != in.Name {
				continue
			}
			// Creating is idempotent: the same settings return the same
			// load balancer.
			if lb.Scheme == in.Scheme && lb.Type == in.Type && lb.IPAddressType == in.IPAddressType {
				out = copyLB(lb)
				return nil
			}
			return awsproto.Errorf("DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists, but with different settings", in.Name)
		}
		id := newID()
		lb := &loadBalancer{
			ARN: s.arn("loadbalancer/app/" + in.Name + "/" + id), Name: in.Name, ID: id,
			Scheme: in.Scheme, Type: in.Type, IPAddressType: in.IPAddressType,
			Subnets: in.Subnets, SecurityGroups: in.SecurityGroups, Tags: in.Tags,
			Attributes: defaultLBAttributes(), Created: s.clk.Now().UTC(), Seq: s.nextSeqLocked(),
		}
		s.lbs[lb.ARN] = lb
		out = copyLB(lb)
		s.log.Info("load balancer created", "name", lb.Name, "arn", lb.ARN)
		return nil
	})
	return out, err
}

func copyLB(lb *loadBalancer) loadBalancer {
	c := *lb
	c.Attributes = maps.Clone(lb.Attributes)
	return c
}

// lbState is what DescribeLoadBalancers reports for lb now.
func (s *Service) lbState(lb loadBalancer) string {
	if s.clk.Now().Before(lb.Created.Add(s.cfg.ProvisioningTime)) {
		return "provisioning"
	}
	return "active"
}

func (s *Service) describeLoadBalancers(_ context.Context, arns, names []string, marker string, pageSize int) (page[loadBalancer], error) {
	if len(arns) > 0 && len(names) > 0 {
		return page[loadBalancer]{}, errValidation("Load balancer names and load balancer ARNs cannot be specified at the same time")
	}
	s.mu.Lock()
	var out []loadBalancer
	switch {
	case len(arns) > 0:
		for _, a := range uniq(arns) {
			lb := s.lbs[a]
			if lb == nil {
				s.mu.Unlock()
				return page[loadBalancer]{}, errLoadBalancerNotFound()
			}
			out = append(out, copyLB(lb))
		}
	case len(names) > 0:
		for _, n := range uniq(names) {
			lb := s.lbByNameLocked(n)
			if lb == nil {
				s.mu.Unlock()
				return page[loadBalancer]{}, awsproto.Errorf("LoadBalancerNotFound", "Load balancers '[%s]' not found", n)
			}
			out = append(out, copyLB(lb))
		}
	default:
		for _, lb := range s.lbs {
			out = append(out, copyLB(lb))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b loadBalancer) int { return cmp.Compare(a.Seq, b.Seq) })
	return paginate(out, func(lb loadBalancer) int64 { return lb.Seq }, marker, pageSize)
}

func (s *Service) lbByNameLocked(name string) *loadBalancer {
	for _, lb := range s.lbs {
		if lb.Name == name {
			return lb
		}
	}
	return nil
}

// deleteLoadBalancer deletes lb and its listeners. A missing load balancer
// is not an error, as on AWS.
func (s *Service) deleteLoadBalancer(_ context.Context, arn string) error {
	var closing []*http.Server
	err := s.mutate(func() error {
		lb := s.lbs[arn]
		if lb == nil {
			return nil
		}
		if lb.Attributes[attrDeletionProtection] == "true" {
			return awsproto.Errorf("OperationNotPermitted", "Load balancer '%s' cannot be deleted because deletion protection is enabled", arn)
		}
		for la, l := range s.listeners {
			if l.LoadBalancerARN == arn {
				delete(s.listeners, la)
				closing = append(closing, l.srv)
				l.srv = nil
			}
		}
		delete(s.lbs, arn)
		s.reconcileHealthLocked()
		s.log.Info("load balancer deleted", "name", lb.Name, "arn", arn)
		return nil
	})
	closeServers(closing)
	return err
}

func (s *Service) lbAttributes(_ context.Context, arn string) ([]kv, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lb := s.lbs[arn]
	if lb == nil {
		return nil, errLoadBalancerNotFound()
	}
	return sortedAttributes(lb.Attributes), nil
}

func (s *Service) modifyLBAttributes(ctx context.Context, arn string, changes []kv) ([]kv, error) {
	s.mu.Lock()
	lb := s.lbs[arn]
	if lb == nil {
		s.mu.Unlock()
		return nil, errLoadBalancerNotFound()
	}
	next, err := applyAttributes(lbAttrSpecs, lb.Attributes, changes, "Load balancer")
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Like ELB, prove the bucket takes objects when logging is set up: a
	// test file under the prefix.
	touchesLogs := slices.ContainsFunc(changes, func(c kv) bool { return strings.HasPrefix(c.Key, "access_logs.") })
	if touchesLogs && next[attrAccessLogsEnabled] == "true" {
		if err := s.checkLogBucket(ctx, next[attrAccessLogsBucket], next[attrAccessLogsPrefix]); err != nil {
			return nil, err
		}
	}
	var out []kv
	err = s.mutate(func() error {
		lb := s.lbs[arn]
		if lb == nil {
			return errLoadBalancerNotFound()
		}
		// Re-apply to the current attributes: a concurrent modify of
		// other keys is kept.
		merged, err := applyAttributes(lbAttrSpecs, lb.Attributes, changes, "Load balancer")
		if err != nil {
			return err
		}
		lb.Attributes = merged
		out = sortedAttributes(merged)
		return nil
	})
	return out, err
}
