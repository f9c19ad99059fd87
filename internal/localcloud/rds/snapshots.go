package rds

// DB snapshots: online physical base backups (pg_basebackup with its WAL),
// so a restore has every role, grant and default privilege of the source,
// exactly as it was when the backup ended.

import (
	"context"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

const (
	statusBackingUp = "backing-up"
	jobSnapshot     = "snapshot"
)

func (s *Service) createDBSnapshot(_ context.Context, v awsproto.Values) (any, error) {
	snapID, err := identifier(v, "DBSnapshotIdentifier", "snapshot", true)
	if err != nil {
		return nil, err
	}
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	tg, err := tags(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.st.Instances[id]
	if !ok {
		return nil, errInstanceNotFound(id)
	}
	if _, taken := s.st.Snapshots[snapID]; taken {
		return nil, errSnapshotExists(snapID)
	}
	if inst.Status != statusAvailable {
		return nil, errInvalidState("DB instance %s is not in available state (it is %s); a snapshot needs it available.", id, inst.Status)
	}
	if len(s.st.Snapshots) >= maxSnapshots {
		return nil, awsproto.Errorf("SnapshotQuotaExceeded", "This local cloud holds at most %d DB snapshots; delete one first.", maxSnapshots)
	}
	sn := s.newSnapshotLocked(snapID, inst, tg)
	s.st.Snapshots[snapID] = sn
	inst.Status, inst.Job = statusBackingUp, jobSnapshot
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("creating db snapshot", "db-snapshot", snapID, "db-instance", id)
	return snapshotResult{s.snapXML(sn)}, nil
}

// newSnapshotLocked is a snapshot of inst in state creating; the job that
// takes it finds it by InstanceRI and status.
func (s *Service) newSnapshotLocked(id string, inst *instance, tg []tag) *snapshot {
	return &snapshot{
		ID: id, ResourceID: newResourceID("snap-"), Instance: inst.ID, InstanceRI: inst.ResourceID, Engine: inst.Engine,
		Version: inst.Version, Master: inst.Master, DBName: inst.DBName, Port: inst.Port, Storage: inst.Storage,
		Retention: inst.Retention, Zone: inst.Zone, InstCreate: inst.Created, Created: s.now(), Status: statusCreating, Tags: tg,
	}
}

func (s *Service) describeDBSnapshots(_ context.Context, v awsproto.Values) (any, error) {
	snapID, err := identifier(v, "DBSnapshotIdentifier", "snapshot", false)
	if err != nil {
		return nil, err
	}
	instID, err := identifier(v, "DBInstanceIdentifier", "db", false)
	if err != nil {
		return nil, err
	}
	if t := v.Get("SnapshotType"); t != "" && t != "manual" {
		// Automated backups are continuous archiving on RDS; this local
		// cloud keeps manual snapshots only.
		return describeSnapshotsResult{}, nil
	}
	fs, err := filters(v, "db-snapshot-id", "db-instance-id", "snapshot-type", "engine")
	if err != nil {
		return nil, err
	}
	limit, after, err := page(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if snapID != "" {
		if _, ok := s.st.Snapshots[snapID]; !ok {
			return nil, errSnapshotNotFound(snapID)
		}
	}
	var res describeSnapshotsResult
	res.Snapshots.Items, res.Marker = pageItems(s.st.Snapshots, after, limit,
		func(k string, sn *snapshot) bool {
			return (snapID == "" || k == snapID) && (instID == "" || sn.Instance == instID) && matchSnapshot(sn, fs)
		},
		s.snapXML)
	return res, nil
}

func matchSnapshot(sn *snapshot, fs []filter) bool {
	for _, f := range fs {
		var have string
		switch f.Name {
		case "db-snapshot-id":
			have = sn.ID
		case "db-instance-id":
			have = sn.Instance
		case "snapshot-type":
			have = "manual"
		case "engine":
			have = sn.Engine
		}
		if !f.matches(have) {
			return false
		}
	}
	return true
}

func (s *Service) deleteDBSnapshot(_ context.Context, v awsproto.Values) (any, error) {
	snapID, err := identifier(v, "DBSnapshotIdentifier", "snapshot", true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.st.Snapshots[snapID]
	if !ok {
		return nil, errSnapshotNotFound(snapID)
	}
	if sn.Status == statusCreating {
		return nil, errInvalidSnapshotState("DB snapshot %s is still being created; delete it once it is available.", snapID)
	}
	for _, inst := range s.st.Instances {
		if inst.Job == jobRestore && inst.FromSnapshot == snapID {
			return nil, errInvalidSnapshotState("DB snapshot %s is being restored into %s; delete it once that instance is available.", snapID, inst.ID)
		}
	}
	delete(s.st.Snapshots, snapID)
	s.changedLocked()
	dir := s.snapDir(sn.ResourceID)
	s.goJobLocked(func(context.Context) { s.removeAll(dir) })
	x := s.snapXML(sn)
	x.Status = "deleted"
	s.log.Info("db snapshot deleted", "db-snapshot", snapID)
	return snapshotResult{x}, nil
}

func (s *Service) restoreFromSnapshot(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	snapID, err := identifier(v, "DBSnapshotIdentifier", "snapshot", true)
	if err != nil {
		return nil, err
	}
	if e := v.Get("Engine"); e != "" && e != "postgres" {
		return nil, invalid("Invalid DB engine: %s. The snapshot is of postgres; this local cloud runs PostgreSQL only.", truncate(e, 32))
	}
	pl, err := s.placementParams(v)
	if err != nil {
		return nil, err
	}
	port := pl.port
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.st.Snapshots[snapID]
	if !ok {
		return nil, errSnapshotNotFound(snapID)
	}
	if sn.Status != statusAvailable {
		return nil, errInvalidSnapshotState("DB snapshot %s is %s; restore it once it is available.", snapID, sn.Status)
	}
	if err := s.checkNewInstanceLocked(id); err != nil {
		return nil, err
	}
	class := v.Get("DBInstanceClass")
	if class == "" {
		class = "db.t3.micro"
	}
	if port == 0 {
		if port, err = s.allocPortLocked(); err != nil {
			return nil, awsproto.Internal("%v", err)
		}
	}
	retention := sn.Retention
	if retention == 0 {
		retention = 1
	}
	inst := &instance{
		ID: id, ResourceID: newResourceID("db-"), Class: class, Engine: sn.Engine, Version: sn.Version, Master: sn.Master,
		DBName: sn.DBName, Port: port, Storage: sn.Storage, Retention: retention, Protected: pl.protected, Zone: pl.zone,
		SGs: pl.sgs, Tags: pl.tags, Created: s.now(), Status: statusCreating, Job: jobRestore, FromSnapshot: snapID,
	}
	s.st.Instances[id] = inst
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("restoring db instance from snapshot", "db-instance", id, "db-snapshot", snapID, "port", port)
	return instanceResult{s.toXML(inst, replState{}, false)}, nil
}
