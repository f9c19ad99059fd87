package ec2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/snapstore"
)

// Snapshots are asynchronous as in EBS, and point-in-time as in EBS: the
// volume's content is captured into the snapshot store before
// CreateSnapshot answers, so writes made once it has answered "pending" do
// not reach the snapshot (an environment clone un-quiesces its source at
// that moment). The snapshot then stays pending for at least
// MinSnapshotDuration, and a background job marks it completed or error and
// emits EBS Snapshot Notification. Capturing is incremental against the
// volume's latest completed snapshot (or, for a volume's first snapshot,
// the snapshot it was created from), so its cost is the bytes changed
// since; EBS's own point in time costs nothing, which the local cloud's
// figures then include.

func (s *Service) createSnapshot(ctx context.Context, v awsproto.Values) (response, error) {
	r, err := parseCreateSnapshot(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	vol := s.st.Volumes[r.VolumeID]
	if vol == nil {
		s.mu.Unlock()
		return nil, kindVolume.notFoundErr(r.VolumeID)
	}
	if vol.Status != volAvailable && vol.Status != volInUse {
		s.mu.Unlock()
		return nil, awsproto.Errorf("IncorrectState", "The volume '%s' is '%s'; snapshots can be taken of 'available' or 'in-use' volumes.", vol.ID, vol.Status)
	}
	sn := &snapshot{
		ID: newID("snap-"), VolumeID: vol.ID, VolumeSize: vol.Size, Description: r.Description,
		Status: snapPending, StartTime: s.clk.Now().UTC(), ParentID: s.parentForLocked(vol), Captured: true,
	}
	if p := s.st.Snapshots[sn.ParentID]; p == nil || p.Status != snapCompleted {
		sn.ParentID = ""
	}
	tags := tagsFor(r.Tags, "snapshot")
	if len(tags) > maxTagsPerRes {
		s.mu.Unlock()
		return nil, awsproto.Errorf("TagLimitExceeded", "The maximum number of tags (%d) for resource %s has been reached.", maxTagsPerRes, sn.ID)
	}
	// Held across the capture, which runs without the lock: the parent's
	// chunks stay while they are reused, and no GC runs meanwhile.
	s.refs[sn.ID]++
	if sn.ParentID != "" {
		s.refs[sn.ParentID]++
	}
	s.mu.Unlock()
	_, _, cerr := s.cfg.Snapshots.Create(ctx, sn.ID, s.volumeDir(vol.ID), sn.ParentID, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cerr == nil {
		cerr = s.addTagsLocked(sn.ID, tags)
	}
	if cerr != nil {
		s.releaseLocked(sn.ID, sn.ParentID) // not recorded: its chunks go with it
		if ae, ok := errors.AsType[*awsproto.Error](cerr); ok {
			return nil, ae
		}
		return nil, awsproto.Internal("capturing volume %s for snapshot %s: %v", vol.ID, sn.ID, cerr)
	}
	s.st.Snapshots[sn.ID] = sn
	s.startSnapshotJobLocked(sn) // takes its own references first
	s.releaseLocked(sn.ID, sn.ParentID)
	s.log.Info("snapshot started", "snapshot-id", sn.ID, "volume-id", vol.ID, "parent-id", sn.ParentID)
	return &createSnapshotResponse{snapshotXML: s.snapshotXMLLocked(sn)}, s.saveLocked()
}

// parentForLocked picks what a new snapshot of vol is stored against.
func (s *Service) parentForLocked(vol *volume) string {
	var best *snapshot
	for _, sn := range s.st.Snapshots {
		if sn.VolumeID != vol.ID || sn.Status != snapCompleted || sn.DeleteRequested {
			continue
		}
		if best == nil || sn.StartTime.After(best.StartTime) || sn.StartTime.Equal(best.StartTime) && sn.ID > best.ID {
			best = sn
		}
	}
	if best != nil {
		return best.ID
	}
	if src := s.st.Snapshots[vol.SnapshotID]; src != nil && src.Status == snapCompleted {
		return src.ID
	}
	return ""
}

func (s *Service) startSnapshotJobLocked(sn *snapshot) {
	if p := s.st.Snapshots[sn.ParentID]; p == nil || p.Status != snapCompleted {
		sn.ParentID = ""
	}
	id, volID, parent, captured := sn.ID, sn.VolumeID, sn.ParentID, sn.Captured
	s.refs[id]++
	if parent != "" {
		s.refs[parent]++
	}
	if !s.goBGLocked(func() { s.runSnapshot(id, volID, parent, captured) }) {
		s.refs[id]--
		if parent != "" {
			s.refs[parent]--
		}
	}
}

func (s *Service) runSnapshot(id, volID, parent string, captured bool) {
	start := time.Now()
	minDur := s.cfg.MinSnapshotDuration
	var err error
	if sf, ok := s.cfg.Faults.(SnapshotFaults); ok {
		d, ferr := sf.SnapshotFault(id, volID)
		minDur += max(d, 0)
		err = ferr
	}
	var stored atomic.Int64 // the store's own percentage
	progress := func() {
		pct := int(stored.Load())
		if minDur > 0 {
			pct = min(pct, int(100*time.Since(start)/minDur))
		}
		s.setSnapshotProgress(id, min(pct, 99))
	}
	if err == nil && !captured {
		src := s.volumeDir(volID)
		if _, serr := os.Stat(src); serr != nil {
			err = fmt.Errorf("the volume's data is gone: %w", serr)
		} else {
			_, _, err = s.cfg.Snapshots.Create(s.ctx, id, src, parent, func(done, total int64) {
				stored.Store(int64(percent(done, total)))
				progress()
			})
			if errors.Is(err, snapstore.ErrExists) {
				err = nil // an earlier run completed it before it could record so
			}
		}
	}
	stored.Store(100)
	if werr := s.waitOut(start, minDur, progress); werr != nil {
		err = werr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(id, parent)
	if s.ctx.Err() != nil {
		return // Close interrupted it; New starts it over
	}
	sn := s.st.Snapshots[id]
	if sn == nil {
		return
	}
	if err != nil {
		sn.Status, sn.StatusMessage = snapError, err.Error()
		s.log.Error("snapshot failed", "snapshot-id", id, "volume-id", volID, "error", err)
		s.emitSnapshotLocked(sn, "The snapshot could not be created: "+err.Error())
		s.dropIfUnusedLocked(id)
	} else {
		sn.Status, sn.Progress, sn.CompletionTime = snapCompleted, 100, s.clk.Now().UTC()
		s.log.Info("snapshot completed", "snapshot-id", id, "volume-id", volID, "took", time.Since(start).Round(time.Millisecond).String())
		s.emitSnapshotLocked(sn, "")
	}
	if sn.DeleteRequested {
		s.removeSnapshotLocked(sn)
	}
	s.removeOrphanDirLocked(volID)
	_ = s.saveLocked()
}

// waitOut sleeps until minDur has passed since start, reporting progress,
// and fails only when Close interrupts it.
func (s *Service) waitOut(start time.Time, minDur time.Duration, progress func()) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for time.Since(start) < minDur {
		select {
		case <-s.ctx.Done():
			return errClosed
		case <-t.C:
			progress()
		}
	}
	return nil
}

func (s *Service) setSnapshotProgress(id string, pct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.st.Snapshots[id]; sn != nil && sn.Status == snapPending && pct > sn.Progress {
		sn.Progress = pct
	}
}

// releaseLocked ends a job's use of snapshots.
func (s *Service) releaseLocked(ids ...string) {
	for _, id := range ids {
		if id == "" {
			continue
		}
		if s.refs[id]--; s.refs[id] <= 0 {
			delete(s.refs, id)
			s.dropIfUnusedLocked(id)
		}
	}
	s.maybeGCLocked()
}

// dropIfUnusedLocked frees a deleted or failed snapshot's content once no
// job uses it any more.
func (s *Service) dropIfUnusedLocked(id string) {
	if s.refs[id] > 0 {
		return
	}
	if sn := s.st.Snapshots[id]; sn != nil && sn.Status != snapError {
		return
	}
	s.goBGLocked(func() {
		if err := s.cfg.Snapshots.Delete(id); err != nil {
			s.log.Warn("deleting a snapshot from the store failed", "snapshot-id", id, "error", err)
		}
		s.mu.Lock()
		s.gcDue = true
		s.maybeGCLocked()
		s.mu.Unlock()
	})
}

// maybeGCLocked collects the store's garbage after deletions, when no job
// is running.
func (s *Service) maybeGCLocked() {
	if !s.gcDue || len(s.refs) > 0 {
		return
	}
	s.gcDue = false
	s.goBGLocked(func() {
		n, freed, err := s.cfg.Snapshots.GC(s.ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("snapshot store GC failed", "error", err)
			return
		}
		s.log.Debug("snapshot store GC done", "removed-chunks", n, "freed-bytes", freed)
	})
}

func (s *Service) removeSnapshotLocked(sn *snapshot) {
	delete(s.st.Snapshots, sn.ID)
	delete(s.st.Tags, sn.ID)
	s.dropIfUnusedLocked(sn.ID)
	s.log.Info("snapshot deleted", "snapshot-id", sn.ID)
}

func (s *Service) deleteSnapshot(_ context.Context, v awsproto.Values) (response, error) {
	id, err := parseID(v, "SnapshotId", kindSnapshot)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.st.Snapshots[id]
	if sn == nil {
		return nil, kindSnapshot.notFoundErr(id)
	}
	if sn.Status == snapPending {
		// "Although you can delete a snapshot that is still in progress,
		// the snapshot must complete before the deletion takes effect."
		sn.DeleteRequested = true
	} else {
		s.removeSnapshotLocked(sn)
	}
	return &returnResponse{Return: true}, s.saveLocked()
}

var snapshotFilters = []string{
	"snapshot-id", "volume-id", "status", "owner-id", "owner-alias", "progress", "start-time",
	"volume-size", "description", "encrypted", "storage-tier",
}

func (s *Service) describeSnapshots(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribeSnapshots(v)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, snapshotFilters...); err != nil {
		return nil, err
	}
	// Every snapshot here is the account's own and private.
	if len(r.Owners) > 0 && !slices.Contains(r.Owners, "self") && !slices.Contains(r.Owners, s.cfg.AccountID) {
		return &describeSnapshotsResponse{}, nil
	}
	for _, rb := range r.RestorableBy {
		if rb != "self" && rb != s.cfg.AccountID {
			return &describeSnapshotsResponse{}, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, err := selectIDs(s.st.Snapshots, r.IDs, kindSnapshot)
	if err != nil {
		return nil, err
	}
	var out []snapshotXML
	for _, id := range ids {
		sn := s.st.Snapshots[id]
		if matchFilters(r.Filters, s.st.Tags[id], s.snapshotAttrs(sn)) {
			out = append(out, s.snapshotXMLLocked(sn))
		}
	}
	page, next := paginate(out, func(x snapshotXML) string { return x.SnapshotID }, r.Page)
	return &describeSnapshotsResponse{Snapshots: page, NextToken: next}, nil
}

func (s *Service) snapshotAttrs(sn *snapshot) attrs {
	return func(name string) []string {
		switch name {
		case "snapshot-id":
			return []string{sn.ID}
		case "volume-id":
			return []string{sn.VolumeID}
		case "status":
			return []string{sn.Status}
		case "owner-id":
			return []string{s.cfg.AccountID}
		case "progress":
			return []string{strconv.Itoa(sn.Progress) + "%"}
		case "start-time":
			return []string{ts(sn.StartTime)}
		case "volume-size":
			return []string{strconv.Itoa(sn.VolumeSize)}
		case "description":
			return []string{sn.Description}
		case "encrypted":
			return []string{"false"}
		case "storage-tier":
			return []string{"standard"}
		}
		return nil
	}
}

func (s *Service) snapshotXMLLocked(sn *snapshot) snapshotXML {
	return snapshotXML{
		SnapshotID: sn.ID, VolumeID: sn.VolumeID, Status: sn.Status, StatusMessage: sn.StatusMessage,
		StartTime: ts(sn.StartTime), CompletionTime: ts(sn.CompletionTime),
		Progress: strconv.Itoa(sn.Progress) + "%", OwnerID: s.cfg.AccountID, VolumeSize: sn.VolumeSize,
		Description: sn.Description, StorageTier: "standard", Tags: tagSet(s.st.Tags[sn.ID]),
	}
}
