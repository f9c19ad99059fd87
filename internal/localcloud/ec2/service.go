package ec2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/pacing"
)

// Service is the local EC2 endpoint. It is an http.Handler for EC2 Query
// requests and also offers in-process methods to the local Auto Scaling
// (Launch, Terminate, Instance, Zones). It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	clk clock.Clock

	// ctx ends at Close; background jobs run under it.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	events *eventQueue

	limiters map[pacing.Family]*pacing.Limiter
	api      http.Handler

	mu     sync.Mutex // guards everything below
	st     *state
	rt     map[string]*instRuntime // by instance id
	refs   map[string]int          // snapshot id → jobs reading or writing it
	gcDue  bool                    // a snapshot was deleted since the last GC
	down   map[string]bool         // zones taken down by the fault API
	closed bool
}

// New opens (or creates) the state in cfg.DataDir and resumes what was
// under way: snapshots and volume restores start over, instances that were
// running boot again as after a reboot.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "volumes"), filepath.Join(cfg.DataDir, "instances")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating ec2 data directory: %w", err)
		}
	}
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		clk:      cfg.Clock,
		ctx:      ctx,
		cancel:   cancel,
		limiters: map[pacing.Family]*pacing.Limiter{},
		st:       st,
		rt:       map[string]*instRuntime{},
		refs:     map[string]int{},
	}
	s.events = newEventQueue(cfg.Publisher, s.log)
	s.api = s.newAPI()
	now := s.clk.Now()
	for f, b := range cfg.Throttle {
		s.limiters[f] = pacing.NewLimiter(b, now)
	}
	s.mu.Lock()
	err = s.resumeLocked()
	s.mu.Unlock()
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// resumeLocked restarts what a previous run left under way.
func (s *Service) resumeLocked() error {
	for _, id := range slices.Sorted(maps.Keys(s.st.Snapshots)) {
		if sn := s.st.Snapshots[id]; sn.Status == snapPending {
			s.startSnapshotJobLocked(sn)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.st.Volumes)) {
		if v := s.st.Volumes[id]; v.Status == volCreating {
			s.startRestoreJobLocked(v)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.st.Instances)) {
		s.resumeInstanceLocked(s.st.Instances[id])
	}
	s.removeOrphanDirsLocked()
	return s.saveLocked()
}

// Close stops every instance process (SIGTERM, then SIGKILL after
// StopTimeout), interrupts snapshot and restore jobs (they start over at the
// next New), stops the metadata endpoints and delivers the events already
// queued. Instance states are kept: what was running runs again after New.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var procs []*proc
	var servers []*imdsServer
	for _, r := range s.rt {
		if r.proc != nil {
			procs = append(procs, r.proc)
		}
		if r.imds != nil {
			servers = append(servers, r.imds)
			r.imds = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(s.cfg.StopTimeout) })
	}
	wg.Wait()
	for _, srv := range servers {
		srv.close()
	}
	s.bg.Wait()
	s.events.close(5 * time.Second)
	return nil
}

// ServeHTTP answers one EC2 Query request through the shared Query
// dispatcher.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) }

func (s *Service) newAPI() *awsproto.Query[response] {
	q := &awsproto.Query[response]{
		Service:     "ec2",
		Version:     apiVersion,
		Actions:     map[string]awsproto.Action[response]{},
		Before:      s.gate,
		WriteResult: writeResponse,
		WriteError:  awsproto.WriteEC2Error,
		Log:         s.log,
	}
	if s.cfg.Faults != nil {
		q.Faults = s.cfg.Faults
	}
	for name, h := range handlers {
		q.Actions[name] = func(ctx context.Context, v awsproto.Values) (response, error) { return h(s, ctx, v) }
	}
	return q
}

type handler func(s *Service, ctx context.Context, v awsproto.Values) (response, error)

var handlers = map[string]handler{
	"CreateVolume":                   (*Service).createVolume,
	"DescribeVolumes":                (*Service).describeVolumes,
	"AttachVolume":                   (*Service).attachVolume,
	"DetachVolume":                   (*Service).detachVolume,
	"DeleteVolume":                   (*Service).deleteVolume,
	"CreateSnapshot":                 (*Service).createSnapshot,
	"DescribeSnapshots":              (*Service).describeSnapshots,
	"DeleteSnapshot":                 (*Service).deleteSnapshot,
	"CreateTags":                     (*Service).createTags,
	"DeleteTags":                     (*Service).deleteTags,
	"DescribeTags":                   (*Service).describeTags,
	"RunInstances":                   (*Service).runInstances,
	"DescribeInstances":              (*Service).describeInstances,
	"TerminateInstances":             (*Service).terminateInstances,
	"StopInstances":                  (*Service).stopInstances,
	"StartInstances":                 (*Service).startInstances,
	"DescribeAvailabilityZones":      (*Service).describeZones,
	"DescribeImages":                 (*Service).describeImages,
	"CreateLaunchTemplate":           (*Service).createTemplate,
	"CreateLaunchTemplateVersion":    (*Service).createTemplateVersion,
	"DescribeLaunchTemplates":        (*Service).describeTemplates,
	"DescribeLaunchTemplateVersions": (*Service).describeTemplateVersions,
	"ModifyLaunchTemplate":           (*Service).modifyTemplate,
	"DeleteLaunchTemplate":           (*Service).deleteTemplate,
}

