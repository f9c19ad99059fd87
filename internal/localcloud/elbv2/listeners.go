package elbv2

import (
	"cmp"
	"context"
	"net/http"
	"slices"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Listeners: create (idempotent; binds a real port, see proxy.go),
// describe, delete.

type createListenerInput struct {
	LoadBalancerARN string
	Protocol        string
	Port            *int
	TargetGroupARN  string // the one forward target
	Tags            []tag
}

func (s *Service) createListener(_ context.Context, in createListenerInput) (listener, error) {
	if in.Protocol == "" {
		in.Protocol = "HTTP"
	}
	if in.Protocol != "HTTP" {
		return listener{}, awsproto.Errorf("UnsupportedProtocol", "Protocol '%s' is not supported by the local cloud; use HTTP", in.Protocol)
	}
	if in.Port == nil {
		return listener{}, errValidation("A listener port must be specified")
	}
	if *in.Port < 1 || *in.Port > 65535 {
		return listener{}, errValidation("Listener port must be between 1 and 65535")
	}
	var out listener
	err := s.mutate(func() error {
		lb := s.lbs[in.LoadBalancerARN]
		if lb == nil {
			return errLoadBalancerNotFound()
		}
		tg := s.tgs[in.TargetGroupARN]
		if tg == nil {
			return errTargetGroupNotFound()
		}
		for _, other := range s.tgLoadBalancersLocked(tg.ARN) {
			if other != lb.ARN {
				return awsproto.Errorf("TargetGroupAssociationLimit", "The following target groups cannot be associated with more than one load balancer: '%s'", tg.ARN)
			}
		}
		for _, l := range s.listeners {
			if l.LoadBalancerARN != lb.ARN || l.RequestedPort != *in.Port {
				continue
			}
			if l.Protocol == in.Protocol && l.TargetGroupARN == tg.ARN {
				out = *l
				return nil
			}
			return awsproto.Errorf("DuplicateListener", "A listener already exists on port %d of load balancer '%s'", *in.Port, lb.ARN)
		}
		id := newID()
		l := &listener{
			ARN: s.arn("listener/app/" + lb.Name + "/" + lb.ID + "/" + id), ID: id,
			LoadBalancerARN: lb.ARN, Protocol: in.Protocol, RequestedPort: *in.Port,
			TargetGroupARN: tg.ARN, Tags: in.Tags, Seq: s.nextSeqLocked(),
		}
		if err := s.openListenerLocked(l, *in.Port); err != nil {
			return awsproto.Internal("opening a listener for port %d: %v", *in.Port, err)
		}
		s.listeners[l.ARN] = l
		s.reconcileHealthLocked()
		out = *l
		s.log.Info("listener created", "load-balancer", lb.Name, "requested-port", l.RequestedPort, "port", l.Port)
		return nil
	})
	out.srv = nil
	return out, err
}

func (s *Service) describeListeners(_ context.Context, lbARN string, arns []string, marker string, pageSize int) (page[listener], error) {
	if (lbARN == "") == (len(arns) == 0) {
		return page[listener]{}, errValidation("Exactly one of load balancer ARN or listener ARNs must be specified")
	}
	s.mu.Lock()
	var out []listener
	if lbARN != "" {
		if s.lbs[lbARN] == nil {
			s.mu.Unlock()
			return page[listener]{}, errLoadBalancerNotFound()
		}
		for _, l := range s.listeners {
			if l.LoadBalancerARN == lbARN {
				out = append(out, *l)
			}
		}
	} else {
		for _, a := range uniq(arns) {
			l := s.listeners[a]
			if l == nil {
				s.mu.Unlock()
				return page[listener]{}, errListenerNotFound()
			}
			out = append(out, *l)
		}
	}
	s.mu.Unlock()
	for i := range out {
		out[i].srv = nil
	}
	slices.SortFunc(out, func(a, b listener) int { return cmp.Compare(a.Seq, b.Seq) })
	return paginate(out, func(l listener) int64 { return l.Seq }, marker, pageSize)
}

func (s *Service) deleteListener(_ context.Context, arn string) error {
	var closing []*http.Server
	err := s.mutate(func() error {
		l := s.listeners[arn]
		if l == nil {
			return errListenerNotFound()
		}
		delete(s.listeners, arn)
		closing = append(closing, l.srv)
		l.srv = nil
		s.reconcileHealthLocked()
		s.log.Info("listener deleted", "listener", arn, "port", l.Port)
		return nil
	})
	closeServers(closing)
	return err
}

// modifyListenerInput is what ModifyListener may change: the forward
// target (the default action) and the port. Nil/empty fields stay.
type modifyListenerInput struct {
	ARN            string
	Protocol       string
	Port           *int
	TargetGroupARN string
}

// modifyListener switches a listener's default action to another target
// group, or moves it to another port, as ELBv2's ModifyListener does. The
// switch is atomic for requests: each request reads its listener's target
// group when it arrives, so a request is forwarded to the old group or the
// new one, never to neither; requests in flight finish where they went.
func (s *Service) modifyListener(_ context.Context, in modifyListenerInput) (listener, error) {
	if in.Protocol != "" && in.Protocol != "HTTP" {
		return listener{}, awsproto.Errorf("UnsupportedProtocol", "Protocol '%s' is not supported by the local cloud; use HTTP", in.Protocol)
	}
	if in.Port != nil && (*in.Port < 1 || *in.Port > 65535) {
		return listener{}, errValidation("Listener port must be between 1 and 65535")
	}
	var out listener
	var closing []*http.Server
	err := s.mutate(func() error {
		l := s.listeners[in.ARN]
		if l == nil {
			return errListenerNotFound()
		}
		if in.TargetGroupARN != "" {
			tg := s.tgs[in.TargetGroupARN]
			if tg == nil {
				return errTargetGroupNotFound()
			}
			for _, other := range s.tgLoadBalancersLocked(tg.ARN) {
				if other != l.LoadBalancerARN {
					return awsproto.Errorf("TargetGroupAssociationLimit", "The following target groups cannot be associated with more than one load balancer: '%s'", tg.ARN)
				}
			}
		}
		if in.Port != nil && *in.Port != l.RequestedPort {
			for _, o := range s.listeners {
				if o.ARN != l.ARN && o.LoadBalancerARN == l.LoadBalancerARN && o.RequestedPort == *in.Port {
					return awsproto.Errorf("DuplicateListener", "A listener already exists on port %d of load balancer '%s'", *in.Port, l.LoadBalancerARN)
				}
			}
			old := l.srv
			if err := s.openListenerLocked(l, *in.Port); err != nil {
				return awsproto.Internal("opening a listener for port %d: %v", *in.Port, err)
			}
			l.RequestedPort = *in.Port
			closing = append(closing, old)
		}
		if in.TargetGroupARN != "" && in.TargetGroupARN != l.TargetGroupARN {
			s.log.Info("listener default action switched", "listener", l.ARN, "from", l.TargetGroupARN, "to", in.TargetGroupARN)
			l.TargetGroupARN = in.TargetGroupARN
			s.reconcileHealthLocked()
		}
		out = *l
		return nil
	})
	closeServers(closing)
	out.srv = nil
	return out, err
}
