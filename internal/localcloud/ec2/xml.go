package ec2

// The response side of EC2's Query protocol: XML documents whose root is
// ActionResponse in EC2's namespace, lowerCamel element names and lists of
// <item>s, exactly as the SDKs' deserializers read them.

import (
	"bytes"
	"encoding/xml"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

const (
	apiVersion = "2016-11-15"
	xmlns      = "http://ec2.amazonaws.com/doc/" + apiVersion + "/"
)

// timeFormat is EC2's timestamp format.
const timeFormat = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// head is the part every response has.
type head struct {
	RequestID string `xml:"requestId"`
}

func (h *head) setRequestID(id string) { h.RequestID = id }

type response interface{ setRequestID(string) }

// writeResponse writes body as ACTIONResponse.
func writeResponse(w http.ResponseWriter, action string, body response) {
	body.setRequestID(awsproto.RequestID())
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{
		Name: xml.Name{Local: action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlns}},
	}
	if err := enc.EncodeElement(body, start); err != nil {
		awsproto.WriteEC2Error(w, awsproto.Internal("encoding the %s response: %v", action, err))
		return
	}
	if err := enc.Flush(); err != nil {
		awsproto.WriteEC2Error(w, awsproto.Internal("encoding the %s response: %v", action, err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

type returnResponse struct {
	head
	Return bool `xml:"return"`
}

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(tags map[string]string) []tagXML {
	out := make([]tagXML, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, tagXML{k, tags[k]})
	}
	return out
}

// ---- volumes ----

type attachmentXML struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type volumeXML struct {
	VolumeID           string          `xml:"volumeId"`
	Size               int             `xml:"size"`
	SnapshotID         string          `xml:"snapshotId"`
	AvailabilityZone   string          `xml:"availabilityZone"`
	AvailabilityZoneID string          `xml:"availabilityZoneId"`
	Status             string          `xml:"status"`
	CreateTime         string          `xml:"createTime"`
	Attachments        []attachmentXML `xml:"attachmentSet>item"`
	Tags               []tagXML        `xml:"tagSet>item,omitempty"`
	VolumeType         string          `xml:"volumeType"`
	Iops               int             `xml:"iops,omitempty"`
	Encrypted          bool            `xml:"encrypted"`
	MultiAttachEnabled bool            `xml:"multiAttachEnabled"`
}

type createVolumeResponse struct {
	head
	volumeXML
}

type describeVolumesResponse struct {
	head
	Volumes   []volumeXML `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type attachmentResponse struct {
	head
	attachmentXML
}

// ---- snapshots ----

type snapshotXML struct {
	SnapshotID     string   `xml:"snapshotId"`
	VolumeID       string   `xml:"volumeId"`
	Status         string   `xml:"status"`
	StatusMessage  string   `xml:"statusMessage,omitempty"`
	StartTime      string   `xml:"startTime"`
	CompletionTime string   `xml:"completionTime,omitempty"`
	Progress       string   `xml:"progress"`
	OwnerID        string   `xml:"ownerId"`
	VolumeSize     int      `xml:"volumeSize"`
	Description    string   `xml:"description"`
	Encrypted      bool     `xml:"encrypted"`
	StorageTier    string   `xml:"storageTier"`
	Tags           []tagXML `xml:"tagSet>item,omitempty"`
}

type createSnapshotResponse struct {
	head
	snapshotXML
}

type describeSnapshotsResponse struct {
	head
	Snapshots []snapshotXML `xml:"snapshotSet>item"`
	NextToken string        `xml:"nextToken,omitempty"`
}

// ---- tags ----

type tagDescriptionXML struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsResponse struct {
	head
	Tags      []tagDescriptionXML `xml:"tagSet>item"`
	NextToken string              `xml:"nextToken,omitempty"`
}

// ---- instances ----

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) stateXML { return stateXML{Code: stateCodes[name], Name: name} }

type placementXML struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type ebsXML struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type blockDeviceXML struct {
	DeviceName string `xml:"deviceName"`
	Ebs        ebsXML `xml:"ebs"`
}

type stateReasonXML struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type instanceXML struct {
	InstanceID          string           `xml:"instanceId"`
	ImageID             string           `xml:"imageId"`
	State               stateXML         `xml:"instanceState"`
	PrivateDNSName      string           `xml:"privateDnsName"`
	DNSName             string           `xml:"dnsName"`
	Reason              string           `xml:"reason"`
	AmiLaunchIndex      int              `xml:"amiLaunchIndex"`
	InstanceType        string           `xml:"instanceType"`
	LaunchTime          string           `xml:"launchTime"`
	Placement           placementXML     `xml:"placement"`
	Monitoring          string           `xml:"monitoring>state"`
	PrivateIPAddress    string           `xml:"privateIpAddress"`
	StateReason         *stateReasonXML  `xml:"stateReason,omitempty"`
	Architecture        string           `xml:"architecture"`
	RootDeviceType      string           `xml:"rootDeviceType"`
	RootDeviceName      string           `xml:"rootDeviceName"`
	BlockDeviceMappings []blockDeviceXML `xml:"blockDeviceMapping>item"`
	VirtualizationType  string           `xml:"virtualizationType"`
	ClientToken         string           `xml:"clientToken"`
	Tags                []tagXML         `xml:"tagSet>item,omitempty"`
	Hypervisor          string           `xml:"hypervisor"`
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        []struct{}    `xml:"groupSet>item"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type runInstancesResponse struct {
	head
	reservationXML
}

type describeInstancesResponse struct {
	head
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type stateChangeXML struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  stateXML `xml:"currentState"`
	PreviousState stateXML `xml:"previousState"`
}

type stateChangesResponse struct {
	head
	Instances []stateChangeXML `xml:"instancesSet>item"`
}

type zoneXML struct {
	ZoneName           string `xml:"zoneName"`
	ZoneID             string `xml:"zoneId"`
	ZoneState          string `xml:"zoneState"`
	RegionName         string `xml:"regionName"`
	ZoneType           string `xml:"zoneType"`
	OptInStatus        string `xml:"optInStatus"`
	GroupName          string `xml:"groupName"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

type describeZonesResponse struct {
	head
	Zones []zoneXML `xml:"availabilityZoneInfo>item"`
}

// ---- launch templates ----

type launchTemplateXML struct {
	LaunchTemplateID     string   `xml:"launchTemplateId"`
	LaunchTemplateName   string   `xml:"launchTemplateName"`
	CreateTime           string   `xml:"createTime"`
	CreatedBy            string   `xml:"createdBy"`
	DefaultVersionNumber int64    `xml:"defaultVersionNumber"`
	LatestVersionNumber  int64    `xml:"latestVersionNumber"`
	Tags                 []tagXML `xml:"tagSet>item,omitempty"`
}

type templateTagSpecXML struct {
	ResourceType string   `xml:"resourceType"`
	Tags         []tagXML `xml:"tagSet>item"`
}

type templateDataXML struct {
	ImageID      string               `xml:"imageId,omitempty"`
	InstanceType string               `xml:"instanceType,omitempty"`
	UserData     string               `xml:"userData,omitempty"`
	Placement    *placementXML        `xml:"placement,omitempty"`
	TagSpecs     []templateTagSpecXML `xml:"tagSpecificationSet>item,omitempty"`
}

type templateVersionXML struct {
	LaunchTemplateID   string          `xml:"launchTemplateId"`
	LaunchTemplateName string          `xml:"launchTemplateName"`
	VersionNumber      int64           `xml:"versionNumber"`
	VersionDescription string          `xml:"versionDescription,omitempty"`
	CreateTime         string          `xml:"createTime"`
	CreatedBy          string          `xml:"createdBy"`
	DefaultVersion     bool            `xml:"defaultVersion"`
	Data               templateDataXML `xml:"launchTemplateData"`
}

type launchTemplateResponse struct {
	head
	LaunchTemplate launchTemplateXML `xml:"launchTemplate"`
}

type createTemplateVersionResponse struct {
	head
	Version templateVersionXML `xml:"launchTemplateVersion"`
}

type describeTemplatesResponse struct {
	head
	Templates []launchTemplateXML `xml:"launchTemplates>item"`
	NextToken string              `xml:"nextToken,omitempty"`
}

type describeTemplateVersionsResponse struct {
	head
	Versions  []templateVersionXML `xml:"launchTemplateVersionSet>item"`
	NextToken string               `xml:"nextToken,omitempty"`
}
