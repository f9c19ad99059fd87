package ec2

import (
	"fmt"
	"maps"
	"os"
	"sync"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// An instance is a process group (see process.go) in a zone, with its own
// loopback address and metadata endpoint. States move as in EC2:
//
//	pending → running → stopping → stopped → pending …
//	any but terminated → shutting-down → terminated
//
// Each transition that takes time (boot, stop, terminate) runs in the
// background under the instance's op lock, so they happen one at a time in
// the order they were asked for; the API answers at once with the
// transitional state, as EC2 does.

// instRuntime is what an instance has besides its persisted state.
type instRuntime struct {
	op   sync.Mutex  // serializes boot, stop and terminate
	proc *proc       // guarded by Service.mu
	imds *imdsServer // guarded by Service.mu
}

func (s *Service) runtimeLocked(id string) *instRuntime {
	r := s.rt[id]
	if r == nil {
		r = &instRuntime{}
		s.rt[id] = r
	}
	return r
}

// launchSpec is a resolved launch: template and request merged.
type launchSpec struct {
	ImageID, InstanceType, Zone, ClientToken string
	UserData                                 []byte
	Tags                                     map[string]string
	Min, Max                                 int
}

// launchLocked creates the instances (pending) and boots them.
func (s *Service) launchLocked(spec launchSpec) ([]*instance, error) {
	if _, ok := s.cfg.Catalog[spec.ImageID]; !ok {
		return nil, kindImage.notFoundErr(spec.ImageID)
	}
	if spec.Zone != "" && !s.zoneKnown(spec.Zone) {
		return nil, invalid("Invalid availability zone: [%s]", truncate(spec.Zone, 64))
	}
	if len(spec.Tags) > maxTagsPerRes {
		return nil, awsproto.Errorf("TagLimitExceeded", "The maximum number of tags (%d) has been exceeded.", maxTagsPerRes)
	}
	zone := spec.Zone
	if zone == "" {
		zone = s.quietestZoneLocked()
	}
	if err := s.zoneDownLocked(zone); err != nil {
		return nil, err
	}
	ips := s.freeIPsLocked(spec.Max)
	if len(ips) < spec.Min {
		return nil, &awsproto.Error{Code: "InsufficientInstanceCapacity", Message: "There are not enough free private addresses in the local cloud's subnet " + s.cfg.Subnet.String() + ".", Status: 500, Receiver: true}
	}
	now := s.clk.Now().UTC()
	resID := newID("r-")
	var out []*instance
	for i, ip := range ips {
		in := &instance{
			ID: newID("i-"), ReservationID: resID, ImageID: spec.ImageID, InstanceType: spec.InstanceType,
			Zone: zone, PrivateIP: ip, State: instPending, LaunchTime: now, UserData: spec.UserData,
			LaunchIndex: i, ClientToken: spec.ClientToken,
		}
		s.st.Instances[in.ID] = in
		if len(spec.Tags) > 0 {
			s.st.Tags[in.ID] = maps.Clone(spec.Tags)
		}
		s.emitStateLocked(in)
		s.bootLocked(in.ID, false)
		s.log.Info("instance launched", "instance-id", in.ID, "image-id", in.ImageID, "zone", zone, "private-ip", ip)
		out = append(out, in)
	}
	return out, nil
}

func (s *Service) quietestZoneLocked() string {
	count := map[string]int{}
	for _, in := range s.st.Instances {
		if in.State != instTerminated {
			count[in.Zone]++
		}
	}
	best := s.cfg.Zones[0]
	for _, z := range s.cfg.Zones {
		if count[z] < count[best] {
			best = z
		}
	}
	return best
}

// freeIPsLocked returns up to n unused addresses of the subnet, never
// 127.0.0.1 nor one ending in .0 or .255.
func (s *Service) freeIPsLocked(n int) []string {
	used := map[string]bool{"127.0.0.1": true}
	for _, in := range s.st.Instances {
		if in.State != instTerminated {
			used[in.PrivateIP] = true
		}
	}
	var out []string
	for a := s.cfg.Subnet.Masked().Addr(); s.cfg.Subnet.Contains(a) && len(out) < n; a = a.Next() {
		b := a.As4()
		if b[3] == 0 || b[3] == 255 || used[a.String()] {
			continue
		}
		out = append(out, a.String())
	}
	return out
}

// bootLocked starts the instance's processes in the background. reboot
// keeps the state as it is (running); otherwise pending becomes running.
func (s *Service) bootLocked(id string, reboot bool) {
	s.runtimeLocked(id)
	s.goBGLocked(func() { s.runBoot(id, reboot) })
}

func (s *Service) runBoot(id string, reboot bool) {
	s.mu.Lock()
	r := s.runtimeLocked(id)
	s.mu.Unlock()
	r.op.Lock()
	defer r.op.Unlock()

	s.mu.Lock()
	in := s.st.Instances[id]
	want := instPending
	if reboot {
		want = instRunning
	}
	if in == nil || in.State != want || s.closed {
		s.mu.Unlock()
		return
	}
	if r.imds == nil {
		m, err := s.startIMDS(id)
		if err != nil {
			s.log.Error("starting an instance's metadata endpoint failed", "instance-id", id, "error", err)
		} else {
			r.imds = m
		}
	}
	env := bootEnv{InstanceID: id, InstanceDir: s.instanceDir(id), PrivateIP: in.PrivateIP, Zone: in.Zone}
	if r.imds != nil {
		env.IMDSURL = r.imds.url
	}
	imageID := in.ImageID
	img, haveImage := s.cfg.Catalog[imageID]
	env.Image = img
	userData := in.UserData
	s.mu.Unlock()

	var p *proc
	var err error
	if !haveImage {
		err = fmt.Errorf("image %s is not in the local catalog", imageID)
		_ = os.MkdirAll(env.InstanceDir, 0o755)
		if f, ferr := os.OpenFile(env.InstanceDir+"/console.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
			fmt.Fprintf(f, "localcloud: booting %s failed: %v\n", id, err)
			f.Close()
		}
	} else {
		s.bg.Add(1) // the exit watcher; runBoot itself holds the group open
		p, err = boot(env, userData, func(exitErr error) {
			defer s.bg.Done()
			s.log.Info("instance process exited", "instance-id", id, "status", fmt.Sprint(exitErr))
		})
		if err != nil {
			s.bg.Done()
		}
	}
	if err != nil {
		// Like an instance whose OS does not come up: EC2 still calls it
		// running; only its process (ProcessAlive) tells.
		s.log.Error("booting an instance failed", "instance-id", id, "error", err)
	}

	s.mu.Lock()
	if s.closed && p != nil {
		s.mu.Unlock()
		p.stop(s.cfg.StopTimeout) // Close collected the processes before this one started
		return
	}
	defer s.mu.Unlock()
	r.proc = p
	if in := s.st.Instances[id]; in != nil && in.State == instPending {
		in.State, in.Reason = instRunning, ""
		s.emitStateLocked(in)
		_ = s.saveLocked()
	}
}

// stopLocked moves a running instance to stopping and stops it in the
// background.
func (s *Service) stopLocked(in *instance, force bool) {
	in.State = instStopping
	in.Reason = "User initiated (" + s.clk.Now().UTC().Format("2006-01-02 15:04:05 MST") + ")"
	s.emitStateLocked(in)
	id := in.ID
	r := s.runtimeLocked(id)
	s.goBGLocked(func() {
		r.op.Lock()
		defer r.op.Unlock()
		s.killProcess(r, force)
		s.mu.Lock()
		defer s.mu.Unlock()
		if in := s.st.Instances[id]; in != nil && in.State == instStopping {
			in.State = instStopped
			s.emitStateLocked(in)
			_ = s.saveLocked()
		}
	})
}

// killProcess stops the instance's processes; r.op must be held.
func (s *Service) killProcess(r *instRuntime, force bool) {
	s.mu.Lock()
	p := r.proc
	s.mu.Unlock()
	if p == nil {
		return
	}
	grace := s.cfg.StopTimeout
	if force {
		grace = 0
	}
	p.stop(grace)
	s.mu.Lock()
	if r.proc == p {
		r.proc = nil
	}
	s.mu.Unlock()
}

// terminateLocked moves an instance to shutting-down and terminates it in
// the background: processes killed, volumes detached (they stay), metadata
// endpoint closed.
func (s *Service) terminateLocked(in *instance) {
	in.State = instShuttingDown
	in.Reason = "User initiated (" + s.clk.Now().UTC().Format("2006-01-02 15:04:05 MST") + ")"
	s.emitStateLocked(in)
	id := in.ID
	r := s.runtimeLocked(id)
	// When the service is closing this does not run; New finishes the
	// termination.
	s.goBGLocked(func() {
		r.op.Lock()
		defer r.op.Unlock()
		s.killProcess(r, false)
		s.mu.Lock()
		in := s.st.Instances[id]
		if in == nil || in.State != instShuttingDown || s.closed {
			s.mu.Unlock()
			return
		}
		m := s.finishTerminateLocked(in)
		_ = s.saveLocked()
		s.mu.Unlock()
		if m != nil {
			m.close()
		}
	})
}

// finishTerminateLocked records the termination; the caller closes the
// returned metadata endpoint outside the lock.
func (s *Service) finishTerminateLocked(in *instance) *imdsServer {
	in.State, in.TerminatedAt = instTerminated, s.clk.Now().UTC()
	for _, v := range s.st.Volumes {
		if a := v.Attachment; a != nil && a.InstanceID == in.ID {
			s.detachLocked(v)
		}
	}
	s.emitStateLocked(in)
	s.log.Info("instance terminated", "instance-id", in.ID)
	var m *imdsServer
	if r := s.rt[in.ID]; r != nil {
		m, r.imds = r.imds, nil
	}
	return m
}

// resumeInstanceLocked brings an instance back after a restart of the
// local cloud: a running one boots again (as after a reboot), interrupted
// transitions finish.
func (s *Service) resumeInstanceLocked(in *instance) {
	switch in.State {
	case instPending:
		s.bootLocked(in.ID, false)
	case instRunning:
		s.bootLocked(in.ID, true)
	case instStopping:
		in.State = instStopped
		s.emitStateLocked(in)
	case instShuttingDown:
		if m := s.finishTerminateLocked(in); m != nil {
			m.close()
		}
	}
}

// purgeLocked forgets instances terminated longer ago than the retention.
func (s *Service) purgeLocked() bool {
	now := s.clk.Now()
	purged := false
	for id, in := range s.st.Instances {
		if in.State == instTerminated && now.Sub(in.TerminatedAt) > s.cfg.TerminatedRetention {
			delete(s.st.Instances, id)
			delete(s.st.Tags, id)
			delete(s.rt, id)
			_ = os.RemoveAll(s.instanceDir(id))
			purged = true
		}
	}
	return purged
}
