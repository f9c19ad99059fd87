// Package awscloud implements handover.Cloud over aws-sdk-go-v2, for AWS and
// for the local cloud that speaks its protocol. It must never decide
// anything: it translates calls and errors, and nothing more.
package awscloud

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/handover"
)

// Cloud is handover.Cloud over the EC2 and Auto Scaling APIs.
type Cloud struct {
	ec2    EC2API
	asg    AutoScalingAPI
	elb    ELBAPI // nil: no drain cutover (WithTargets)
	groups []string
}

var _ handover.Cloud = (*Cloud)(nil)

// New returns a Cloud over the given clients. groups are the Auto Scaling
// groups WaitingActions looks at, with their replace-all replacements
// ("<group>-…"); none means every group.
func New(ec2 EC2API, asg AutoScalingAPI, groups []string) *Cloud {
	return &Cloud{ec2: ec2, asg: asg, groups: append([]string(nil), groups...)}
}

// DescribeInstance implements handover.Cloud.
func (c *Cloud) DescribeInstance(ctx context.Context, id string) (handover.Instance, error) {
	out, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return handover.Instance{}, fmt.Errorf("describing instance %s: %w", id, translate(err))
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) != id {
				continue
			}
			inst := handover.Instance{ID: id, PrivateIP: aws.ToString(in.PrivateIpAddress)}
			if in.Placement != nil {
				inst.Zone = aws.ToString(in.Placement.AvailabilityZone)
			}
			if in.State != nil {
				inst.State = string(in.State.Name)
			}
			return inst, nil
		}
	}
	return handover.Instance{}, fmt.Errorf("describing instance %s: %w", id, handover.ErrNotFound)
}

// StopInstance implements handover.Cloud.
func (c *Cloud) StopInstance(ctx context.Context, id string) error {
	if _, err := c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, translate(err))
	}
	return nil
}

// StartInstance implements handover.Cloud.
func (c *Cloud) StartInstance(ctx context.Context, id string) error {
	if _, err := c.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("starting instance %s: %w", id, translate(err))
	}
	return nil
}

// CreateSnapshot implements handover.Cloud.
func (c *Cloud) CreateSnapshot(ctx context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error) {
	out, err := c.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
		VolumeId:          aws.String(volumeID),
		TagSpecifications: tagSpecs(ec2types.ResourceTypeSnapshot, tags),
	})
	if err != nil {
		return handover.Snapshot{}, fmt.Errorf("snapshotting volume %s: %w", volumeID, translate(err))
	}
	return handover.Snapshot{
		ID: aws.ToString(out.SnapshotId), VolumeID: aws.ToString(out.VolumeId), State: string(out.State),
		SizeGiB: aws.ToInt32(out.VolumeSize), Tags: fromTags(out.Tags), StartTime: aws.ToTime(out.StartTime),
	}, nil
}

// DescribeSnapshot implements handover.Cloud.
func (c *Cloud) DescribeSnapshot(ctx context.Context, id string) (handover.Snapshot, error) {
	out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		return handover.Snapshot{}, fmt.Errorf("describing snapshot %s: %w", id, translate(err))
	}
	for _, s := range out.Snapshots {
		if aws.ToString(s.SnapshotId) == id {
			return snapshot(s), nil
		}
	}
	return handover.Snapshot{}, fmt.Errorf("describing snapshot %s: %w", id, handover.ErrNotFound)
}

// FindSnapshots implements handover.Cloud.
func (c *Cloud) FindSnapshots(ctx context.Context, tags map[string]string) ([]handover.Snapshot, error) {
	in := &ec2.DescribeSnapshotsInput{Filters: tagFilters(tags), OwnerIds: []string{"self"}}
	var snaps []handover.Snapshot
	for {
		out, err := c.ec2.DescribeSnapshots(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("finding snapshots by tag: %w", translate(err))
		}
		for _, s := range out.Snapshots {
			snaps = append(snaps, snapshot(s))
		}
		if aws.ToString(out.NextToken) == "" {
			return snaps, nil
		}
		in.NextToken = out.NextToken
	}
}

// DeleteSnapshot implements handover.Cloud.
func (c *Cloud) DeleteSnapshot(ctx context.Context, id string) error {
	_, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
	if err = translate(err); err != nil && !errors.Is(err, handover.ErrNotFound) {
		return fmt.Errorf("deleting snapshot %s: %w", id, err)
	}
	return nil
}

// CreateVolume implements handover.Cloud.
func (c *Cloud) CreateVolume(ctx context.Context, spec handover.VolumeSpec) (handover.Volume, error) {
	in := &ec2.CreateVolumeInput{
		AvailabilityZone:  aws.String(spec.Zone),
		TagSpecifications: tagSpecs(ec2types.ResourceTypeVolume, spec.Tags),
	}
	if spec.SnapshotID != "" {
		in.SnapshotId = aws.String(spec.SnapshotID)
	}
	if spec.SizeGiB > 0 {
		in.Size = aws.Int32(spec.SizeGiB)
	}
	if spec.ClientToken != "" {
		in.ClientToken = aws.String(spec.ClientToken)
	}
	out, err := c.ec2.CreateVolume(ctx, in)
	if err != nil {
		return handover.Volume{}, fmt.Errorf("creating volume in %s: %w", spec.Zone, translate(err))
	}
	return handover.Volume{
		ID: aws.ToString(out.VolumeId), Zone: aws.ToString(out.AvailabilityZone), State: string(out.State),
		SizeGiB: aws.ToInt32(out.Size), SnapshotID: aws.ToString(out.SnapshotId),
		Tags: fromTags(out.Tags), CreateTime: aws.ToTime(out.CreateTime),
	}, nil
}

