package elbv2

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// stateFile is the one file the service keeps under DataDir.
const stateFile = "elbv2.json"

// persisted is the on-disk shape. Target health is not stored: it is
// re-learnt from health checks after a restart, starting from initial.
type persisted struct {
	Version       int
	Seq           int64
	LoadBalancers []*loadBalancer
	TargetGroups  []*targetGroup
	Listeners     []*listener
}

const persistedVersion = 1

// snapshot is an encoded state with its place in the order snapshots were
// taken.
type snapshot struct {
	body []byte
	seq  uint64
}

// snapshotLocked encodes the current state; persist writes it. Splitting
// the two keeps file I/O outside s.mu while still never letting an older
// snapshot overwrite a newer one. It returns nil for a memory-only service.
func (s *Service) snapshotLocked() *snapshot {
	if s.cfg.DataDir == "" {
		return nil
	}
	p := persisted{Version: persistedVersion, Seq: s.seq}
	for _, lb := range s.lbs {
		p.LoadBalancers = append(p.LoadBalancers, lb)
	}
	for _, tg := range s.tgs {
		p.TargetGroups = append(p.TargetGroups, tg)
	}
	for _, l := range s.listeners {
		p.Listeners = append(p.Listeners, l)
	}
	sort.Slice(p.LoadBalancers, func(i, j int) bool { return p.LoadBalancers[i].Seq < p.LoadBalancers[j].Seq })
	sort.Slice(p.TargetGroups, func(i, j int) bool { return p.TargetGroups[i].Seq < p.TargetGroups[j].Seq })
	sort.Slice(p.Listeners, func(i, j int) bool { return p.Listeners[i].Seq < p.Listeners[j].Seq })
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		// Every persisted field is a plain value; this cannot happen.
		panic(fmt.Sprintf("elbv2: encoding state: %v", err))
	}
	s.persistSeq++
	return &snapshot{body: b, seq: s.persistSeq}
}

// persist writes a snapshot atomically (temp file, fsync, rename, fsync
// of the directory). A nil snapshot (memory-only service) is a no-op.
func (s *Service) persist(snap *snapshot) error {
	if snap == nil {
		return nil
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	if snap.seq <= s.persistDone {
		return nil // a newer snapshot is already on disk
	}
	if err := statefile.WriteFile(filepath.Join(s.cfg.DataDir, stateFile), snap.body); err != nil {
		return fmt.Errorf("persisting elbv2 state: %w", err)
	}
	s.persistDone = snap.seq
	return nil
}

// restore loads the persisted state, if any, and re-opens the listeners.
func (s *Service) restore() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	path := filepath.Join(s.cfg.DataDir, stateFile)
	var p persisted
	found, err := statefile.ReadJSON(path, &p)
	if err != nil && found { // there but corrupt
		return fmt.Errorf("elbv2: invalid state (move it away to start empty): %w", err)
	}
	if err != nil {
		return fmt.Errorf("elbv2: %w", err)
	}
	if !found {
		return nil
	}
	if p.Version != persistedVersion {
		return fmt.Errorf("elbv2: %s has state version %d, this build reads %d", path, p.Version, persistedVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = p.Seq
	for _, lb := range p.LoadBalancers {
		if lb.Attributes == nil {
			lb.Attributes = defaultLBAttributes()
		}
		s.lbs[lb.ARN] = lb
	}
	for _, tg := range p.TargetGroups {
		if tg.Attributes == nil {
			tg.Attributes = defaultTGAttributes()
		}
		for _, t := range tg.Targets {
			t.reset()
		}
		s.tgs[tg.ARN] = tg
	}
	var opened []*listener
	for _, l := range p.Listeners {
		if s.lbs[l.LoadBalancerARN] == nil {
			s.log.Warn("dropping listener of a missing load balancer", "listener", l.ARN)
			continue
		}
		s.listeners[l.ARN] = l
		opened = append(opened, l)
	}
	moved := false
	for _, l := range opened {
		was := l.Port
		if err := s.openListenerLocked(l, l.Port); err != nil {
			for _, o := range opened {
				if o.srv != nil {
					_ = o.srv.Close()
				}
			}
			return fmt.Errorf("elbv2: re-opening listener %s: %w", l.ARN, err)
		}
		if l.Port != was {
			moved = true
			s.log.Warn("listener port taken, moved", "listener", l.ARN, "was", was, "port", l.Port)
		}
	}
	s.sweepLocked()
	if moved {
		snap := s.snapshotLocked()
		if err := statefile.WriteFile(path, snap.body); err != nil {
			return fmt.Errorf("elbv2: recording moved listener ports: %w", err)
		}
	}
	return nil
}
