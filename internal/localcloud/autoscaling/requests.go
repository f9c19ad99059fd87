package autoscaling

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file reads requests into typed inputs; it checks only the wire
// format (presence, numbers, booleans). Whether a value makes sense is for
// the handlers to decide.

// form wraps the request values with the awsquery error shapes.
type form struct{ awsproto.Values }

// required returns a parameter that must be present, with AWS's wording for
// a missing one (the member name starts lower-case there).
func (f form) required(key string) (string, error) {
	s := f.Get(key)
	if s == "" {
		member := strings.ToLower(key[:1]) + key[1:]
		return "", awsproto.ValidationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
	}
	return s, nil
}

// optInt returns a present integer parameter, or nil.
func (f form) optInt(key string) (*int, error) {
	if f.Get(key) == "" {
		return nil, nil
	}
	// The API's integers are 32-bit; refusing larger ones also keeps
	// seconds-to-Duration conversions from overflowing.
	n, err := strconv.ParseInt(f.Get(key), 10, 32)
	if err != nil {
		return nil, awsproto.ValidationError("Value '%s' at '%s' failed to satisfy constraint: Member must be a 32-bit integer", f.Get(key), key)
	}
	v := int(n)
	return &v, nil
}

// reqInt returns an integer parameter that must be present.
func (f form) reqInt(key string) (int, error) {
	if _, err := f.required(key); err != nil {
		return 0, err
	}
	n, err := f.optInt(key)
	if err != nil {
		return 0, err
	}
	return *n, nil
}

// optBool returns a present boolean parameter, or nil.
func (f form) optBool(key string) (*bool, error) {
	if f.Get(key) == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(f.Get(key))
	if err != nil {
		return nil, awsproto.ValidationError("Value '%s' at '%s' failed to satisfy constraint: Member must be a boolean", f.Get(key), key)
	}
	return &b, nil
}

func (f form) reqBool(key string) (bool, error) {
	if _, err := f.required(key); err != nil {
		return false, err
	}
	b, err := f.optBool(key)
	if err != nil {
		return false, err
	}
	return *b, nil
}

// maxRecords reads MaxRecords, defaulting to def and bounded by limit.
func (f form) maxRecords(def, limit int) (int, error) {
	n, err := f.optInt("MaxRecords")
	if err != nil || n == nil {
		return def, err
	}
	if *n < 1 || *n > limit {
		return 0, awsproto.ValidationError("1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value between 1 and %d", *n, limit)
	}
	return *n, nil
}

type hookInput struct {
	Name, Transition, DefaultResult, Metadata, TargetARN, RoleARN string
	// TargetSet reports NotificationTargetARN present, even empty: an
	// empty one clears the hook's target.
	TargetSet bool
	// HeartbeatTimeout is in seconds, nil when absent.
	HeartbeatTimeout *int
}

func parseHookInput(f form, prefix string) (hookInput, error) {
	var in hookInput
	var err error
	if in.Name, err = f.required(prefix + "LifecycleHookName"); err != nil {
		return in, err
	}
	in.Transition = f.Get(prefix + "LifecycleTransition")
	in.DefaultResult = f.Get(prefix + "DefaultResult")
	in.Metadata = f.Get(prefix + "NotificationMetadata")
	in.TargetARN = f.Get(prefix + "NotificationTargetARN")
	in.TargetSet = f.Has(prefix + "NotificationTargetARN")
	in.RoleARN = f.Get(prefix + "RoleARN")
	in.HeartbeatTimeout, err = f.optInt(prefix + "HeartbeatTimeout")
	return in, err
}

// groupInput serves CreateAutoScalingGroup and UpdateAutoScalingGroup; nil
// and empty fields were absent.
type groupInput struct {
	Name                         string
	LaunchTemplate               *launchTemplate
	LaunchConfigurationName      string
	MinSize, MaxSize, Desired    *int
	GracePeriod, DefaultCooldown *int
	Zones                        []string
	VPCZoneIdentifier            string
	HealthCheckType              string
	TargetGroupARNs              []string
	TerminationPolicies          []string
	NewProtected                 *bool
	Hooks                        []hookInput
	Tags                         []tagInput
	// Maintenance is InstanceMaintenancePolicy, nil when neither of its
	// members was given.
	Maintenance *maintenanceInput
}

// maintenanceInput is InstanceMaintenancePolicy as sent; a nil member was
// absent.
type maintenanceInput struct {
	MinHealthy, MaxHealthy *int
}

