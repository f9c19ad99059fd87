package ec2

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The in-process API the local Auto Scaling uses: the same launches and
// terminations as RunInstances and TerminateInstances, without HTTP.

// LaunchRequest asks for one instance from a launch template, or, with no
// template named, from an image (what an Auto Scaling launch configuration
// says to launch).
type LaunchRequest struct {
	// LaunchTemplateID or LaunchTemplateName (at most one) and Version
	// ("$Latest", "$Default" or a number; empty means $Default).
	LaunchTemplateID, LaunchTemplateName, Version string
	// ImageID, InstanceType and UserData (raw bytes) are the launch when no
	// template is named; InstanceType defaults to m1.small, as in
	// RunInstances.
	ImageID, InstanceType string
	UserData              []byte
	// Zone overrides the template's; empty lets the service choose.
	Zone string
	// Tags are added to the instance; unlike CreateTags they may use the
	// reserved aws: prefix (aws:autoscaling:groupName).
	Tags map[string]string
}

// InstanceInfo is what Auto Scaling needs to know of an instance.
type InstanceInfo struct {
	ID, Zone, State, PrivateIP, ImageID string
	LaunchTime                          time.Time
	// ProcessAlive says whether any of the instance's processes runs: an
	// instance can be "running" with its service dead, as on EC2.
	ProcessAlive bool
	Tags         map[string]string
}

// Launch starts one instance as RunInstances would, without HTTP. It
// returns at once with the instance pending; errors are *awsproto.Error
// with EC2's codes. Not safe to repeat: each call launches an instance.
func (s *Service) Launch(ctx context.Context, req LaunchRequest) (InstanceInfo, error) {
	if err := ctx.Err(); err != nil {
		return InstanceInfo{}, err
	}
	ref := templateRef{ID: req.LaunchTemplateID, Name: req.LaunchTemplateName, Version: req.Version}
	fromTemplate := ref.ID != "" || ref.Name != ""
	switch {
	case !fromTemplate && req.ImageID == "":
		return InstanceInfo{}, missing("LaunchTemplateId, LaunchTemplateName or ImageId")
	case fromTemplate && req.ImageID != "":
		return InstanceInfo{}, awsproto.Errorf("InvalidParameterCombination", "Launch either from a launch template or from an image, not both")
	case ref.ID != "" && ref.Name != "":
		return InstanceInfo{}, awsproto.Errorf("InvalidParameterCombination", "Specify either a launch template ID or a launch template name, not both")
	case req.ImageID != "":
		if err := kindImage.check(req.ImageID); err != nil {
			return InstanceInfo{}, err
		}
	}
	if len(req.UserData) > maxUserData {
		return InstanceInfo{}, invalid("User data is limited to %d bytes", maxUserData)
	}
	for k, v := range req.Tags {
		if k == "" || len(k) > maxTagKeyLen || len(v) > maxTagValueLen {
			return InstanceInfo{}, invalid("Tag %q=%q is empty or too long", truncate(k, 64), truncate(v, 64))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return InstanceInfo{}, errClosed
	}
	spec := launchSpec{Zone: req.Zone, Min: 1, Max: 1, Tags: maps.Clone(req.Tags),
		ImageID: req.ImageID, InstanceType: req.InstanceType, UserData: req.UserData}
	if fromTemplate {
		if err := s.applyTemplateLocked(&spec, ref, false); err != nil {
			return InstanceInfo{}, err
		}
		if spec.ImageID == "" {
			return InstanceInfo{}, invalid("Launch template %s%s has no image id", ref.ID, ref.Name)
		}
	}
	if spec.InstanceType == "" {
		spec.InstanceType = "m1.small"
	}
	ins, err := s.launchLocked(spec)
	if err != nil {
		return InstanceInfo{}, err
	}
	if err := s.saveLocked(); err != nil {
		return InstanceInfo{}, err
	}
	return s.infoLocked(ins[0]), nil
}

// Terminate begins terminating an instance, as TerminateInstances does, and
// returns at once. Safe to repeat; an unknown id returns
// InvalidInstanceID.NotFound.
func (s *Service) Terminate(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := kindInstance.check(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.Instances[id]
	if in == nil {
		return kindInstance.notFoundErr(id)
	}
	if in.State == instTerminated || in.State == instShuttingDown {
		return nil
	}
	s.terminateLocked(in)
	return s.saveLocked()
}

// Instance returns an instance's current state, or InvalidInstanceID.NotFound.
func (s *Service) Instance(ctx context.Context, id string) (InstanceInfo, error) {
	if err := ctx.Err(); err != nil {
		return InstanceInfo{}, err
	}
	s.mu.Lock()
	if s.purgeLocked() {
		_ = s.saveLocked()
	}
	in := s.st.Instances[id]
	if in == nil {
		s.mu.Unlock()
		return InstanceInfo{}, kindInstance.notFoundErr(id)
	}
	info := s.infoLocked(in)
	var p *proc
	if r := s.rt[id]; r != nil {
		p = r.proc
	}
	zoneDown := s.down[in.Zone]
	s.mu.Unlock()
	// A frozen instance in a zone that is down fails its status checks.
	info.ProcessAlive = p != nil && !zoneDown && p.alive() // scans /proc: outside the lock
	return info, nil
}

func (s *Service) infoLocked(in *instance) InstanceInfo {
	return InstanceInfo{
		ID: in.ID, Zone: in.Zone, State: in.State, PrivateIP: in.PrivateIP, ImageID: in.ImageID,
		LaunchTime: in.LaunchTime, Tags: s.tagsOfLocked(in.ID),
	}
}

// Zones returns the region's availability zones.
func (s *Service) Zones() []string { return slices.Clone(s.cfg.Zones) }
