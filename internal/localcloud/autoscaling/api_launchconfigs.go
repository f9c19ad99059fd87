package autoscaling

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The launch configuration API. A launch configuration cannot be changed,
// only created and deleted; a group names one instead of a launch template
// (api_groups.go) and launches its image, instance type and user data. Of
// the settings EC2 here has no use for, the common ones are kept and
// described back (key name, security groups, instance profile…); block
// device mappings, metadata options and ClassicLink are accepted and
// dropped, as RunInstances drops them.

// Limits from the API reference: names and most strings are at most 255
// characters, user data 21847 characters of base64 (16 KiB decoded).
const (
	maxNameLen      = 255
	maxUserDataText = 21847
	maxUserDataRaw  = 16 * 1024
)

func errConfigurationExists(name string) error {
	return &awsproto.Error{Code: "AlreadyExists", Message: "Launch Configuration by this name already exists - A launch configuration already exists with the name " + name, Status: http.StatusBadRequest}
}

func errConfigurationNotFound(name string) error {
	return awsproto.ValidationError("Launch configuration name not found - Launch configuration %s not found", name)
}

func errConfigurationInUse(name, group string) error {
	return &awsproto.Error{Code: "ResourceInUse", Message: "Cannot delete launch configuration " + name + " because it is attached to AutoScalingGroup " + group, Status: http.StatusBadRequest}
}

func (s *Service) launchConfigurationARN(name string) string {
	return fmt.Sprintf("arn:%s:autoscaling:%s:%s:launchConfiguration:%s:launchConfigurationName/%s", partition(s.cfg.Region), s.cfg.Region, s.cfg.AccountID, newUUID(), name)
}

func (s *Service) createLaunchConfiguration(_ context.Context, f form) (any, error) {
	name, err := f.required("LaunchConfigurationName")
	if err != nil {
		return nil, err
	}
	if len(name) > maxNameLen {
		return nil, awsproto.ValidationError("1 validation error detected: Value at 'launchConfigurationName' failed to satisfy constraint: Member must have length less than or equal to %d", maxNameLen)
	}
	if f.Get("InstanceId") != "" {
		return nil, awsproto.ValidationError("The local cloud cannot copy a launch configuration from instance %s; give ImageId and InstanceType instead.", f.Get("InstanceId"))
	}
	lc := &launchConfiguration{
		Name: name, ImageID: f.Get("ImageId"), InstanceType: f.Get("InstanceType"),
		KeyName: f.Get("KeyName"), SecurityGroups: f.List("SecurityGroups.member"),
		IamInstanceProfile: f.Get("IamInstanceProfile"), KernelID: f.Get("KernelId"), RamdiskID: f.Get("RamdiskId"),
		SpotPrice: f.Get("SpotPrice"), PlacementTenancy: f.Get("PlacementTenancy"), Monitoring: true,
	}
	if lc.ImageID == "" || lc.InstanceType == "" {
		return nil, awsproto.ValidationError("Valid requests must contain either the InstanceID parameter or both the ImageId and InstanceType parameters.")
	}
	if ud := f.Get("UserData"); ud != "" {
		if len(ud) > maxUserDataText {
			return nil, awsproto.ValidationError("1 validation error detected: Value at 'userData' failed to satisfy constraint: Member must have length less than or equal to %d", maxUserDataText)
		}
		if _, err := decodeUserData(ud); err != nil {
			return nil, err
		}
		lc.UserData = ud
	}
	if m, err := f.optBool("InstanceMonitoring.Enabled"); err != nil {
		return nil, err
	} else if m != nil {
		lc.Monitoring = *m
	}
	if b, err := f.optBool("EbsOptimized"); err != nil {
		return nil, err
	} else if b != nil {
		lc.EbsOptimized = *b
	}
	if lc.AssociatePublicIP, err = f.optBool("AssociatePublicIpAddress"); err != nil {
		return nil, err
	}
	if t := lc.PlacementTenancy; t != "" && t != "default" && t != "dedicated" {
		return nil, awsproto.ValidationError("Value '%s' for PlacementTenancy is invalid; use default or dedicated.", t)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.LaunchConfigurations[name]; ok {
		return nil, errConfigurationExists(name)
	}
	lc.Created = s.now()
	lc.ARN = s.launchConfigurationARN(name)
	s.st.LaunchConfigurations[name] = lc
	return nil, s.saveLocked()
}

// decodeUserData reads a launch configuration's user data: base64, as the
// API requires (the AWS CLI encodes it for the user).
func decodeUserData(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, awsproto.ValidationError("Invalid BASE64 encoding of user data.")
	}
	if len(b) > maxUserDataRaw {
		return nil, awsproto.ValidationError("User data is limited to %d bytes.", maxUserDataRaw)
	}
	return b, nil
}

func (s *Service) describeLaunchConfigurations(_ context.Context, f form) (any, error) {
	limit, err := f.maxRecords(50, 100)
	if err != nil {
		return nil, err
	}
	start, err := parsePageToken("launchconfigurations", f.Get("NextToken"))
	if err != nil {
		return nil, err
	}
	names := f.List("LaunchConfigurationNames.member")
	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*launchConfiguration
	for name, lc := range s.st.LaunchConfigurations {
		if (len(names) > 0 && !slices.Contains(names, name)) || name < start {
			continue
		}
		matched = append(matched, lc)
	}
	slices.SortFunc(matched, func(a, b *launchConfiguration) int { return strings.Compare(a.Name, b.Name) })
	res := &describeLaunchConfigurationsResult{}
	for i, lc := range matched {
		if i == limit {
			res.NextToken = pageToken("launchconfigurations", lc.Name)
			break
		}
		res.LaunchConfigurations.Member = append(res.LaunchConfigurations.Member, toXMLLaunchConfiguration(lc))
	}
	return res, nil
}

func (s *Service) deleteLaunchConfiguration(_ context.Context, f form) (any, error) {
	name, err := f.required("LaunchConfigurationName")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.LaunchConfigurations[name]; !ok {
		return nil, errConfigurationNotFound(name)
	}
	if g := s.groupUsingLocked(name); g != "" {
		return nil, errConfigurationInUse(name, g)
	}
	delete(s.st.LaunchConfigurations, name)
	return nil, s.saveLocked()
}

// groupUsingLocked returns a group that launches from the configuration,
// or "". Callers hold mu.
func (s *Service) groupUsingLocked(configuration string) string {
	var using []string
	for name, g := range s.st.Groups {
		if g.LaunchConfiguration == configuration {
			using = append(using, name)
		}
	}
	if len(using) == 0 {
		return ""
	}
	return slices.Min(using)
}

// configurationLaunchLocked is what a group launching from configuration
// name asks EC2 for, or an error that fails the launch. Callers hold mu.
func (s *Service) configurationLaunchLocked(name string) (*ConfigurationLaunch, error) {
	lc, ok := s.st.LaunchConfigurations[name]
	if !ok {
		return nil, fmt.Errorf("launch configuration %s does not exist", name)
	}
	ud, err := decodeUserData(lc.UserData)
	if err != nil {
		return nil, fmt.Errorf("launch configuration %s: %w", name, err)
	}
	return &ConfigurationLaunch{Name: lc.Name, ImageID: lc.ImageID, InstanceType: lc.InstanceType, UserData: ud}, nil
}
