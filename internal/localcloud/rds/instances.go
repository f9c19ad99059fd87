package rds

// The DB instance actions. Handlers check the request and change the
// state under s.mu; the work on the servers runs in jobs (jobs.go).

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/pgpass"
)

func (s *Service) createDBInstance(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	class, err := v.String("DBInstanceClass", true)
	if err != nil {
		return nil, err
	}
	if err := s.checkEngine(v); err != nil {
		return nil, err
	}
	master, err := masterUsername(v)
	if err != nil {
		return nil, err
	}
	if v.Get("ManageMasterUserPassword") == "true" {
		return nil, invalid("ManageMasterUserPassword needs Secrets Manager, which this local cloud does not have; pass MasterUserPassword instead")
	}
	password := v.Get("MasterUserPassword")
	if password == "" {
		return nil, invalid("The parameter MasterUserPassword must be provided and must not be blank.")
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	dbName := v.Get("DBName")
	if dbName != "" {
		if !dbNameRE.MatchString(dbName) {
			return nil, invalid("DBName %s is not valid: it must begin with a letter and contain 1 to 63 letters, digits or underscores.", truncate(dbName, 64))
		}
		if slices.Contains([]string{"postgres", "template0", "template1", "rdsadmin"}, strings.ToLower(dbName)) {
			return nil, invalid("DBName %s is reserved by the engine", dbName)
		}
	}
	storage, err := v.Int("AllocatedStorage", 20)
	if err != nil {
		return nil, err
	}
	if storage < 20 || storage > 65536 {
		return nil, invalid("Invalid storage size for engine name postgres and storage type gp2: %d (20 to 65536 GiB)", storage)
	}
	retention, err := retentionParam(v, 1)
	if err != nil {
		return nil, err
	}
	pl, err := s.placementParams(v)
	if err != nil {
		return nil, err
	}
	port := pl.port
	verifier, err := pgpass.Verifier(password)
	if err != nil {
		return nil, awsproto.Internal("%v", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNewInstanceLocked(id); err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = s.allocPortLocked(); err != nil {
			return nil, awsproto.Internal("%v", err)
		}
	}
	inst := &instance{
		ID: id, ResourceID: newResourceID("db-"), Class: class, Engine: "postgres", Version: s.pg.version,
		Master: master, DBName: dbName, Port: port, Storage: storage, Retention: retention, Protected: pl.protected,
		Zone: pl.zone, SGs: pl.sgs, Tags: pl.tags, Created: s.now(), Status: statusCreating, Job: jobCreate, Verifier: verifier,
	}
	s.st.Instances[id] = inst
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("creating db instance", "db-instance", id, "port", port)
	return instanceResult{s.toXML(inst, replState{}, false)}, nil
}

// checkEngine accepts postgres only, at the installed major version.
func (s *Service) checkEngine(v awsproto.Values) error {
	engine, err := v.String("Engine", true)
	if err != nil {
		return err
	}
	if engine != "postgres" {
		return invalid("Invalid DB engine: %s. This local cloud runs PostgreSQL only (Debian's, version %s): use Engine postgres.", truncate(engine, 32), s.pg.version)
	}
	if ev := v.Get("EngineVersion"); ev != "" {
		major, _ := strconv.Atoi(strings.SplitN(ev, ".", 2)[0])
		if major != s.pg.major {
			return errCombination("Cannot find version %s for postgres: this local cloud runs PostgreSQL %s; ask for %d or leave EngineVersion out.", truncate(ev, 16), s.pg.version, s.pg.major)
		}
	}
	return nil
}

func retentionParam(v awsproto.Values, def int) (int, error) {
	n, err := v.Int("BackupRetentionPeriod", def)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 35 {
		return 0, invalid("The parameter BackupRetentionPeriod must be between 0 and 35 (days); got %d.", n)
	}
	return n, nil
}

// placement is what CreateDBInstance, CreateDBInstanceReadReplica and
// RestoreDBInstanceFromDBSnapshot all take about where and how the new
// instance runs.
type placement struct {
	port      int // 0: pick a free one
	zone      string
	sgs       []string
	tags      []tag
	protected bool
}

func (s *Service) placementParams(v awsproto.Values) (placement, error) {
	var pl placement
	var err error
	if pl.port, err = s.portParam(v); err != nil {
		return pl, err
	}
	if pl.zone, err = s.zoneParam(v); err != nil {
		return pl, err
	}
	if pl.sgs, err = securityGroups(v); err != nil {
		return pl, err
	}
	if pl.tags, err = tags(v); err != nil {
		return pl, err
	}
	pl.protected, err = v.Bool("DeletionProtection", false)
	return pl, err
}

// portParam reads Port: honoured when free on this machine, since every
// instance listens on the loopback address.
func (s *Service) portParam(v awsproto.Values) (int, error) {
	port, err := v.Int("Port", 0)
	if err != nil || port == 0 {
		return 0, err
	}
	if port < 1150 || port > 65535 {
		return 0, invalid("Invalid port %d: must be between 1150 and 65535.", port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inst := range s.st.Instances {
		if inst.Port == port {
			return 0, invalid("Port %d is taken by DB instance %s on this local cloud (every instance listens on 127.0.0.1); leave Port out to get a free one.", port, inst.ID)
		}
	}
	if !portFree(port) {
		return 0, invalid("Port %d is in use on this machine (every instance listens on 127.0.0.1); leave Port out to get a free one.", port)
	}
	return port, nil
}

func (s *Service) zoneParam(v awsproto.Values) (string, error) {
	zone := v.Get("AvailabilityZone")
	if zone == "" {
		return s.cfg.Zones[0], nil
	}
	if !slices.Contains(s.cfg.Zones, zone) {
		return "", invalid("Cannot find availability zone %s; this local cloud has %s.", truncate(zone, 32), strings.Join(s.cfg.Zones, ", "))
	}
	return zone, nil
}

func (s *Service) checkNewInstanceLocked(id string) error {
	if _, ok := s.st.Instances[id]; ok {
		return errInstanceExists(id)
	}
	if len(s.st.Instances) >= maxInstances {
		return awsproto.Errorf("InstanceQuotaExceeded", "This local cloud holds at most %d DB instances; delete one first.", maxInstances)
	}
	return nil
}

// allocPortLocked picks a free port no instance holds.
func (s *Service) allocPortLocked() (int, error) {
	for range 20 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		taken := false
		for _, inst := range s.st.Instances {
			taken = taken || inst.Port == p
		}
		if !taken {
			return p, nil
		}
	}
	return s.allocPortLocked()
}

func (s *Service) describeDBInstances(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", false)
	if err != nil {
		return nil, err
	}
	fs, err := filters(v, "db-instance-id", "dbi-resource-id", "engine")
	if err != nil {
		return nil, err
	}
	limit, after, err := page(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		if _, ok := s.st.Instances[id]; !ok {
			return nil, errInstanceNotFound(id)
		}
	}
	var res describeInstancesResult
	res.Instances.Items, res.Marker = pageItems(s.st.Instances, after, limit,
		func(k string, inst *instance) bool {
			return (id == "" || k == id) && matchInstance(inst, fs, s.instanceARN(inst.ID))
		},
		func(inst *instance) xmlInstance {
			r, ok := s.repl[inst.ResourceID]
			return s.toXML(inst, r, ok)
		})
	return res, nil
}

func matchInstance(inst *instance, fs []filter, arn string) bool {
	for _, f := range fs {
		switch f.Name {
		case "db-instance-id":
			if !f.matches(inst.ID) && !f.matches(arn) {
				return false
			}
		case "dbi-resource-id":
			if !f.matches(inst.ResourceID) {
				return false
			}
		case "engine":
			if !f.matches(inst.Engine) {
				return false
			}
		}
	}
	return true
}

func (s *Service) createReadReplica(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	srcID, err := identifier(v, "SourceDBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	pl, err := s.placementParams(v)
	if err != nil {
		return nil, err
	}
	port := pl.port
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.st.Instances[srcID]
	if !ok {
		return nil, errInstanceNotFound(srcID)
	}
	if err := s.checkNewInstanceLocked(id); err != nil {
		return nil, err
	}
	switch {
	case src.Source != "":
		return nil, errInvalidState("DB instance %s is itself a read replica of %s; this local cloud makes replicas of primaries only (cascading replicas are not supported).", srcID, src.Source)
	case src.Status != statusAvailable:
		return nil, errInvalidState("DB instance %s is not in available state (it is %s); wait for it to be available.", srcID, src.Status)
	case src.Retention == 0:
		return nil, errInvalidState("Automated backups are not enabled for this database instance. To enable automated backups, use ModifyDBInstance to set the backup retention period to a non-zero value.")
	case len(src.Replicas) >= maxReplicas:
		return nil, awsproto.Errorf("InstanceQuotaExceeded", "DB instance %s already has %d read replicas, the most RDS allows for one source.", srcID, maxReplicas)
	}
	class := v.Get("DBInstanceClass")
	if class == "" {
		class = src.Class
	}
	if port == 0 {
		if port, err = s.allocPortLocked(); err != nil {
			return nil, awsproto.Internal("%v", err)
		}
	}
	inst := &instance{
		ID: id, ResourceID: newResourceID("db-"), Class: class, Engine: src.Engine, Version: src.Version,
		Master: src.Master, DBName: src.DBName, Port: port, Storage: src.Storage, Retention: 0, Protected: pl.protected,
		Zone: pl.zone, SGs: pl.sgs, Tags: pl.tags, Created: s.now(), Status: statusCreating, Job: jobReplica, Source: srcID,
	}
	if len(inst.SGs) == 0 {
		inst.SGs = append([]string(nil), src.SGs...)
	}
	src.Replicas = append(src.Replicas, id)
	s.st.Instances[id] = inst
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("creating read replica", "db-instance", id, "source", srcID, "port", port)
	return instanceResult{s.toXML(inst, replState{}, false)}, nil
}

func (s *Service) promoteReadReplica(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	retention, err := retentionParam(v, 1)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.st.Instances[id]
	if !ok {
		return nil, errInstanceNotFound(id)
	}
	switch {
	case inst.Source == "":
		return nil, errInvalidState("DB instance %s is not a read replica.", id)
	case inst.Status != statusAvailable:
		return nil, errInvalidState("DB instance %s is not in available state (it is %s).", id, inst.Status)
	}
	inst.Status, inst.Job, inst.PromoteRetention = statusModifying, jobPromote, retention
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("promoting read replica", "db-instance", id, "source", inst.Source)
	r, okr := s.repl[inst.ResourceID]
	return instanceResult{s.toXML(inst, r, okr)}, nil
}

func (s *Service) modifyDBInstance(ctx context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	newID, err := identifier(v, "NewDBInstanceIdentifier", "db", false)
	if err != nil {
		return nil, err
	}
	password := v.Get("MasterUserPassword")
	if password != "" {
		if err := checkPassword(password); err != nil {
			return nil, err
		}
	}
	var retention *int
	if v.Get("BackupRetentionPeriod") != "" {
		n, err := retentionParam(v, 0)
		if err != nil {
			return nil, err
		}
		retention = &n
	}
	var protected *bool
	if v.Get("DeletionProtection") != "" {
		b, err := v.Bool("DeletionProtection", false)
		if err != nil {
			return nil, err
		}
		protected = &b
	}
	if _, err := v.Bool("ApplyImmediately", false); err != nil {
		return nil, err
	}
	sgs, err := securityGroups(v)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	inst, ok := s.st.Instances[id]
	if !ok {
		s.mu.Unlock()
		return nil, errInstanceNotFound(id)
	}
	switch {
	case inst.Status != statusAvailable:
		s.mu.Unlock()
		return nil, errInvalidState("DB instance %s is not in available state (it is %s).", id, inst.Status)
	case newID != "" && newID != id && s.st.Instances[newID] != nil:
		s.mu.Unlock()
		return nil, errInstanceExists(newID)
	case password != "" && inst.Source != "":
		s.mu.Unlock()
		return nil, errCombination("DB instance %s is a read replica: its master password comes from its source %s; change it there.", id, inst.Source)
	case retention != nil && *retention == 0 && len(inst.Replicas) > 0:
		s.mu.Unlock()
		return nil, errCombination("Cannot set the backup retention period of %s to 0 while it has read replicas (%s).", id, strings.Join(inst.Replicas, ", "))
	}
	srv := s.servers[inst.ResourceID]
	s.mu.Unlock()

	// The password is set first, on the running server, so that a
	// failure changes nothing else.
	if password != "" {
		if srv == nil {
			return nil, errInvalidState("DB instance %s has no running server.", id)
		}
		lit, err := pgpass.Literal(password)
		if err != nil {
			return nil, awsproto.Internal("%v", err)
		}
		if err := srv.exec(ctx, "postgres", "ALTER ROLE "+quoteIdent(inst.Master)+" PASSWORD "+lit); err != nil {
			return nil, awsproto.Internal("setting the master password of %s: %v", id, err)
		}
		s.log.Info("master password changed", "db-instance", id)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Instances[id] != inst {
		return nil, errInstanceNotFound(id)
	}
	if retention != nil {
		inst.Retention = *retention
	}
	if protected != nil {
		inst.Protected = *protected
	}
	if len(sgs) > 0 {
		inst.SGs = sgs
	}
	if newID != "" && newID != id {
		if s.st.Instances[newID] != nil {
			return nil, errInstanceExists(newID)
		}
		s.renameLocked(inst, newID)
		s.log.Info("db instance renamed", "db-instance", newID, "was", id)
	}
	s.changedLocked()
	r, okr := s.repl[inst.ResourceID]
	return instanceResult{s.toXML(inst, r, okr)}, nil
}

// renameLocked gives inst a new identifier, and its source and replicas
// the new name for it. Its files and replication slot are named by its
// resource id, so nothing moves on disk.
func (s *Service) renameLocked(inst *instance, newID string) {
	old := inst.ID
	delete(s.st.Instances, old)
	inst.ID = newID
	s.st.Instances[newID] = inst
	if src := s.st.Instances[inst.Source]; src != nil {
		for i, r := range src.Replicas {
			if r == old {
				src.Replicas[i] = newID
			}
		}
	}
	for _, r := range inst.Replicas {
		if rep := s.st.Instances[r]; rep != nil {
			rep.Source = newID
		}
	}
}

func (s *Service) deleteDBInstance(_ context.Context, v awsproto.Values) (any, error) {
	id, err := identifier(v, "DBInstanceIdentifier", "db", true)
	if err != nil {
		return nil, err
	}
	skip, err := v.Bool("SkipFinalSnapshot", false)
	if err != nil {
		return nil, err
	}
	final, err := identifier(v, "FinalDBSnapshotIdentifier", "snapshot", false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.st.Instances[id]
	if !ok {
		return nil, errInstanceNotFound(id)
	}
	replica := inst.Source != ""
	switch {
	case inst.Protected:
		return nil, errCombination("Cannot delete protected DB Instance, please disable deletion protection and try again.")
	case replica && final != "":
		return nil, errCombination("FinalDBSnapshotIdentifier can not be specified when deleting a replica instance")
	case !replica && skip && final != "":
		return nil, errCombination("FinalDBSnapshotIdentifier can not be specified when SkipFinalSnapshot is enabled")
	case !replica && !skip && final == "":
		return nil, errCombination("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
	case inst.Status == statusDeleting:
		return nil, errInvalidState("DB instance %s is already being deleted.", id)
	case inst.Job != jobNone:
		return nil, errInvalidState("DB instance %s is %s; try again when it is available.", id, inst.Status)
	case s.replicaBusyLocked(inst) != "":
		return nil, errInvalidState("DB instance %s has a read replica %s that is %s; try again when it is available.", id, s.replicaBusyLocked(inst), s.st.Instances[s.replicaBusyLocked(inst)].Status)
	case final != "" && inst.Status != statusAvailable:
		return nil, errInvalidState("DB instance %s is %s; a final snapshot needs it available (or pass SkipFinalSnapshot).", id, inst.Status)
	}
	if final != "" {
		if _, taken := s.st.Snapshots[final]; taken {
			return nil, errSnapshotExists(final)
		}
		if len(s.st.Snapshots) >= maxSnapshots {
			return nil, awsproto.Errorf("SnapshotQuotaExceeded", "This local cloud holds at most %d DB snapshots; delete one first.", maxSnapshots)
		}
		s.st.Snapshots[final] = s.newSnapshotLocked(final, inst, nil)
	}
	inst.Status, inst.Job, inst.FinalSnapshot = statusDeleting, jobDelete, final
	s.changedLocked()
	s.startJobLocked(inst)
	s.log.Info("deleting db instance", "db-instance", id, "final-snapshot", final)
	return instanceResult{s.toXML(inst, replState{}, false)}, nil
}

// replicaBusyLocked names a replica of inst that is in the middle of a
// job, "" if none.
func (s *Service) replicaBusyLocked(inst *instance) string {
	for _, r := range inst.Replicas {
		if rep := s.st.Instances[r]; rep != nil && rep.Job != jobNone {
			return r
		}
	}
	return ""
}

// Markers are opaque to clients: the last id of the previous page.
const markerPrefix = "lc1:"

func encodeMarker(lastID string) string { return markerPrefix + lastID }

// pageItems renders, in identifier order, the items of m after the marker's
// identifier that keep accepts, at most limit of them, and the marker of the
// next page ("" on the last).
func pageItems[T, X any](m map[string]T, after string, limit int, keep func(id string, v T) bool, render func(v T) X) ([]X, string) {
	out := []X{}
	var last string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k <= after || !keep(k, m[k]) {
			continue
		}
		if len(out) == limit {
			return out, encodeMarker(last)
		}
		out, last = append(out, render(m[k])), k
	}
	return out, ""
}

func page(v awsproto.Values) (limit int, after string, err error) {
	limit, err = v.Int("MaxRecords", 100)
	if err != nil {
		return 0, "", err
	}
	if limit < 20 || limit > 100 {
		return 0, "", invalid("Invalid value %d for MaxRecords. Must be between 20 and 100", limit)
	}
	if m := v.Get("Marker"); m != "" {
		after, ok := strings.CutPrefix(m, markerPrefix)
		if !ok || after == "" {
			return 0, "", invalid("The marker %s is not valid; pass the Marker of a previous response.", truncate(m, 64))
		}
		return limit, after, nil
	}
	return limit, "", nil
}
