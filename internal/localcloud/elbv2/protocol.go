package elbv2

import (
	"context"
	"net/http"
	"strconv"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The awsquery wire protocol: form-encoded requests in, XML out. This file
// only translates; resources.go and targets.go decide what happens.

// Namespace is the XML namespace of ELBv2 responses.
const Namespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

// APIVersion is the only version the service speaks.
const APIVersion = "2015-12-01"

type handlerFunc func(s *Service, ctx context.Context, v awsproto.Values) (any, error)

var handlers = map[string]handlerFunc{
	"CreateLoadBalancer":             (*Service).apiCreateLoadBalancer,
	"DescribeLoadBalancers":          (*Service).apiDescribeLoadBalancers,
	"DeleteLoadBalancer":             (*Service).apiDeleteLoadBalancer,
	"DescribeLoadBalancerAttributes": (*Service).apiDescribeLoadBalancerAttributes,
	"ModifyLoadBalancerAttributes":   (*Service).apiModifyLoadBalancerAttributes,
	"CreateTargetGroup":              (*Service).apiCreateTargetGroup,
	"DescribeTargetGroups":           (*Service).apiDescribeTargetGroups,
	"DeleteTargetGroup":              (*Service).apiDeleteTargetGroup,
	"DescribeTargetGroupAttributes":  (*Service).apiDescribeTargetGroupAttributes,
	"ModifyTargetGroupAttributes":    (*Service).apiModifyTargetGroupAttributes,
	"CreateListener":                 (*Service).apiCreateListener,
	"DescribeListeners":              (*Service).apiDescribeListeners,
	"DeleteListener":                 (*Service).apiDeleteListener,
	"RegisterTargets":                (*Service).apiRegisterTargets,
	"DeregisterTargets":              (*Service).apiDeregisterTargets,
	"DescribeTargetHealth":           (*Service).apiDescribeTargetHealth,
	"ModifyListener":                 (*Service).apiModifyListener,
	"AddTags":                        (*Service).apiAddTags,
	"RemoveTags":                     (*Service).apiRemoveTags,
	"DescribeTags":                   (*Service).apiDescribeTags,
}

// ServeHTTP answers one API request through the shared Query dispatcher.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) }

func (s *Service) newAPI() *awsproto.Query[any] {
	q := &awsproto.Query[any]{
		Service: ServiceName,
		Version: APIVersion,
		Actions: map[string]awsproto.Action[any]{},
		WriteResult: func(w http.ResponseWriter, action string, result any) {
			awsproto.WriteQueryResult(w, Namespace, action, result)
		},
		WriteError: func(w http.ResponseWriter, err error) { awsproto.WriteQueryError(w, Namespace, err) },
		Log:        s.log,
	}
	if s.cfg.Faults != nil {
		q.Faults = s.cfg.Faults
	}
	for name, h := range handlers {
		q.Actions[name] = func(ctx context.Context, v awsproto.Values) (any, error) { return h(s, ctx, v) }
	}
	return q
}

// inject asks the fault injector about in-process calls (Auto Scaling's
// target registrations), which do not pass through the dispatcher.
func (s *Service) inject(ctx context.Context, action string) error {
	if s.cfg.Faults == nil {
		return nil
	}
	return s.cfg.Faults.Inject(ctx, ServiceName, action)
}

// Parameter helpers. ELBv2 answers every malformed parameter with
// ValidationError.

func required(v awsproto.Values, key string) (string, error) {
	s := v.Get(key)
	if s == "" {
		return "", errValidation("A value for '%s' must be specified", key)
	}
	return s, nil
}

func optInt(v awsproto.Values, key string) (*int, error) {
	s := v.Get(key)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, errValidation("Value '%s' for '%s' must be an integer", s, key)
	}
	return &n, nil
}

func optBool(v awsproto.Values, key string) (*bool, error) {
	s := v.Get(key)
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, errValidation("Value '%s' for '%s' must be true or false", s, key)
	}
	return &b, nil
}

func pageParams(v awsproto.Values) (marker string, size int, err error) {
	p, err := optInt(v, "PageSize")
	if err != nil || p == nil {
		return v.Get("Marker"), 0, err
	}
	if *p == 0 {
		return "", 0, errValidation("Page size must be between 1 and 400")
	}
	return v.Get("Marker"), *p, nil
}

func tags(v awsproto.Values) []tag {
	var out []tag
	for _, m := range v.Structs("Tags.member") {
		out = append(out, tag{Key: m.Get("Key"), Value: m.Get("Value")})
	}
	return out
}

