package rds

// Jobs: the work behind the API, on the servers. Each job is named in the
// saved state before it starts (instance.Job), so a restart of the local
// cloud carries it on; each is safe to run again from the start.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// streamTimeout bounds how long a new replica may take to start streaming.
const streamTimeout = 2 * time.Minute

func (s *Service) startJobLocked(inst *instance) {
	ri, job := inst.ResourceID, inst.Job
	s.goJobLocked(func(ctx context.Context) { s.runJob(ctx, ri, job) })
}

func (s *Service) byRILocked(ri string) *instance {
	for _, inst := range s.st.Instances {
		if inst.ResourceID == ri {
			return inst
		}
	}
	return nil
}

// slotName is a replica's replication slot on its source: named by the
// replica's resource id, so a rename does not orphan it.
func slotName(ri string) string { return "rr_" + strings.ReplaceAll(ri, "-", "_") }

// resumeLocked carries on what the saved state says was under way, and
// boots every instance that was up, as after a reboot. s.mu is held.
func (s *Service) resumeLocked() {
	for _, inst := range s.st.Instances {
		switch {
		case inst.Job != jobNone:
			s.log.Info("resuming db instance job", "db-instance", inst.ID, "job", inst.Job)
		case inst.Status == statusFailed:
			continue
		default:
			inst.Status, inst.Job = statusRebooting, jobStart
		}
		s.startJobLocked(inst)
	}
	for _, sn := range s.st.Snapshots {
		if sn.Status != statusCreating {
			continue
		}
		if inst := s.byRILocked(sn.InstanceRI); inst == nil || inst.Job != jobSnapshot && inst.Job != jobDelete {
			sn.Status, sn.Message = statusFailed, "the local cloud stopped while the snapshot was being taken"
		}
	}
	s.changedLocked()
}