// DescribeVolume implements handover.Cloud.
func (c *Cloud) DescribeVolume(ctx context.Context, id string) (handover.Volume, error) {
	out, err := c.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil {
		return handover.Volume{}, fmt.Errorf("describing volume %s: %w", id, translate(err))
	}
	for _, v := range out.Volumes {
		if aws.ToString(v.VolumeId) == id {
			return volume(v), nil
		}
	}
	return handover.Volume{}, fmt.Errorf("describing volume %s: %w", id, handover.ErrNotFound)
}

// FindVolumes implements handover.Cloud.
func (c *Cloud) FindVolumes(ctx context.Context, tags map[string]string) ([]handover.Volume, error) {
	in := &ec2.DescribeVolumesInput{Filters: tagFilters(tags)}
	var vols []handover.Volume
	for {
		out, err := c.ec2.DescribeVolumes(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("finding volumes by tag: %w", translate(err))
		}
		for _, v := range out.Volumes {
			vols = append(vols, volume(v))
		}
		if aws.ToString(out.NextToken) == "" {
			return vols, nil
		}
		in.NextToken = out.NextToken
	}
}

// AttachVolume implements handover.Cloud.
func (c *Cloud) AttachVolume(ctx context.Context, volumeID, instanceID, device string) error {
	_, err := c.ec2.AttachVolume(ctx, &ec2.AttachVolumeInput{
		VolumeId: aws.String(volumeID), InstanceId: aws.String(instanceID), Device: aws.String(device),
	})
	if err != nil {
		return fmt.Errorf("attaching volume %s to %s: %w", volumeID, instanceID, translate(err))
	}
	return nil
}

// DetachVolume implements handover.Cloud. EC2 refuses to detach a volume
// that is not attached; that is the outcome asked for, so it is no error.
func (c *Cloud) DetachVolume(ctx context.Context, volumeID string, force bool) error {
	_, err := c.ec2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(volumeID), Force: aws.Bool(force)})
	err = translate(err)
	if errors.Is(err, handover.ErrIncorrectState) {
		if v, derr := c.DescribeVolume(ctx, volumeID); derr == nil && v.AttachedTo == "" {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("detaching volume %s: %w", volumeID, err)
	}
	return nil
}

// TagVolume adds (or overwrites) tags on a volume; safe to repeat.
// ErrNotFound when the volume is gone.
func (c *Cloud) TagVolume(ctx context.Context, volumeID string, tags map[string]string) error {
	var ts []ec2types.Tag
	for k, v := range tags {
		ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := c.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{volumeID}, Tags: ts}); err != nil {
		return fmt.Errorf("tagging volume %s: %w", volumeID, translate(err))
	}
	return nil
}

// DeleteVolume implements handover.Cloud.
func (c *Cloud) DeleteVolume(ctx context.Context, volumeID string) error {
	_, err := c.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(volumeID)})
	if err = translate(err); err != nil && !errors.Is(err, handover.ErrNotFound) {
		return fmt.Errorf("deleting volume %s: %w", volumeID, err)
	}
	return nil
}

func tagSpecs(rt ec2types.ResourceType, tags map[string]string) []ec2types.TagSpecification {
	if len(tags) == 0 {
		return nil
	}
	spec := ec2types.TagSpecification{ResourceType: rt}
	for _, k := range sortedKeys(tags) {
		spec.Tags = append(spec.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return []ec2types.TagSpecification{spec}
}

func tagFilters(tags map[string]string) []ec2types.Filter {
	var fs []ec2types.Filter
	for _, k := range sortedKeys(tags) {
		fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	return fs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fromTags(tags []ec2types.Tag) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func snapshot(s ec2types.Snapshot) handover.Snapshot {
	return handover.Snapshot{
		ID: aws.ToString(s.SnapshotId), VolumeID: aws.ToString(s.VolumeId), State: string(s.State),
		SizeGiB: aws.ToInt32(s.VolumeSize), Tags: fromTags(s.Tags), StartTime: aws.ToTime(s.StartTime),
	}
}

func volume(v ec2types.Volume) handover.Volume {
	vol := handover.Volume{
		ID: aws.ToString(v.VolumeId), Zone: aws.ToString(v.AvailabilityZone), State: string(v.State),
		SizeGiB: aws.ToInt32(v.Size), SnapshotID: aws.ToString(v.SnapshotId),
		Tags: fromTags(v.Tags), CreateTime: aws.ToTime(v.CreateTime),
	}
	if len(v.Attachments) > 0 {
		vol.AttachedTo = aws.ToString(v.Attachments[0].InstanceId)
		vol.AttachState = string(v.Attachments[0].State)
		vol.AttachDevice = aws.ToString(v.Attachments[0].Device)
	}
	return vol
}