func targetRefs(v awsproto.Values) ([]targetRef, error) {
	var out []targetRef
	for i, m := range v.Structs("Targets.member") {
		p, err := optInt(m, "Port")
		if err != nil {
			return nil, errValidation("Port of target %d must be an integer", i+1)
		}
		r := targetRef{ID: m.Get("Id")}
		if p != nil {
			if *p < 1 || *p > 65535 {
				return nil, errValidation("Port %d of target '%s' must be between 1 and 65535", *p, r.ID)
			}
			r.Port = *p
		}
		out = append(out, r)
	}
	return out, nil
}

func attributes(v awsproto.Values) []kv {
	var out []kv
	for _, m := range v.Structs("Attributes.member") {
		out = append(out, kv{Key: m.Get("Key"), Value: m.Get("Value")})
	}
	return out
}

// Handlers: parse, call, shape.

func (s *Service) apiCreateLoadBalancer(ctx context.Context, v awsproto.Values) (any, error) {
	name, err := required(v, "Name")
	if err != nil {
		return nil, err
	}
	lb, err := s.createLoadBalancer(ctx, createLBInput{
		Name: name, Scheme: v.Get("Scheme"), Type: v.Get("Type"), IPAddressType: v.Get("IpAddressType"),
		Subnets: v.List("Subnets.member"), SecurityGroups: v.List("SecurityGroups.member"), Tags: tags(v),
	})
	if err != nil {
		return nil, err
	}
	x := s.xmlLB(lb)
	x.State.Code = "provisioning" // a new load balancer is always provisioning first
	return loadBalancersResult{LoadBalancers: []xmlLoadBalancer{x}}, nil
}

func (s *Service) apiDescribeLoadBalancers(ctx context.Context, v awsproto.Values) (any, error) {
	marker, size, err := pageParams(v)
	if err != nil {
		return nil, err
	}
	p, err := s.describeLoadBalancers(ctx, v.List("LoadBalancerArns.member"), v.List("Names.member"), marker, size)
	if err != nil {
		return nil, err
	}
	out := loadBalancersResult{NextMarker: p.NextMarker}
	for _, lb := range p.Items {
		out.LoadBalancers = append(out.LoadBalancers, s.xmlLB(lb))
	}
	return out, nil
}

func (s *Service) apiDeleteLoadBalancer(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "LoadBalancerArn")
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deleteLoadBalancer(ctx, arn)
}

func (s *Service) apiDescribeLoadBalancerAttributes(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "LoadBalancerArn")
	if err != nil {
		return nil, err
	}
	attrs, err := s.lbAttributes(ctx, arn)
	return attributesResult{xmlAttributes(attrs)}, err
}

func (s *Service) apiModifyLoadBalancerAttributes(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "LoadBalancerArn")
	if err != nil {
		return nil, err
	}
	attrs, err := s.modifyLBAttributes(ctx, arn, attributes(v))
	return attributesResult{xmlAttributes(attrs)}, err
}

func (s *Service) apiCreateTargetGroup(ctx context.Context, v awsproto.Values) (any, error) {
	name, err := required(v, "Name")
	if err != nil {
		return nil, err
	}
	in := createTGInput{Name: name, Protocol: v.Get("Protocol"), TargetType: v.Get("TargetType"), VpcID: v.Get("VpcId"), Tags: tags(v)}
	in.HC.Protocol, in.HC.Port, in.HC.Path, in.HC.Matcher = v.Get("HealthCheckProtocol"), v.Get("HealthCheckPort"), v.Get("HealthCheckPath"), v.Get("Matcher.HttpCode")
	for _, f := range []struct {
		dst **int
		key string
	}{{&in.Port, "Port"}, {&in.HC.Interval, "HealthCheckIntervalSeconds"}, {&in.HC.Timeout, "HealthCheckTimeoutSeconds"}, {&in.HC.Healthy, "HealthyThresholdCount"}, {&in.HC.Unhealthy, "UnhealthyThresholdCount"}} {
		if *f.dst, err = optInt(v, f.key); err != nil {
			return nil, err
		}
	}
	if in.HC.Enabled, err = optBool(v, "HealthCheckEnabled"); err != nil {
		return nil, err
	}
	tg, err := s.createTargetGroup(ctx, in)
	if err != nil {
		return nil, err
	}
	return targetGroupsResult{TargetGroups: []xmlTargetGroup{xmlTG(tgView{targetGroup: tg})}}, nil
}

func (s *Service) apiDescribeTargetGroups(ctx context.Context, v awsproto.Values) (any, error) {
	marker, size, err := pageParams(v)
	if err != nil {
		return nil, err
	}
	p, err := s.describeTargetGroups(ctx, v.Get("LoadBalancerArn"), v.List("TargetGroupArns.member"), v.List("Names.member"), marker, size)
	if err != nil {
		return nil, err
	}
	out := targetGroupsResult{NextMarker: p.NextMarker}
	for _, tg := range p.Items {
		out.TargetGroups = append(out.TargetGroups, xmlTG(tg))
	}
	return out, nil
}