func (s *Service) runJob(ctx context.Context, ri, job string) {
	var err error
	switch job {
	case jobCreate:
		err = s.doCreate(ctx, ri)
	case jobReplica:
		err = s.doReplica(ctx, ri)
	case jobRestore:
		err = s.doRestore(ctx, ri)
	case jobStart:
		_, err = s.ensureServer(ctx, ri)
	case jobPromote:
		err = s.doPromote(ctx, ri)
	case jobSnapshot:
		err = s.doSnapshots(ctx, ri)
	case jobDelete:
		err = s.doDelete(ctx, ri)
	default:
		err = fmt.Errorf("unknown job %q", job)
	}
	if ctx.Err() != nil {
		return // closing: the saved job carries on at the next New
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.byRILocked(ri)
	if inst == nil {
		return // deleted
	}
	defer s.changedLocked()
	if err == nil {
		if inst.Job == job {
			inst.Status, inst.Job, inst.Message, inst.Verifier = statusAvailable, jobNone, "", ""
		}
		s.log.Info("db instance job done", "db-instance", inst.ID, "job", job)
		return
	}
	s.log.Warn("db instance job failed", "db-instance", inst.ID, "job", job, "error", err)
	inst.Job, inst.Message = jobNone, err.Error()
	switch job {
	case jobPromote, jobSnapshot, jobDelete:
		// The server is still what it was: back to available, so the
		// call can be made again.
		inst.Status = statusAvailable
		if srv := s.servers[ri]; srv == nil || !srv.alive() {
			inst.Status = statusFailed
		}
	case jobReplica:
		inst.Status = statusFailed
		if src := s.st.Instances[inst.Source]; src != nil {
			src.Replicas = slices.DeleteFunc(src.Replicas, func(r string) bool { return r == inst.ID })
		}
		inst.Source = ""
	default:
		inst.Status = statusFailed
	}
}

// ensureServer starts ri's postmaster unless it runs. Starts of one
// instance are serialised: a replica's job may need its source's server
// while the source is booting after a restart.
func (s *Service) ensureServer(ctx context.Context, ri string) (*server, error) {
	s.mu.Lock()
	lock := s.startLocks[ri]
	if lock == nil {
		lock = &sync.Mutex{}
		s.startLocks[ri] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	s.mu.Lock()
	if srv := s.servers[ri]; srv != nil && srv.alive() {
		s.mu.Unlock()
		return srv, nil
	}
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil, errors.New("the DB instance is gone")
	}
	port, name := inst.Port, inst.ID
	if !portFree(port) {
		// Something else took the port while the local cloud was down:
		// the endpoint moves, as a host's address may after a reboot.
		p, err := s.allocPortLocked()
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.log.Warn("db instance port taken, moving", "db-instance", name, "port", port, "new-port", p)
		inst.Port, port = p, p
		s.changedLocked()
	}
	s.mu.Unlock()

	srv, err := s.pg.start(ctx, s.instLayout(ri), port, name)
	if err != nil {
		return nil, fmt.Errorf("starting the server of %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		go srv.stop()
		return nil, context.Canceled
	}
	s.servers[ri] = srv
	return srv, nil
}

func (s *Service) doCreate(ctx context.Context, ri string) error {
	s.mu.Lock()
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil
	}
	master, dbName, verifier := inst.Master, inst.DBName, inst.Verifier
	s.mu.Unlock()
	if verifier == "" {
		return errors.New("the master password was lost (the local cloud stopped during creation and keeps no password); delete the instance and create it again")
	}
	s.stopServer(ri)
	if err := s.pg.initdb(s.instLayout(ri)); err != nil {
		return err
	}
	srv, err := s.ensureServer(ctx, ri)
	if err != nil {
		return err
	}
	// As on RDS: the master user may create databases and roles and
	// belongs to rds_superuser, but is no superuser and cannot replicate.
	stmts := []string{
		"CREATE ROLE rds_superuser NOLOGIN",
		"GRANT pg_monitor, pg_signal_backend, pg_checkpoint TO rds_superuser",
		"CREATE ROLE " + quoteIdent(master) + " LOGIN CREATEDB CREATEROLE IN ROLE rds_superuser PASSWORD " + quoteLiteral(verifier),
		"GRANT rds_superuser TO " + quoteIdent(master) + " WITH ADMIN OPTION",
	}
	if dbName != "" {
		stmts = append(stmts, "CREATE DATABASE "+quoteIdent(dbName)+" OWNER "+quoteIdent(master))
	}
	if err := srv.exec(ctx, "postgres", stmts...); err != nil {
		return fmt.Errorf("setting up the master user: %w", err)
	}
	return nil
}

func (s *Service) doReplica(ctx context.Context, ri string) error {
	s.mu.Lock()
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil
	}
	src := s.st.Instances[inst.Source]
	if src == nil {
		s.mu.Unlock()
		return fmt.Errorf("source %s is gone", inst.Source)
	}
	srcRI, name := src.ResourceID, inst.ID
	s.mu.Unlock()
	srcSrv, err := s.ensureServer(ctx, srcRI)
	if err != nil {
		return fmt.Errorf("source server: %w", err)
	}
	slot := slotName(ri)
	s.stopServer(ri)
	// An earlier attempt, cut short by a restart, may have left the slot.
	if err := dropSlot(ctx, srcSrv, slot); err != nil {
		return err
	}
	l := s.instLayout(ri)
	if err := s.pg.prepare(l); err != nil {
		return err
	}
	start := time.Now()
	if err := s.pg.baseBackup(ctx, srcSrv, l.data(), slot, true); err != nil {
		_ = dropSlot(context.Background(), srcSrv, slot)
		return err
	}
	copied := time.Now()
	srv, err := s.ensureServer(ctx, ri)
	if err != nil {
		_ = dropSlot(context.Background(), srcSrv, slot)
		return err
	}
	started := time.Now()
	if err := waitStreaming(ctx, srv, streamTimeout); err != nil {
		return err
	}
	s.log.Info("read replica streaming", "db-instance", name, "base-backup", copied.Sub(start).Round(time.Millisecond),
		"start", started.Sub(copied).Round(time.Millisecond), "until-streaming", time.Since(started).Round(time.Millisecond))
	return nil
}

