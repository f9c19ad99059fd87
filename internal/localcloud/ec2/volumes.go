package ec2

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// A volume is the directory DataDir/volumes/vol-…, bound to a zone. A blank
// volume is an empty directory; one from a snapshot is filled by a
// background restore (creating → available, or error). Attaching links it
// into the instance as DataDir/instances/i-…/volumes/<device basename>.

func (s *Service) createVolume(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseCreateVolume(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	zone := r.Zone
	if zone == "" {
		z, ok := s.zoneByID(r.ZoneID)
		if !ok {
			return nil, awsproto.Errorf("InvalidZone.NotFound", "The zone ID '%s' does not exist.", truncate(r.ZoneID, 64))
		}
		zone = z
	} else if !s.zoneKnown(zone) {
		return nil, awsproto.Errorf("InvalidZone.NotFound", "The zone '%s' does not exist.", truncate(zone, 64))
	}
	if err := s.zoneDownLocked(zone); err != nil {
		return nil, err
	}
	tokenKey := "CreateVolume:" + r.ClientToken
	if r.ClientToken != "" {
		if t, ok := s.st.Tokens[tokenKey]; ok {
			if t.Hash != r.Hash {
				return nil, awsproto.Errorf("IdempotentParameterMismatch", "The client token '%s' was already used with different parameters.", r.ClientToken)
			}
			if cur, ok := s.st.Volumes[t.Volume.ID]; ok {
				return &createVolumeResponse{volumeXML: s.volumeXMLLocked(cur)}, nil
			}
			gone := *t.Volume
			gone.Status, gone.Attachment = volDeleted, nil
			return &createVolumeResponse{volumeXML: s.volumeXMLLocked(&gone)}, nil
		}
	}
	size := r.Size
	var src *snapshot
	if r.SnapshotID != "" {
		src = s.st.Snapshots[r.SnapshotID]
		if src == nil {
			return nil, kindSnapshot.notFoundErr(r.SnapshotID)
		}
		if src.Status != snapCompleted {
			return nil, awsproto.Errorf("IncorrectState", "Snapshot '%s' is in invalid state - %s", src.ID, src.Status)
		}
		if !r.SizeSet {
			size = src.VolumeSize
		} else if size < src.VolumeSize {
			return nil, invalid("The volume size is invalid for the given snapshot: %d GiB is smaller than the snapshot's %d GiB.", size, src.VolumeSize)
		}
	}
	vol := &volume{
		ID: newID("vol-"), Zone: zone, Size: size, Type: r.VolumeType, Iops: r.Iops,
		SnapshotID: r.SnapshotID, Status: volCreating, CreateTime: s.clk.Now().UTC(),
	}
	if err := s.addTagsLocked(vol.ID, tagsFor(r.Tags, "volume")); err != nil {
		return nil, err
	}
	s.st.Volumes[vol.ID] = vol
	resp := &createVolumeResponse{volumeXML: s.volumeXMLLocked(vol)} // "creating", as EC2 answers
	if src == nil {
		if err := os.MkdirAll(s.volumeDir(vol.ID), 0o755); err != nil {
			delete(s.st.Volumes, vol.ID)
			delete(s.st.Tags, vol.ID)
			return nil, awsproto.Internal("creating the volume's directory: %v", err)
		}
		vol.Status = volAvailable
		s.emitVolumeLocked(vol, "")
	} else {
		s.startRestoreJobLocked(vol)
	}
	if r.ClientToken != "" {
		cp := *vol
		s.st.Tokens[tokenKey] = &clientToken{Hash: r.Hash, IDs: []string{vol.ID}, Volume: &cp}
	}
	s.log.Info("volume created", "volume-id", vol.ID, "zone", zone, "snapshot-id", vol.SnapshotID)
	return resp, s.saveLocked()
}

// startRestoreJobLocked fills a creating volume from its snapshot in the
// background.
func (s *Service) startRestoreJobLocked(v *volume) {
	volID, snapID := v.ID, v.SnapshotID
	s.refs[snapID]++
	if !s.goBGLocked(func() { s.runRestore(volID, snapID) }) {
		s.refs[snapID]--
	}
}

func (s *Service) runRestore(volID, snapID string) {
	dir := s.volumeDir(volID)
	err := os.RemoveAll(dir) // what an interrupted restore left
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		_, err = s.cfg.Snapshots.Restore(s.ctx, snapID, dir, func(done, total int64) {
			s.mu.Lock()
			if v := s.st.Volumes[volID]; v != nil {
				v.Progress = percent(done, total)
			}
			s.mu.Unlock()
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(snapID)
	if s.ctx.Err() != nil {
		return // Close interrupted it; New starts it over
	}
	v := s.st.Volumes[volID]
	if v == nil || v.Status != volCreating {
		return
	}
	if err != nil {
		v.Status = volError
		s.log.Error("restoring a volume from its snapshot failed", "volume-id", volID, "snapshot-id", snapID, "error", err)
		s.emitVolumeLocked(v, fmt.Sprintf("The volume could not be created from snapshot %s: %v", snapID, err))
	} else {
		v.Status, v.Progress = volAvailable, 100
		s.log.Info("volume restored", "volume-id", volID, "snapshot-id", snapID)
		s.emitVolumeLocked(v, "")
	}
	_ = s.saveLocked()
}

var volumeFilters = []string{
	"volume-id", "status", "availability-zone", "snapshot-id", "size", "volume-type", "create-time",
	"encrypted", "multi-attach-enabled", "attachment.instance-id", "attachment.status",
	"attachment.device", "attachment.attach-time", "attachment.delete-on-termination",
}

func (s *Service) describeVolumes(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribe(v, "VolumeId", kindVolume, 5, 500, false)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, volumeFilters...); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, err := selectIDs(s.st.Volumes, r.IDs, kindVolume)
	if err != nil {
		return nil, err
	}
	var out []volumeXML
	for _, id := range ids {
		vol := s.st.Volumes[id]
		if matchFilters(r.Filters, s.st.Tags[id], s.volumeAttrs(vol)) {
			out = append(out, s.volumeXMLLocked(vol))
		}
	}
	page, next := paginate(out, func(x volumeXML) string { return x.VolumeID }, r.Page)
	return &describeVolumesResponse{Volumes: page, NextToken: next}, nil
}

func (s *Service) volumeAttrs(vol *volume) attrs {
	return func(name string) []string {
		switch name {
		case "volume-id":
			return []string{vol.ID}
		case "status":
			return []string{vol.Status}
		case "availability-zone":
			return []string{vol.Zone}
		case "snapshot-id":
			return []string{vol.SnapshotID}
		case "size":
			return []string{strconv.Itoa(vol.Size)}
		case "volume-type":
			return []string{vol.Type}
		case "create-time":
			return []string{ts(vol.CreateTime)}
		case "encrypted", "multi-attach-enabled", "attachment.delete-on-termination":
			return []string{"false"}
		}
		a := vol.Attachment
		if a == nil {
			return nil
		}
		switch name {
		case "attachment.instance-id":
			return []string{a.InstanceID}
		case "attachment.status":
			return []string{"attached"}
		case "attachment.device":
			return []string{a.Device}
		case "attachment.attach-time":
			return []string{ts(a.AttachTime)}
		}
		return nil
	}
}

func (s *Service) volumeXMLLocked(vol *volume) volumeXML {
	x := volumeXML{
		VolumeID: vol.ID, Size: vol.Size, SnapshotID: vol.SnapshotID,
		AvailabilityZone: vol.Zone, AvailabilityZoneID: s.zoneID(vol.Zone),
		Status: vol.Status, CreateTime: ts(vol.CreateTime), VolumeType: vol.Type, Iops: vol.Iops,
		Tags: tagSet(s.st.Tags[vol.ID]), Attachments: []attachmentXML{},
	}
	if a := vol.Attachment; a != nil {
		x.Attachments = append(x.Attachments, attachmentXML{
			VolumeID: vol.ID, InstanceID: a.InstanceID, Device: a.Device,
			Status: "attached", AttachTime: ts(a.AttachTime),
		})
	}
	return x
}

func (s *Service) attachVolume(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseAttachVolume(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vol := s.st.Volumes[r.VolumeID]
	if vol == nil {
		return nil, kindVolume.notFoundErr(r.VolumeID)
	}
	in := s.st.Instances[r.InstanceID]
	if in == nil {
		return nil, kindInstance.notFoundErr(r.InstanceID)
	}
	switch {
	case vol.Attachment != nil:
		return nil, awsproto.Errorf("VolumeInUse", "%s is already attached to an instance", vol.ID)
	case vol.Status != volAvailable:
		return nil, awsproto.Errorf("IncorrectState", "%s is not 'available'.", vol.ID)
	case in.State != instRunning && in.State != instStopped:
		return nil, awsproto.Errorf("IncorrectState", "Instance '%s' is not 'running'.", in.ID)
	case s.down[vol.Zone]:
		return nil, s.zoneDownLocked(vol.Zone)
	case vol.Zone != in.Zone:
		return nil, awsproto.Errorf("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", vol.ID, in.ID)
	}
	base := path.Base(r.Device)
	for _, other := range s.st.Volumes {
		if a := other.Attachment; a != nil && a.InstanceID == in.ID && path.Base(a.Device) == base {
			return nil, invalid("Invalid value '%s' for unixDevice. Attachment point %s is already in use", r.Device, r.Device)
		}
	}
	if err := s.linkVolume(in.ID, base, vol.ID); err != nil {
		return nil, awsproto.Internal("attaching %s: %v", vol.ID, err)
	}
	now := s.clk.Now().UTC()
	vol.Attachment = &attachment{InstanceID: in.ID, Device: r.Device, AttachTime: now}
	vol.Status = volInUse
	s.log.Info("volume attached", "volume-id", vol.ID, "instance-id", in.ID, "device", r.Device)
	return &attachmentResponse{attachmentXML: attachmentXML{
		VolumeID: vol.ID, InstanceID: in.ID, Device: r.Device, Status: "attaching", AttachTime: ts(now),
	}}, s.saveLocked()
}

// linkVolume makes the volume appear inside the instance.
func (s *Service) linkVolume(instanceID, deviceBase, volumeID string) error {
	dir := filepath.Join(s.instanceDir(instanceID), "volumes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	link := filepath.Join(dir, deviceBase)
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(s.volumeDir(volumeID), link)
}

func (s *Service) unlinkVolume(a *attachment) {
	link := filepath.Join(s.instanceDir(a.InstanceID), "volumes", path.Base(a.Device))
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing a volume link failed", "instance-id", a.InstanceID, "error", err)
	}
}

func (s *Service) detachVolume(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDetachVolume(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vol := s.st.Volumes[r.VolumeID]
	if vol == nil {
		return nil, kindVolume.notFoundErr(r.VolumeID)
	}
	a := vol.Attachment
	if a == nil {
		return nil, awsproto.Errorf("IncorrectState", "Volume '%s' is in the '%s' state.", vol.ID, vol.Status)
	}
	if r.InstanceID != "" && r.InstanceID != a.InstanceID || r.Device != "" && r.Device != a.Device {
		return nil, awsproto.Errorf("InvalidAttachment.NotFound", "Volume '%s' is not attached to instance '%s' at '%s'.", vol.ID, r.InstanceID, r.Device)
	}
	s.detachLocked(vol)
	s.log.Info("volume detached", "volume-id", vol.ID, "instance-id", a.InstanceID, "force", r.Force)
	return &attachmentResponse{attachmentXML: attachmentXML{
		VolumeID: vol.ID, InstanceID: a.InstanceID, Device: a.Device, Status: "detaching", AttachTime: ts(a.AttachTime),
	}}, s.saveLocked()
}

func (s *Service) detachLocked(vol *volume) {
	if vol.Attachment == nil {
		return
	}
	s.unlinkVolume(vol.Attachment)
	vol.Attachment = nil
	vol.Status = volAvailable
}

func (s *Service) deleteVolume(_ context.Context, v awsproto.Values) (response, error) {
	id, err := parseID(v, "VolumeId", kindVolume)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vol := s.st.Volumes[id]
	if vol == nil {
		return nil, kindVolume.notFoundErr(id)
	}
	if a := vol.Attachment; a != nil {
		return nil, awsproto.Errorf("VolumeInUse", "Volume %s is currently attached to %s", id, a.InstanceID)
	}
	if vol.Status == volCreating {
		return nil, awsproto.Errorf("IncorrectState", "The volume '%s' is 'creating'; it can be deleted once it is 'available'.", id)
	}
	// A pending snapshot still reads the directory (EBS snapshots are
	// point-in-time, so deleting their volume does not spoil them); it goes
	// when the last of them ends.
	if !s.snapshottingLocked(id) {
		if err := os.RemoveAll(s.volumeDir(id)); err != nil {
			return nil, awsproto.Internal("deleting volume %s: %v", id, err)
		}
	}
	delete(s.st.Volumes, id)
	delete(s.st.Tags, id)
	s.log.Info("volume deleted", "volume-id", id)
	return &returnResponse{Return: true}, s.saveLocked()
}

// snapshottingLocked reports whether a pending snapshot reads volume id.
func (s *Service) snapshottingLocked(id string) bool {
	for _, sn := range s.st.Snapshots {
		if sn.VolumeID == id && sn.Status == snapPending {
			return true
		}
	}
	return false
}

// removeOrphanDirLocked deletes the directory of a volume that was deleted
// while snapshots still read it, once none does.
func (s *Service) removeOrphanDirLocked(id string) {
	if s.st.Volumes[id] != nil || s.snapshottingLocked(id) {
		return
	}
	dir := s.volumeDir(id)
	s.goBGLocked(func() {
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("removing a deleted volume's directory failed", "volume-id", id, "error", err)
		}
	})
}

// removeOrphanDirsLocked deletes volume directories the state does not
// know and no pending snapshot reads: left by a crash, or by a volume
// deleted while a snapshot of it was pending.
func (s *Service) removeOrphanDirsLocked() {
	ents, err := os.ReadDir(filepath.Join(s.cfg.DataDir, "volumes"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && validID(e.Name(), kindVolume.prefix) {
			s.removeOrphanDirLocked(e.Name())
		}
	}
}

// percent is done of total as a whole percentage, 0 to 100.
func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(max(done*100/total, 0), 100))
}
