package elbv2

// Response shapes, named element for element as the ELBv2 API Reference
// (and so the SDK's deserializers) names them.

// xmlTime is the API's timestamp format.
const xmlTime = "2006-01-02T15:04:05.000Z"

// canonicalHostedZoneID stands in for the Route 53 zone of ELB's DNS
// names, which the local cloud does not have.
const canonicalHostedZoneID = "ZLOCALCLOUDELB"

type loadBalancersResult struct {
	LoadBalancers []xmlLoadBalancer `xml:"LoadBalancers>member"`
	NextMarker    string            `xml:",omitempty"`
}

type xmlLoadBalancer struct {
	LoadBalancerArn       string
	DNSName               string
	CanonicalHostedZoneId string
	CreatedTime           string
	LoadBalancerName      string
	Scheme                string
	VpcId                 string `xml:",omitempty"`
	State                 xmlLBState
	Type                  string
	AvailabilityZones     []xmlAZ  `xml:"AvailabilityZones>member"`
	SecurityGroups        []string `xml:"SecurityGroups>member"`
	IpAddressType         string
}

type xmlLBState struct {
	Code   string
	Reason string `xml:",omitempty"`
}

type xmlAZ struct {
	SubnetId string
	ZoneName string `xml:",omitempty"`
}

func (s *Service) xmlLB(lb loadBalancer) xmlLoadBalancer {
	x := xmlLoadBalancer{
		LoadBalancerArn: lb.ARN, DNSName: s.dnsName(), CanonicalHostedZoneId: canonicalHostedZoneID,
		CreatedTime: lb.Created.UTC().Format(xmlTime), LoadBalancerName: lb.Name, Scheme: lb.Scheme,
		State: xmlLBState{Code: s.lbState(lb)}, Type: lb.Type, SecurityGroups: lb.SecurityGroups, IpAddressType: lb.IPAddressType,
	}
	for _, sn := range lb.Subnets {
		x.AvailabilityZones = append(x.AvailabilityZones, xmlAZ{SubnetId: sn})
	}
	return x
}

// dnsName is the host every listener listens on; see proxy.go.
func (s *Service) dnsName() string {
	if s.cfg.ListenHost == "localhost" {
		return "localhost"
	}
	return s.nodeIP()
}

type targetGroupsResult struct {
	TargetGroups []xmlTargetGroup `xml:"TargetGroups>member"`
	NextMarker   string           `xml:",omitempty"`
}

type xmlTargetGroup struct {
	TargetGroupArn             string
	TargetGroupName            string
	Protocol                   string
	ProtocolVersion            string
	Port                       int
	VpcId                      string `xml:",omitempty"`
	HealthCheckEnabled         bool
	HealthCheckProtocol        string
	HealthCheckPort            string
	HealthCheckPath            string
	HealthCheckIntervalSeconds int
	HealthCheckTimeoutSeconds  int
	HealthyThresholdCount      int
	UnhealthyThresholdCount    int
	Matcher                    xmlMatcher
	LoadBalancerArns           []string `xml:"LoadBalancerArns>member"`
	TargetType                 string
	IpAddressType              string
}

type xmlMatcher struct {
	HttpCode string
}

func xmlTG(v tgView) xmlTargetGroup {
	hc := v.HC
	return xmlTargetGroup{
		TargetGroupArn: v.ARN, TargetGroupName: v.Name, Protocol: v.Protocol, ProtocolVersion: "HTTP1", Port: v.Port, VpcId: v.VpcID,
		HealthCheckEnabled: hc.Enabled, HealthCheckProtocol: hc.Protocol, HealthCheckPort: hc.Port, HealthCheckPath: hc.Path,
		HealthCheckIntervalSeconds: hc.Interval, HealthCheckTimeoutSeconds: hc.Timeout,
		HealthyThresholdCount: hc.Healthy, UnhealthyThresholdCount: hc.Unhealthy,
		Matcher: xmlMatcher{HttpCode: hc.Matcher}, LoadBalancerArns: v.LoadBalancerARNs,
		TargetType: v.TargetType, IpAddressType: "ipv4",
	}
}

type listenersResult struct {
	Listeners  []xmlListener `xml:"Listeners>member"`
	NextMarker string        `xml:",omitempty"`
}

type xmlListener struct {
	ListenerArn     string
	LoadBalancerArn string
	Port            int
	Protocol        string
	DefaultActions  []xmlAction `xml:"DefaultActions>member"`
}

type xmlAction struct {
	Type           string
	TargetGroupArn string
	Order          int
	ForwardConfig  xmlForwardConfig
}

type xmlForwardConfig struct {
	TargetGroups                []xmlTargetGroupTuple `xml:"TargetGroups>member"`
	TargetGroupStickinessConfig struct {
		Enabled bool
	}
}

type xmlTargetGroupTuple struct {
	TargetGroupArn string
	Weight         int
}

func xmlL(l listener) xmlListener {
	a := xmlAction{Type: "forward", TargetGroupArn: l.TargetGroupARN, Order: 1}
	a.ForwardConfig.TargetGroups = []xmlTargetGroupTuple{{TargetGroupArn: l.TargetGroupARN, Weight: 1}}
	return xmlListener{ListenerArn: l.ARN, LoadBalancerArn: l.LoadBalancerARN, Port: l.Port, Protocol: l.Protocol, DefaultActions: []xmlAction{a}}
}

type attributesResult struct {
	Attributes []xmlAttribute `xml:"Attributes>member"`
}

type xmlAttribute struct {
	Key   string
	Value string
}

func xmlAttributes(kvs []kv) []xmlAttribute {
	out := make([]xmlAttribute, len(kvs))
	for i, a := range kvs {
		out[i] = xmlAttribute(a)
	}
	return out
}

type targetHealthResult struct {
	TargetHealthDescriptions []xmlTargetHealthDescription `xml:"TargetHealthDescriptions>member"`
}

type xmlTargetHealthDescription struct {
	Target          xmlTarget
	HealthCheckPort string
	TargetHealth    xmlTargetHealth
}

type xmlTarget struct {
	ID   string `xml:"Id"`
	Port int
}

type xmlTargetHealth struct {
	State       string
	Reason      string `xml:",omitempty"`
	Description string `xml:",omitempty"`
}