// waitStreaming waits until srv is a standby whose WAL receiver streams.
func waitStreaming(ctx context.Context, srv *server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, msg, err := replicationState(ctx, srv)
		if ok {
			return nil
		}
		last = err
		if last == nil {
			last = errors.New(msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replica did not start streaming within %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicationState reads a standby's WAL receiver.
func replicationState(ctx context.Context, srv *server) (streaming bool, message string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := srv.connect(ctx, "postgres")
	if err != nil {
		return false, "cannot connect to the replica", err
	}
	defer c.Close(context.Background())
	var recovery bool
	var status *string
	err = c.QueryRow(ctx, `SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver LIMIT 1)`).Scan(&recovery, &status)
	switch {
	case err != nil:
		return false, "cannot read the WAL receiver", err
	case !recovery:
		return false, "the server is not in recovery", nil
	case status == nil:
		return false, "no WAL receiver is running (the source is unreachable)", nil
	case *status != "streaming":
		return false, "the WAL receiver is " + *status, nil
	}
	return true, "", nil
}

// dropSlot removes a replication slot if it exists, ending the WAL
// sender that holds it.
func dropSlot(ctx context.Context, srv *server, slot string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := srv.exec(ctx, "postgres",
			"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = "+quoteLiteral(slot)+" AND active_pid IS NOT NULL",
			"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = "+quoteLiteral(slot))
		var pe *pgconn.PgError
		if err == nil {
			return nil
		}
		// 55006: the slot is still active; its sender is on its way out.
		if !errors.As(err, &pe) || pe.Code != "55006" || time.Now().After(deadline) {
			return fmt.Errorf("dropping replication slot %s: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Service) doRestore(ctx context.Context, ri string) error {
	s.mu.Lock()
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil
	}
	sn := s.st.Snapshots[inst.FromSnapshot]
	if sn == nil || sn.Status != statusAvailable {
		s.mu.Unlock()
		return fmt.Errorf("snapshot %s is gone", inst.FromSnapshot)
	}
	from := s.snapDir(sn.ResourceID)
	s.mu.Unlock()
	s.stopServer(ri)
	l := s.instLayout(ri)
	if err := s.pg.prepare(l); err != nil {
		return err
	}
	if err := s.pg.copyTree(ctx, from, l.data()); err != nil {
		return err
	}
	if err := s.pg.unStandby(l.data()); err != nil {
		return fmt.Errorf("making the restored copy a primary: %w", err)
	}
	_, err := s.ensureServer(ctx, ri)
	return err
}

func (s *Service) doPromote(ctx context.Context, ri string) error {
	srv, err := s.ensureServer(ctx, ri)
	if err != nil {
		return err
	}
	if err := promote(ctx, srv); err != nil {
		return err
	}
	s.mu.Lock()
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil
	}
	var srcSrv *server
	src := s.st.Instances[inst.Source]
	if src != nil {
		srcSrv = s.servers[src.ResourceID]
	}
	s.mu.Unlock()
	if srcSrv != nil && srcSrv.alive() {
		if err := dropSlot(ctx, srcSrv, slotName(ri)); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detachReplicaLocked(inst)
	inst.Retention = inst.PromoteRetention
	inst.PromoteRetention = 0
	return nil
}

// promote ends recovery on a standby and forgets its source, so that a
// restart does not make it a standby again. Safe to repeat.
func promote(ctx context.Context, srv *server) error {
	err := srv.exec(ctx, "postgres", "SELECT pg_promote(true, 60)")
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && strings.Contains(pe.Message, "recovery is not in progress")) {
		return fmt.Errorf("promoting: %w", err)
	}
	if err := srv.exec(ctx, "postgres", "ALTER SYSTEM RESET primary_conninfo", "ALTER SYSTEM RESET primary_slot_name", "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("forgetting the source after promotion: %w", err)
	}
	return nil
}

// detachReplicaLocked clears the replica ids on both sides.
func (s *Service) detachReplicaLocked(inst *instance) {
	if src := s.st.Instances[inst.Source]; src != nil {
		src.Replicas = slices.DeleteFunc(src.Replicas, func(r string) bool { return r == inst.ID })
	}
	inst.Source = ""
	delete(s.repl, inst.ResourceID)
}

func (s *Service) doSnapshots(ctx context.Context, ri string) error {
	srv, err := s.ensureServer(ctx, ri)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var todo []*snapshot
	for _, sn := range s.st.Snapshots {
		if sn.InstanceRI == ri && sn.Status == statusCreating {
			todo = append(todo, sn)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, sn := range todo {
		errs = append(errs, s.takeSnapshot(ctx, srv, sn))
	}
	return errors.Join(errs...)
}

// takeSnapshot runs the base backup into the snapshot's directory and
// marks the snapshot available, or failed.
func (s *Service) takeSnapshot(ctx context.Context, srv *server, sn *snapshot) error {
	s.mu.Lock()
	dir := s.snapDir(sn.ResourceID)
	s.mu.Unlock()
	err := s.pg.baseBackup(ctx, srv, dir, "", false)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.changedLocked()
	if err != nil {
		sn.Status, sn.Message = statusFailed, err.Error()
		return fmt.Errorf("snapshot %s: %w", sn.ID, err)
	}
	sn.Status, sn.Message = statusAvailable, ""
	s.log.Info("db snapshot available", "db-snapshot", sn.ID)
	return nil
}

func (s *Service) doDelete(ctx context.Context, ri string) error {
	s.mu.Lock()
	inst := s.byRILocked(ri)
	if inst == nil {
		s.mu.Unlock()
		return nil
	}
	var final *snapshot
	if inst.FinalSnapshot != "" {
		final = s.st.Snapshots[inst.FinalSnapshot]
	}
	replicas := append([]string(nil), inst.Replicas...)
	s.mu.Unlock()

	if final != nil && final.Status == statusCreating {
		srv, err := s.ensureServer(ctx, ri)
		if err != nil {
			return err
		}
		if err := s.takeSnapshot(ctx, srv, final); err != nil {
			return err
		}
	}
	// As on RDS: deleting a source promotes its replicas to standalone
	// instances.
	for _, id := range replicas {
		s.mu.Lock()
		rep := s.st.Instances[id]
		var rri string
		if rep != nil {
			rri = rep.ResourceID
			rep.Status, rep.Job, rep.PromoteRetention = statusModifying, jobPromote, 1
			s.changedLocked()
		}
		s.mu.Unlock()
		if rep == nil {
			continue
		}
		s.runJob(ctx, rri, jobPromote)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	s.mu.Lock()
	var srcSrv *server
	if src := s.st.Instances[inst.Source]; src != nil {
		srcSrv = s.servers[src.ResourceID]
	}
	s.mu.Unlock()
	s.stopServer(ri)
	if srcSrv != nil && srcSrv.alive() {
		if err := dropSlot(ctx, srcSrv, slotName(ri)); err != nil {
			s.log.Warn("dropping a deleted replica's slot failed", "db-instance", inst.ID, "error", err)
		}
	}
	s.removeAll(s.instLayout(ri).root)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detachReplicaLocked(inst)
	if s.st.Instances[inst.ID] == inst {
		delete(s.st.Instances, inst.ID)
	}
	delete(s.startLocks, ri)
	s.changedLocked()
	s.log.Info("db instance deleted", "db-instance", inst.ID)
	return nil
}

func (s *Service) stopServer(ri string) {
	s.mu.Lock()
	srv := s.servers[ri]
	delete(s.servers, ri)
	s.mu.Unlock()
	srv.stop()
}

func (s *Service) removeAll(path string) {
	if err := os.RemoveAll(path); err != nil {
		s.log.Warn("removing files failed", "path", path, "error", err)
	}
}

// monitor reads every replica's replication state for StatusInfos, and
// boots again any server that died under an available instance, as RDS
// recovers a crashed instance.
func (s *Service) monitor() {
	t := time.NewTicker(s.cfg.MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		type probe struct {
			ri  string
			srv *server
		}
		var probes []probe
		s.mu.Lock()
		for _, inst := range s.st.Instances {
			if inst.Job != jobNone || inst.Status != statusAvailable && inst.Status != statusBackingUp {
				continue
			}
			srv := s.servers[inst.ResourceID]
			if srv == nil || !srv.alive() {
				s.log.Warn("db instance server died, restarting", "db-instance", inst.ID)
				inst.Status, inst.Job = statusRebooting, jobStart
				s.changedLocked()
				s.startJobLocked(inst)
				continue
			}
			if inst.Source != "" {
				probes = append(probes, probe{inst.ResourceID, srv})
			}
		}
		s.mu.Unlock()
		for _, p := range probes {
			ok, msg, err := replicationState(s.ctx, p.srv)
			if err != nil {
				msg = msg + ": " + err.Error()
			}
			s.mu.Lock()
			s.repl[p.ri] = replState{streaming: ok, message: msg}
			s.mu.Unlock()
		}
	}
}
