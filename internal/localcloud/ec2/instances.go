package ec2

import (
	"context"
	"encoding/base64"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The instance API: RunInstances (from an image or a launch template),
// DescribeInstances, Stop/Start/TerminateInstances and
// DescribeAvailabilityZones. What the transitions do is in lifecycle.go.

func (s *Service) runInstances(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseRunInstances(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tokenKey := "RunInstances:" + r.ClientToken
	if r.ClientToken != "" {
		if t, ok := s.st.Tokens[tokenKey]; ok {
			if t.Hash != r.Hash {
				return nil, awsproto.Errorf("IdempotentParameterMismatch", "The client token '%s' was already used with different parameters.", r.ClientToken)
			}
			return &runInstancesResponse{reservationXML: s.reservationLocked(t.IDs)}, nil
		}
	}
	spec := launchSpec{
		ImageID: r.ImageID, InstanceType: r.InstanceType, Zone: r.Zone, ClientToken: r.ClientToken,
		Min: r.MinCount, Max: r.MaxCount, Tags: tagsFor(r.Tags, "instance"),
	}
	if r.UserDataSet {
		spec.UserData = r.UserData
	}
	if r.Template != nil {
		if err := s.applyTemplateLocked(&spec, *r.Template, r.UserDataSet); err != nil {
			return nil, err
		}
	}
	if spec.ImageID == "" {
		return nil, missing("ImageId")
	}
	if spec.InstanceType == "" {
		spec.InstanceType = "m1.small" // EC2's documented default
	}
	ins, err := s.launchLocked(spec)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	if r.ClientToken != "" {
		s.st.Tokens[tokenKey] = &clientToken{Hash: r.Hash, IDs: ids}
	}
	return &runInstancesResponse{reservationXML: s.reservationLocked(ids)}, s.saveLocked()
}

// applyTemplateLocked fills spec from a launch template version: what the
// request gave wins, the template fills the rest.
func (s *Service) applyTemplateLocked(spec *launchSpec, ref templateRef, userDataSet bool) error {
	lt, ver, err := s.resolveTemplateLocked(ref, ref.Version)
	if err != nil {
		return err
	}
	d := ver.Data
	if spec.ImageID == "" {
		spec.ImageID = d.ImageID
	}
	if spec.InstanceType == "" {
		spec.InstanceType = d.InstanceType
	}
	if spec.Zone == "" {
		spec.Zone = d.Zone
	}
	if !userDataSet && d.UserData != "" {
		b, err := base64.StdEncoding.DecodeString(d.UserData)
		if err != nil {
			return invalid("The launch template's user data is not valid base64.")
		}
		spec.UserData = b
	}
	tags := tagsFor(d.TagSpecs, "instance")
	maps.Copy(tags, spec.Tags)
	tags["aws:ec2launchtemplate:id"] = lt.ID
	tags["aws:ec2launchtemplate:version"] = strconv.FormatInt(ver.Number, 10)
	spec.Tags = tags
	return nil
}

func (s *Service) reservationLocked(ids []string) reservationXML {
	res := reservationXML{OwnerID: s.cfg.AccountID, Groups: []struct{}{}}
	for _, id := range ids {
		if in := s.st.Instances[id]; in != nil {
			res.ReservationID = in.ReservationID
			res.Instances = append(res.Instances, s.instanceXMLLocked(in))
		}
	}
	return res
}

func (s *Service) instanceXMLLocked(in *instance) instanceXML {
	x := instanceXML{
		InstanceID: in.ID, ImageID: in.ImageID, State: stateOf(in.State),
		PrivateDNSName: "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal",
		Reason:         in.Reason, AmiLaunchIndex: in.LaunchIndex, InstanceType: in.InstanceType,
		LaunchTime: ts(in.LaunchTime), Placement: placementXML{AvailabilityZone: in.Zone, Tenancy: "default"},
		Monitoring: "disabled", PrivateIPAddress: in.PrivateIP, Architecture: "x86_64",
		RootDeviceType: "ebs", RootDeviceName: imdsRootDeviceName, VirtualizationType: "hvm",
		ClientToken: in.ClientToken, Tags: tagSet(s.st.Tags[in.ID]), Hypervisor: "xen",
		BlockDeviceMappings: []blockDeviceXML{},
	}
	switch in.State {
	case instStopped, instStopping:
		x.StateReason = &stateReasonXML{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
	case instTerminated, instShuttingDown:
		x.StateReason = &stateReasonXML{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
		x.PrivateDNSName, x.PrivateIPAddress = "", ""
	}
	for _, vid := range slices.Sorted(maps.Keys(s.st.Volumes)) {
		if a := s.st.Volumes[vid].Attachment; a != nil && a.InstanceID == in.ID {
			x.BlockDeviceMappings = append(x.BlockDeviceMappings, blockDeviceXML{
				DeviceName: a.Device, Ebs: ebsXML{VolumeID: vid, Status: "attached", AttachTime: ts(a.AttachTime)},
			})
		}
	}
	return x
}

var instanceFilters = []string{
	"instance-id", "instance-state-name", "instance-state-code", "availability-zone", "image-id",
	"instance-type", "private-ip-address", "reservation-id", "launch-time", "client-token",
}

func (s *Service) describeInstances(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribe(v, "InstanceId", kindInstance, 5, 1000, false)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, instanceFilters...); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.purgeLocked() {
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
	}
	ids, err := selectIDs(s.st.Instances, r.IDs, kindInstance)
	if err != nil {
		return nil, err
	}
	var match []string
	for _, id := range ids {
		in := s.st.Instances[id]
		if matchFilters(r.Filters, s.st.Tags[id], instanceAttrs(in)) {
			match = append(match, id)
		}
	}
	page, next := paginate(match, func(id string) string { return id }, r.Page)
	// Instances of one reservation, adjacent in the page, share an item.
	resp := &describeInstancesResponse{Reservations: []reservationXML{}, NextToken: next}
	for _, id := range page {
		in := s.st.Instances[id]
		n := len(resp.Reservations)
		if n > 0 && resp.Reservations[n-1].ReservationID == in.ReservationID {
			resp.Reservations[n-1].Instances = append(resp.Reservations[n-1].Instances, s.instanceXMLLocked(in))
			continue
		}
		resp.Reservations = append(resp.Reservations, reservationXML{
			ReservationID: in.ReservationID, OwnerID: s.cfg.AccountID, Groups: []struct{}{},
			Instances: []instanceXML{s.instanceXMLLocked(in)},
		})
	}
	return resp, nil
}

func instanceAttrs(in *instance) attrs {
	return func(name string) []string {
		switch name {
		case "instance-id":
			return []string{in.ID}
		case "instance-state-name":
			return []string{in.State}
		case "instance-state-code":
			return []string{strconv.Itoa(stateCodes[in.State])}
		case "availability-zone":
			return []string{in.Zone}
		case "image-id":
			return []string{in.ImageID}
		case "instance-type":
			return []string{in.InstanceType}
		case "private-ip-address":
			return []string{in.PrivateIP}
		case "reservation-id":
			return []string{in.ReservationID}
		case "launch-time":
			return []string{ts(in.LaunchTime)}
		case "client-token":
			return []string{in.ClientToken}
		}
		return nil
	}
}

// changeStates validates every instance first, then applies change to
// each: a request either changes all its instances or none.
func (s *Service) changeStates(v awsproto.Values, check func(*instance) error, change func(*instance, bool)) (response, error) {
	r, err := parseInstanceIDs(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ins []*instance
	for _, id := range r.IDs {
		in := s.st.Instances[id]
		if in == nil {
			return nil, kindInstance.notFoundErr(id)
		}
		ins = append(ins, in)
	}
	for _, in := range ins {
		if err := check(in); err != nil {
			return nil, err
		}
	}
	resp := &stateChangesResponse{}
	for _, in := range ins {
		prev := in.State
		change(in, r.Force)
		resp.Instances = append(resp.Instances, stateChangeXML{InstanceID: in.ID, PreviousState: stateOf(prev), CurrentState: stateOf(in.State)})
	}
	return resp, s.saveLocked()
}

func incorrectState(in *instance, verb string) error {
	return awsproto.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be %s.", in.ID, verb)
}

func (s *Service) stopInstances(_ context.Context, v awsproto.Values) (response, error) {
	return s.changeStates(v,
		func(in *instance) error {
			switch in.State {
			case instRunning, instStopping, instStopped:
				return nil
			}
			return incorrectState(in, "stopped")
		},
		func(in *instance, force bool) {
			if in.State == instRunning {
				s.stopLocked(in, force)
			}
		})
}

func (s *Service) startInstances(_ context.Context, v awsproto.Values) (response, error) {
	return s.changeStates(v,
		func(in *instance) error {
			switch in.State {
			case instStopped, instPending, instRunning:
				return nil
			}
			return incorrectState(in, "started")
		},
		func(in *instance, _ bool) {
			if in.State == instStopped {
				in.State, in.Reason, in.LaunchTime = instPending, "", s.clk.Now().UTC()
				s.emitStateLocked(in)
				s.bootLocked(in.ID, false)
			}
		})
}

func (s *Service) terminateInstances(_ context.Context, v awsproto.Values) (response, error) {
	return s.changeStates(v,
		func(*instance) error { return nil },
		func(in *instance, _ bool) {
			if in.State != instTerminated && in.State != instShuttingDown {
				s.terminateLocked(in)
			}
		})
}

var zoneFilters = []string{"zone-name", "zone-id", "state", "region-name", "zone-type", "group-name", "opt-in-status"}

func (s *Service) describeZones(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribeZones(v)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, zoneFilters...); err != nil {
		return nil, err
	}
	for _, n := range r.Names {
		if !s.zoneKnown(n) {
			return nil, invalid("The zone '%s' does not exist.", truncate(n, 64))
		}
	}
	for _, id := range r.IDs {
		if _, ok := s.zoneByID(id); !ok {
			return nil, invalid("The zone ID '%s' does not exist.", truncate(id, 64))
		}
	}
	resp := &describeZonesResponse{Zones: []zoneXML{}}
	for _, z := range s.cfg.Zones {
		x := zoneXML{
			ZoneName: z, ZoneID: s.zoneID(z), ZoneState: "available", RegionName: s.cfg.Region,
			ZoneType: "availability-zone", OptInStatus: "opt-in-not-required",
			GroupName: s.cfg.Region, NetworkBorderGroup: s.cfg.Region,
		}
		if len(r.Names) > 0 && !slices.Contains(r.Names, z) || len(r.IDs) > 0 && !slices.Contains(r.IDs, x.ZoneID) {
			continue
		}
		get := func(name string) []string {
			switch name {
			case "zone-name":
				return []string{x.ZoneName}
			case "zone-id":
				return []string{x.ZoneID}
			case "state":
				return []string{x.ZoneState}
			case "region-name":
				return []string{x.RegionName}
			case "zone-type":
				return []string{x.ZoneType}
			case "group-name":
				return []string{x.GroupName}
			case "opt-in-status":
				return []string{x.OptInStatus}
			}
			return nil
		}
		if matchFilters(r.Filters, nil, get) {
			resp.Zones = append(resp.Zones, x)
		}
	}
	return resp, nil
}
