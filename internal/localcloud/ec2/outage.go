package ec2

import (
	"context"
	"fmt"
	"syscall"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// KillProcesses kills an instance's processes without changing its EC2
// state, as a crash of its service or operating system would: the instance
// stays "running" and its status checks (ProcessAlive) fail, so an Auto
// Scaling group with EC2 health checks replaces it.
func (s *Service) KillProcesses(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	in := s.st.Instances[id]
	if in == nil {
		s.mu.Unlock()
		return kindInstance.notFoundErr(id)
	}
	var p *proc
	if r := s.rt[id]; r != nil {
		p = r.proc
	}
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("instance %s has no running process (it is %s)", id, in.State)
	}
	// The whole process group: user data and whatever it started.
	if err := syscall.Kill(-p.pgid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("killing the processes of %s: %w", id, err)
	}
	return nil
}

// SetZoneDown takes a zone down (or brings it back). While it is down its
// instances' processes are frozen (SIGSTOP), so they answer nothing and
// their status checks fail, and no instance or volume can be created or
// attached there.
func (s *Service) SetZoneDown(zone string, down bool) error {
	if !s.zoneKnown(zone) {
		return awsproto.Errorf("InvalidZone.NotFound", "The zone '%s' does not exist.", zone)
	}
	s.mu.Lock()
	if s.down == nil {
		s.down = map[string]bool{}
	}
	s.down[zone] = down
	var pgids []int
	for id, in := range s.st.Instances {
		if in.Zone != zone {
			continue
		}
		if r := s.rt[id]; r != nil && r.proc != nil {
			pgids = append(pgids, r.proc.pgid)
		}
	}
	s.mu.Unlock()
	sig := syscall.SIGCONT
	if down {
		sig = syscall.SIGSTOP
	}
	for _, g := range pgids {
		_ = syscall.Kill(-g, sig)
	}
	return nil
}

// zoneDownErr refuses work in a zone that is down, as EC2 answers when a
// zone has no capacity.
func (s *Service) zoneDownLocked(zone string) error {
	if s.down[zone] {
		return awsproto.Errorf("InsufficientInstanceCapacity", "We currently do not have sufficient capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", zone)
	}
	return nil
}