func (s *Service) apiDeleteTargetGroup(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deleteTargetGroup(ctx, arn)
}

func (s *Service) apiDescribeTargetGroupAttributes(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	attrs, err := s.tgAttributes(ctx, arn)
	return attributesResult{xmlAttributes(attrs)}, err
}

func (s *Service) apiModifyTargetGroupAttributes(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	attrs, err := s.modifyTGAttributes(ctx, arn, attributes(v))
	return attributesResult{xmlAttributes(attrs)}, err
}

func (s *Service) apiCreateListener(ctx context.Context, v awsproto.Values) (any, error) {
	lbARN, err := required(v, "LoadBalancerArn")
	if err != nil {
		return nil, err
	}
	port, err := optInt(v, "Port")
	if err != nil {
		return nil, err
	}
	tgARN, err := forwardTarget(v.Structs("DefaultActions.member"))
	if err != nil {
		return nil, err
	}
	l, err := s.createListener(ctx, createListenerInput{LoadBalancerARN: lbARN, Protocol: v.Get("Protocol"), Port: port, TargetGroupARN: tgARN, Tags: tags(v)})
	if err != nil {
		return nil, err
	}
	return listenersResult{Listeners: []xmlListener{xmlL(l)}}, nil
}

func (s *Service) apiModifyListener(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "ListenerArn")
	if err != nil {
		return nil, err
	}
	port, err := optInt(v, "Port")
	if err != nil {
		return nil, err
	}
	in := modifyListenerInput{ARN: arn, Protocol: v.Get("Protocol"), Port: port}
	if actions := v.Structs("DefaultActions.member"); len(actions) > 0 {
		if in.TargetGroupARN, err = forwardTarget(actions); err != nil {
			return nil, err
		}
	}
	l, err := s.modifyListener(ctx, in)
	if err != nil {
		return nil, err
	}
	return listenersResult{Listeners: []xmlListener{xmlL(l)}}, nil
}

// forwardTarget reads the one forward action the local cloud supports.
func forwardTarget(actions []awsproto.Values) (string, error) {
	if len(actions) != 1 {
		return "", errValidation("Exactly one default action must be specified (the local cloud supports a single forward action)")
	}
	a := actions[0]
	if a.Get("Type") != "forward" {
		return "", errValidation("Action type '%s' is not supported by the local cloud; use 'forward'", a.Get("Type"))
	}
	tgARN := a.Get("TargetGroupArn")
	if fwd := a.Structs("ForwardConfig.TargetGroups.member"); len(fwd) > 0 {
		if len(fwd) > 1 || (tgARN != "" && fwd[0].Get("TargetGroupArn") != tgARN) {
			return "", errValidation("The local cloud forwards to exactly one target group")
		}
		tgARN = fwd[0].Get("TargetGroupArn")
	}
	if tgARN == "" {
		return "", errValidation("A target group ARN must be specified for a forward action")
	}
	return tgARN, nil
}

func (s *Service) apiDescribeListeners(ctx context.Context, v awsproto.Values) (any, error) {
	marker, size, err := pageParams(v)
	if err != nil {
		return nil, err
	}
	p, err := s.describeListeners(ctx, v.Get("LoadBalancerArn"), v.List("ListenerArns.member"), marker, size)
	if err != nil {
		return nil, err
	}
	out := listenersResult{NextMarker: p.NextMarker}
	for _, l := range p.Items {
		out.Listeners = append(out.Listeners, xmlL(l))
	}
	return out, nil
}

func (s *Service) apiDeleteListener(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "ListenerArn")
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deleteListener(ctx, arn)
}

func (s *Service) apiRegisterTargets(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	refs, err := targetRefs(v)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.registerTargets(ctx, arn, refs)
}

func (s *Service) apiDeregisterTargets(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	refs, err := targetRefs(v)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deregisterTargets(ctx, arn, refs)
}

func (s *Service) apiDescribeTargetHealth(ctx context.Context, v awsproto.Values) (any, error) {
	arn, err := required(v, "TargetGroupArn")
	if err != nil {
		return nil, err
	}
	refs, err := targetRefs(v)
	if err != nil {
		return nil, err
	}
	hs, err := s.describeTargetHealth(ctx, arn, refs)
	if err != nil {
		return nil, err
	}
	var out targetHealthResult
	for _, h := range hs {
		x := xmlTargetHealthDescription{
			Target:          xmlTarget{ID: h.ID, Port: h.Port},
			HealthCheckPort: h.HealthCheckPort,
			TargetHealth:    xmlTargetHealth{State: h.State, Reason: h.Reason, Description: h.Description},
		}
		out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, x)
	}
	return out, nil
}