type tagInput struct {
	Key, Value   string
	Propagate    bool
	ResourceType string
}

func parseGroupInput(f form, create bool) (groupInput, error) {
	var in groupInput
	var err error
	if in.Name, err = f.required("AutoScalingGroupName"); err != nil {
		return in, err
	}
	if id, name, ver := f.Get("LaunchTemplate.LaunchTemplateId"), f.Get("LaunchTemplate.LaunchTemplateName"), f.Get("LaunchTemplate.Version"); id != "" || name != "" || ver != "" {
		in.LaunchTemplate = &launchTemplate{ID: id, Name: name, Version: ver}
	}
	in.LaunchConfigurationName = f.Get("LaunchConfigurationName")
	for _, p := range []struct {
		key string
		dst **int
	}{
		{"MinSize", &in.MinSize}, {"MaxSize", &in.MaxSize}, {"DesiredCapacity", &in.Desired},
		{"HealthCheckGracePeriod", &in.GracePeriod}, {"DefaultCooldown", &in.DefaultCooldown},
	} {
		if *p.dst, err = f.optInt(p.key); err != nil {
			return in, err
		}
	}
	if create {
		if _, err := f.reqInt("MinSize"); err != nil {
			return in, err
		}
		if _, err := f.reqInt("MaxSize"); err != nil {
			return in, err
		}
	}
	in.Zones = f.List("AvailabilityZones.member")
	in.VPCZoneIdentifier = f.Get("VPCZoneIdentifier")
	in.HealthCheckType = f.Get("HealthCheckType")
	in.TargetGroupARNs = f.List("TargetGroupARNs.member")
	in.TerminationPolicies = f.List("TerminationPolicies.member")
	if in.NewProtected, err = f.optBool("NewInstancesProtectedFromScaleIn"); err != nil {
		return in, err
	}
	var m maintenanceInput
	if m.MinHealthy, err = f.optInt("InstanceMaintenancePolicy.MinHealthyPercentage"); err != nil {
		return in, err
	}
	if m.MaxHealthy, err = f.optInt("InstanceMaintenancePolicy.MaxHealthyPercentage"); err != nil {
		return in, err
	}
	if m.MinHealthy != nil || m.MaxHealthy != nil {
		in.Maintenance = &m
	}
	for _, m := range f.Structs("LifecycleHookSpecificationList.member") {
		h, err := parseHookInput(form{m}, "")
		if err != nil {
			return in, err
		}
		in.Hooks = append(in.Hooks, h)
	}
	for _, m := range f.Structs("Tags.member") {
		t := form{m}
		key, err := t.required("Key")
		if err != nil {
			return in, err
		}
		p, err := t.optBool("PropagateAtLaunch")
		if err != nil {
			return in, err
		}
		// AWS's default for PropagateAtLaunch is true.
		in.Tags = append(in.Tags, tagInput{Key: key, Value: t.Get("Value"), Propagate: p == nil || *p, ResourceType: t.Get("ResourceType")})
	}
	return in, nil
}

// actionInput serves CompleteLifecycleAction and
// RecordLifecycleActionHeartbeat.
type actionInput struct {
	Group, Hook, Token, InstanceID, Result string
}

func parseActionInput(f form, complete bool) (actionInput, error) {
	var in actionInput
	var err error
	if in.Hook, err = f.required("LifecycleHookName"); err != nil {
		return in, err
	}
	if in.Group, err = f.required("AutoScalingGroupName"); err != nil {
		return in, err
	}
	if complete {
		if in.Result, err = f.required("LifecycleActionResult"); err != nil {
			return in, err
		}
	}
	in.Token = f.Get("LifecycleActionToken")
	in.InstanceID = f.Get("InstanceId")
	if in.Token == "" && in.InstanceID == "" {
		return in, awsproto.ValidationError("Either instance ID or lifecycle action token must be specified.")
	}
	return in, nil
}

// pageToken is an opaque NextToken: the key the next page starts at,
// prefixed with the action it belongs to so tokens cannot be mixed up.
func pageToken(kind, key string) string {
	return encodeToken(kind + "\x00" + key)
}

func parsePageToken(kind, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, ok := decodeToken(tok)
	k, key, found := strings.Cut(raw, "\x00")
	if !ok || !found || k != kind {
		return "", &awsproto.Error{Code: "InvalidNextToken", Message: "The token '" + tok + "' is invalid.", Status: 400}
	}
	return key, nil
}

func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeToken(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err == nil
}
