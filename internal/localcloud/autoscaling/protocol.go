package autoscaling

import (
	"encoding/xml"
	"net/http"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file holds the XML shapes of the responses, with the element names
// of the Auto Scaling API (2011-01-01). Behaviour lives elsewhere.

const (
	apiVersion = "2011-01-01"
	xmlns      = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

// envelope is every successful response: <ActionResponse> holding an
// optional <ActionResult> and the request id.
type envelope struct {
	XMLName xml.Name
	Xmlns   string `xml:"xmlns,attr"`
	// Result is a pointer to a *Result struct whose XMLName names it, or
	// nil for actions that return nothing.
	Result any
	Meta   awsproto.ResponseMetadata `xml:"ResponseMetadata"`
}

func writeResult(w http.ResponseWriter, action string, result any) {
	awsproto.WriteXML(w, http.StatusOK, envelope{
		XMLName: xml.Name{Local: action + "Response"},
		Xmlns:   xmlns,
		Result:  result,
		Meta:    awsproto.NewResponseMetadata(),
	})
}

// members is an awsquery list: <List><member>…</member>…</List>. Unlike a
// bare slice with a "List>member" tag, it writes <List></List> when empty,
// as AWS does.
type members[T any] struct {
	Member []T `xml:"member"`
}

func list[T any](items []T) members[T] { return members[T]{Member: items} }

// awsTime formats times as AWS does in query responses.
type awsTime time.Time

func (t awsTime) MarshalText() ([]byte, error) {
	return []byte(time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z")), nil
}

type xmlLaunchTemplate struct {
	LaunchTemplateID   string `xml:"LaunchTemplateId,omitempty"`
	LaunchTemplateName string `xml:"LaunchTemplateName,omitempty"`
	Version            string `xml:"Version,omitempty"`
}

type xmlInstance struct {
	InstanceID              string             `xml:"InstanceId"`
	AvailabilityZone        string             `xml:"AvailabilityZone"`
	LifecycleState          string             `xml:"LifecycleState"`
	HealthStatus            string             `xml:"HealthStatus"`
	LaunchConfigurationName string             `xml:"LaunchConfigurationName,omitempty"`
	LaunchTemplate          *xmlLaunchTemplate `xml:"LaunchTemplate,omitempty"`
	ProtectedFromScaleIn    bool               `xml:"ProtectedFromScaleIn"`
}

type xmlTag struct {
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Key               string `xml:"Key"`
	Value             string `xml:"Value"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
}

type xmlGroup struct {
	AutoScalingGroupName             string                    `xml:"AutoScalingGroupName"`
	AutoScalingGroupARN              string                    `xml:"AutoScalingGroupARN"`
	LaunchConfigurationName          string                    `xml:"LaunchConfigurationName,omitempty"`
	LaunchTemplate                   *xmlLaunchTemplate        `xml:"LaunchTemplate,omitempty"`
	MinSize                          int                       `xml:"MinSize"`
	MaxSize                          int                       `xml:"MaxSize"`
	DesiredCapacity                  int                       `xml:"DesiredCapacity"`
	DefaultCooldown                  int                       `xml:"DefaultCooldown"`
	AvailabilityZones                members[string]           `xml:"AvailabilityZones"`
	LoadBalancerNames                members[string]           `xml:"LoadBalancerNames"`
	TargetGroupARNs                  members[string]           `xml:"TargetGroupARNs"`
	HealthCheckType                  string                    `xml:"HealthCheckType"`
	HealthCheckGracePeriod           int                       `xml:"HealthCheckGracePeriod"`
	Instances                        members[xmlInstance]      `xml:"Instances"`
	CreatedTime                      awsTime                   `xml:"CreatedTime"`
	SuspendedProcesses               members[string]           `xml:"SuspendedProcesses"`
	VPCZoneIdentifier                string                    `xml:"VPCZoneIdentifier,omitempty"`
	EnabledMetrics                   members[string]           `xml:"EnabledMetrics"`
	Status                           string                    `xml:"Status,omitempty"`
	Tags                             members[xmlTag]           `xml:"Tags"`
	TerminationPolicies              members[string]           `xml:"TerminationPolicies"`
	NewInstancesProtectedFromScaleIn bool                      `xml:"NewInstancesProtectedFromScaleIn"`
	ServiceLinkedRoleARN             string                    `xml:"ServiceLinkedRoleARN"`
	CapacityRebalance                bool                      `xml:"CapacityRebalance"`
	TrafficSources                   members[xmlTrafficSource] `xml:"TrafficSources"`
	InstanceMaintenancePolicy        *xmlMaintenancePolicy     `xml:"InstanceMaintenancePolicy,omitempty"`
}

type xmlMaintenancePolicy struct {
	MinHealthyPercentage int `xml:"MinHealthyPercentage"`
	MaxHealthyPercentage int `xml:"MaxHealthyPercentage"`
}

type xmlTrafficSource struct {
	Identifier string `xml:"Identifier"`
	Type       string `xml:"Type"`
}

type describeGroupsResult struct {
	XMLName   xml.Name          `xml:"DescribeAutoScalingGroupsResult"`
	Groups    members[xmlGroup] `xml:"AutoScalingGroups"`
	NextToken string            `xml:"NextToken,omitempty"`
}

type xmlInstanceDetails struct {
	InstanceID              string             `xml:"InstanceId"`
	AutoScalingGroupName    string             `xml:"AutoScalingGroupName"`
	AvailabilityZone        string             `xml:"AvailabilityZone"`
	LifecycleState          string             `xml:"LifecycleState"`
	HealthStatus            string             `xml:"HealthStatus"`
	LaunchConfigurationName string             `xml:"LaunchConfigurationName,omitempty"`
	LaunchTemplate          *xmlLaunchTemplate `xml:"LaunchTemplate,omitempty"`
	ProtectedFromScaleIn    bool               `xml:"ProtectedFromScaleIn"`
}

type describeInstancesResult struct {
	XMLName   xml.Name                    `xml:"DescribeAutoScalingInstancesResult"`
	Instances members[xmlInstanceDetails] `xml:"AutoScalingInstances"`
	NextToken string                      `xml:"NextToken,omitempty"`
}

type xmlActivity struct {
	ActivityID            string   `xml:"ActivityId"`
	AutoScalingGroupName  string   `xml:"AutoScalingGroupName"`
	AutoScalingGroupARN   string   `xml:"AutoScalingGroupARN"`
	Description           string   `xml:"Description"`
	Cause                 string   `xml:"Cause"`
	StartTime             awsTime  `xml:"StartTime"`
	EndTime               *awsTime `xml:"EndTime,omitempty"`
	StatusCode            string   `xml:"StatusCode"`
	StatusMessage         string   `xml:"StatusMessage,omitempty"`
	Progress              int      `xml:"Progress"`
	Details               string   `xml:"Details"`
	AutoScalingGroupState string   `xml:"AutoScalingGroupState,omitempty"`
}

type describeActivitiesResult struct {
	XMLName    xml.Name             `xml:"DescribeScalingActivitiesResult"`
	Activities members[xmlActivity] `xml:"Activities"`
	NextToken  string               `xml:"NextToken,omitempty"`
}

// activitiesResult serves EnterStandby and ExitStandby, which answer with
// the activities they started.
type activitiesResult struct {
	XMLName    xml.Name
	Activities members[xmlActivity] `xml:"Activities"`
}

type terminateResult struct {
	XMLName  xml.Name    `xml:"TerminateInstanceInAutoScalingGroupResult"`
	Activity xmlActivity `xml:"Activity"`
}

type xmlHook struct {
	LifecycleHookName     string `xml:"LifecycleHookName"`
	AutoScalingGroupName  string `xml:"AutoScalingGroupName"`
	LifecycleTransition   string `xml:"LifecycleTransition"`
	NotificationTargetARN string `xml:"NotificationTargetARN,omitempty"`
	RoleARN               string `xml:"RoleARN,omitempty"`
	NotificationMetadata  string `xml:"NotificationMetadata,omitempty"`
	HeartbeatTimeout      int    `xml:"HeartbeatTimeout"`
	GlobalTimeout         int    `xml:"GlobalTimeout"`
	DefaultResult         string `xml:"DefaultResult"`
}

type describeHooksResult struct {
	XMLName xml.Name         `xml:"DescribeLifecycleHooksResult"`
	Hooks   members[xmlHook] `xml:"LifecycleHooks"`
}

// xmlLaunchConfiguration is a LaunchConfiguration. AWS writes the string
// fields a configuration was created without as empty elements, which the
// AWS CLI shows as "".
type xmlLaunchConfiguration struct {
	LaunchConfigurationName      string            `xml:"LaunchConfigurationName"`
	LaunchConfigurationARN       string            `xml:"LaunchConfigurationARN"`
	ImageID                      string            `xml:"ImageId"`
	KeyName                      string            `xml:"KeyName"`
	SecurityGroups               members[string]   `xml:"SecurityGroups"`
	ClassicLinkVPCSecurityGroups members[string]   `xml:"ClassicLinkVPCSecurityGroups"`
	UserData                     string            `xml:"UserData"`
	InstanceType                 string            `xml:"InstanceType"`
	KernelID                     string            `xml:"KernelId"`
	RamdiskID                    string            `xml:"RamdiskId"`
	BlockDeviceMappings          members[struct{}] `xml:"BlockDeviceMappings"`
	InstanceMonitoring           xmlMonitoring     `xml:"InstanceMonitoring"`
	SpotPrice                    string            `xml:"SpotPrice,omitempty"`
	IamInstanceProfile           string            `xml:"IamInstanceProfile,omitempty"`
	CreatedTime                  awsTime           `xml:"CreatedTime"`
	EbsOptimized                 bool              `xml:"EbsOptimized"`
	AssociatePublicIPAddress     *bool             `xml:"AssociatePublicIpAddress,omitempty"`
	PlacementTenancy             string            `xml:"PlacementTenancy,omitempty"`
}

type xmlMonitoring struct {
	Enabled bool `xml:"Enabled"`
}

type describeLaunchConfigurationsResult struct {
	XMLName              xml.Name                        `xml:"DescribeLaunchConfigurationsResult"`
	LaunchConfigurations members[xmlLaunchConfiguration] `xml:"LaunchConfigurations"`
	NextToken            string                          `xml:"NextToken,omitempty"`
}

func toXMLLaunchConfiguration(lc *launchConfiguration) xmlLaunchConfiguration {
	return xmlLaunchConfiguration{
		LaunchConfigurationName: lc.Name, LaunchConfigurationARN: lc.ARN, ImageID: lc.ImageID, KeyName: lc.KeyName,
		SecurityGroups: list(lc.SecurityGroups), UserData: lc.UserData, InstanceType: lc.InstanceType,
		KernelID: lc.KernelID, RamdiskID: lc.RamdiskID, InstanceMonitoring: xmlMonitoring{Enabled: lc.Monitoring},
		SpotPrice: lc.SpotPrice, IamInstanceProfile: lc.IamInstanceProfile, CreatedTime: awsTime(lc.Created),
		EbsOptimized: lc.EbsOptimized, AssociatePublicIPAddress: lc.AssociatePublicIP, PlacementTenancy: lc.PlacementTenancy,
	}
}

// emptyResult is the <ActionResult/> of actions that return no fields but
// whose AWS response still carries the element (PutLifecycleHook and the
// lifecycle action calls).
type emptyResult struct {
	XMLName xml.Name
}

func toXMLTemplate(lt launchTemplate) *xmlLaunchTemplate {
	if lt == (launchTemplate{}) {
		return nil
	}
	return &xmlLaunchTemplate{LaunchTemplateID: lt.ID, LaunchTemplateName: lt.Name, Version: lt.Version}
}

func toXMLGroup(g *group) xmlGroup {
	x := xmlGroup{
		AutoScalingGroupName:             g.Name,
		AutoScalingGroupARN:              g.ARN,
		LaunchConfigurationName:          g.LaunchConfiguration,
		LaunchTemplate:                   toXMLTemplate(g.LaunchTemplate),
		MinSize:                          g.MinSize,
		MaxSize:                          g.MaxSize,
		DesiredCapacity:                  g.Desired,
		DefaultCooldown:                  int(g.DefaultCooldown / time.Second),
		AvailabilityZones:                list(g.Zones),
		TargetGroupARNs:                  list(g.TargetGroupARNs),
		HealthCheckType:                  g.HealthCheckType,
		HealthCheckGracePeriod:           int(g.GracePeriod / time.Second),
		CreatedTime:                      awsTime(g.Created),
		VPCZoneIdentifier:                g.VPCZoneIdentifier,
		TerminationPolicies:              list(g.TerminationPolicies),
		NewInstancesProtectedFromScaleIn: g.NewProtected,
		ServiceLinkedRoleARN:             serviceLinkedRoleARN(g.ARN),
	}
	if g.Deleting {
		x.Status = "Delete in progress"
	}
	if p := g.Maintenance; p != nil {
		x.InstanceMaintenancePolicy = &xmlMaintenancePolicy{MinHealthyPercentage: p.MinHealthy, MaxHealthyPercentage: p.MaxHealthy}
	}
	for _, arn := range g.TargetGroupARNs {
		x.TrafficSources.Member = append(x.TrafficSources.Member, xmlTrafficSource{Identifier: arn, Type: "elbv2"})
	}
	for _, i := range g.sortedInstances() {
		x.Instances.Member = append(x.Instances.Member, xmlInstance{
			InstanceID:              i.ID,
			AvailabilityZone:        i.Zone,
			LifecycleState:          i.State.String(),
			HealthStatus:            i.Health,
			LaunchConfigurationName: i.LaunchConfiguration,
			LaunchTemplate:          toXMLTemplate(i.LaunchTemplate),
			ProtectedFromScaleIn:    i.Protected,
		})
	}
	for _, t := range g.Tags {
		x.Tags.Member = append(x.Tags.Member, xmlTag{ResourceID: g.Name, ResourceType: "auto-scaling-group", Key: t.Key, Value: t.Value, PropagateAtLaunch: t.PropagateAtLaunch})
	}
	return x
}

func toXMLActivity(a *activity) xmlActivity {
	x := xmlActivity{
		ActivityID:           a.ID,
		AutoScalingGroupName: a.Group,
		AutoScalingGroupARN:  a.GroupARN,
		Description:          a.Description,
		Cause:                a.Cause,
		StartTime:            awsTime(a.Start),
		StatusCode:           a.Status,
		StatusMessage:        a.StatusMessage,
		Progress:             a.Progress,
		Details:              a.Details,
	}
	if a.End != nil {
		t := awsTime(*a.End)
		x.EndTime = &t
	}
	if a.GroupDeleted {
		x.AutoScalingGroupState = "Deleted"
	}
	return x
}

func toXMLHook(groupName string, h *hook) xmlHook {
	return xmlHook{
		LifecycleHookName:     h.Name,
		AutoScalingGroupName:  groupName,
		LifecycleTransition:   h.Transition,
		NotificationTargetARN: h.TargetARN,
		RoleARN:               h.RoleARN,
		NotificationMetadata:  h.Metadata,
		HeartbeatTimeout:      int(h.HeartbeatTimeout / time.Second),
		GlobalTimeout:         int(h.globalTimeout() / time.Second),
		DefaultResult:         h.DefaultResult,
	}
}

func xmlName(local string) xml.Name { return xml.Name{Local: local} }