// gate runs after injected faults and before the handler: a closing
// service, throttling and DryRun, which EC2 checks before doing anything.
func (s *Service) gate(_ context.Context, action string, v awsproto.Values) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return &awsproto.Error{Code: "Unavailable", Message: "The local EC2 service is shutting down.", Status: http.StatusServiceUnavailable, Receiver: true}
	}
	if lim, ok := s.limiters[throttleFamily(action, v)]; ok && !lim.Allow(s.clk.Now()) {
		return awsproto.Throttled(action)
	}
	if dry, err := v.Bool("DryRun", false); err != nil {
		return err
	} else if dry {
		return &awsproto.Error{Code: "DryRunOperation", Message: "Request would have succeeded, but DryRun flag is set.", Status: http.StatusPreconditionFailed}
	}
	return nil
}

// throttleFamily is the bucket a call draws from: EC2 charges the Describe
// calls of its "unfiltered and unpaginated" category to a smaller bucket.
func throttleFamily(action string, v awsproto.Values) pacing.Family {
	f := pacing.EC2Family(action)
	if f != pacing.FamilyDescribe {
		return f
	}
	switch action {
	case "DescribeInstances", "DescribeVolumes", "DescribeSnapshots", "DescribeTags":
		filtered := v.Get("MaxResults") != "" || v.Get("NextToken") != "" || len(v.Structs("Filter")) > 0
		if !filtered {
			return pacing.FamilyDescribeUnfiltered
		}
	}
	return f
}

// saveLocked persists the state; s.mu must be held.
func (s *Service) saveLocked() error {
	if err := saveState(s.cfg.DataDir, s.st); err != nil {
		s.log.Error("saving ec2 state failed", "error", err)
		return awsproto.Internal("saving the local cloud's state: %v", err)
	}
	return nil
}

// goBG runs f in the background until Close; it reports false (and does
// not run f) once the service is closing. s.mu must be held.
func (s *Service) goBGLocked(f func()) bool {
	if s.closed {
		return false
	}
	s.bg.Go(f)
	return true
}

func (s *Service) volumeDir(id string) string   { return filepath.Join(s.cfg.DataDir, "volumes", id) }
func (s *Service) instanceDir(id string) string { return filepath.Join(s.cfg.DataDir, "instances", id) }

// tagsOf returns a copy of a resource's tags.
func (s *Service) tagsOfLocked(id string) map[string]string {
	out := make(map[string]string, len(s.st.Tags[id]))
	for k, v := range s.st.Tags[id] {
		out[k] = v
	}
	return out
}

// addTagsLocked sets tags on a resource, enforcing EC2's 50 per resource.
func (s *Service) addTagsLocked(id string, tags map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	cur := s.st.Tags[id]
	n := len(cur)
	for k := range tags {
		if _, ok := cur[k]; !ok {
			n++
		}
	}
	if n > maxTagsPerRes {
		return awsproto.Errorf("TagLimitExceeded", "The maximum number of tags (%d) for resource %s has been reached.", maxTagsPerRes, id)
	}
	if cur == nil {
		cur = map[string]string{}
		s.st.Tags[id] = cur
	}
	for k, v := range tags {
		cur[k] = v
	}
	return nil
}

func (s *Service) zoneKnown(z string) bool { return slices.Contains(s.cfg.Zones, z) }

// zoneID is the zone's id, like use1-az1: stable per zone letter.
func (s *Service) zoneID(z string) string {
	parts := strings.Split(s.cfg.Region, "-")
	short := parts[0]
	for _, p := range parts[1 : len(parts)-1] {
		short += p[:1]
	}
	short += parts[len(parts)-1]
	return fmt.Sprintf("%s-az%d", short, int(z[len(z)-1]-'a')+1)
}

func (s *Service) zoneByID(id string) (string, bool) {
	for _, z := range s.cfg.Zones {
		if s.zoneID(z) == id {
			return z, true
		}
	}
	return "", false
}

// errClosed ends a background job that Close interrupted.
var errClosed = errors.New("the local EC2 service is closing")
