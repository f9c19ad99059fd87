// Package autoscaling is the local cloud's Amazon EC2 Auto Scaling: an
// awsquery endpoint that the unmodified aws-sdk-go-v2 and AWS CLI talk to,
// and a group controller that keeps each group's desired capacity
// (launching a large shortfall in paced batches), spreads instances over
// zones, replaces unhealthy ones (launching first when an instance
// maintenance policy says so) and those in zones the group left (launching
// first unless a policy leaves no room), honours launch and terminate
// lifecycle hooks (Pending:Wait, heartbeats, timeouts with the default
// result), Standby, and target group registration, and emits the Auto
// Scaling EventBridge events. Groups launch from a launch template or a
// launch configuration (api_launchconfigs.go); hooks with a notification
// target also get AWS's own messages there (notify.go).
//
// It reaches EC2, ELBv2, EventBridge and the hooks' targets only through the
// small interfaces in cloud.go, which the localcloud wiring implements; it must never import
// those services, never block an API call on instance I/O, and never let an
// event or a state change be lost across a restart once the API call that
// caused it has answered.
//
// Requests are read in requests.go and answered in the XML of protocol.go;
// the API handlers are in api_*.go, the controller in controller.go,
// steps.go and replacement.go.
package autoscaling

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Service is the Auto Scaling API and its group controller. It is an
// http.Handler for awsquery requests; Start runs the controller.
type Service struct {
	cfg Config
	log *slog.Logger
	api http.Handler

	// mu guards st, launchBackoff and nextBatch. It is never held across a
	// call to Instances, Targets or Publisher, so API calls do not wait on
	// them.
	mu sync.Mutex
	st *state
	// launchBackoff holds, per group and zone, when launches may be tried
	// again after one failed. It is not saved: a restart retries at once.
	launchBackoff map[string]time.Time
	// nextBatch holds, per group, when its next batch of launches may
	// start (see reconcileCapacity). Like launchBackoff it is not saved:
	// pacing is not state an API call answered with, and a restart that
	// launches the next batch early loses nothing.
	nextBatch map[string]time.Time

	// stepMu makes controller passes run one at a time.
	stepMu sync.Mutex

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

// New returns a Service with the state saved under cfg.DataDir, if any.
func New(cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:           cfg,
		log:           cfg.Logger.With("service", "autoscaling"),
		st:            st,
		launchBackoff: map[string]time.Time{},
		nextBatch:     map[string]time.Time{},
	}
	s.api = s.newAPI()
	return s, nil
}

// Start runs the group controller every cfg.Tick until ctx ends or Close is
// called. Calling it again does nothing.
func (s *Service) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ctx, s.cancel = context.WithCancel(ctx)
		s.done = make(chan struct{})
		go s.run(ctx)
	})
}

func (s *Service) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("controller pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the controller started by Start and waits for its pass to
// end. The Service still answers API calls and Step afterwards.
func (s *Service) Close() error {
	s.startOnce.Do(func() {}) // a later Start does nothing
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now().UTC() }

// saveLocked persists the state; callers hold mu. A failure leaves memory
// ahead of the disk until the next successful save, which writes it all.
func (s *Service) saveLocked() error {
	if err := saveState(s.cfg.DataDir, s.st); err != nil {
		s.log.Error("saving state failed", "err", err)
		return awsproto.Internal("saving the Auto Scaling state failed: %v", err)
	}
	return nil
}

type handler func(s *Service, ctx context.Context, f form) (result any, err error)

// handlers maps each supported action to its handler. Handlers return the
// *Result struct to write, or nil for an empty response.
var handlers = map[string]handler{
	"CreateAutoScalingGroup":              (*Service).createGroup,
	"UpdateAutoScalingGroup":              (*Service).updateGroup,
	"DeleteAutoScalingGroup":              (*Service).deleteGroup,
	"DescribeAutoScalingGroups":           (*Service).describeGroups,
	"DescribeAutoScalingInstances":        (*Service).describeInstances,
	"SetDesiredCapacity":                  (*Service).setDesiredCapacity,
	"TerminateInstanceInAutoScalingGroup": (*Service).terminateInstance,
	"EnterStandby":                        (*Service).enterStandby,
	"ExitStandby":                         (*Service).exitStandby,
	"DescribeScalingActivities":           (*Service).describeActivities,
	"PutLifecycleHook":                    (*Service).putHook,
	"DescribeLifecycleHooks":              (*Service).describeHooks,
	"DeleteLifecycleHook":                 (*Service).deleteHook,
	"CompleteLifecycleAction":             (*Service).completeAction,
	"RecordLifecycleActionHeartbeat":      (*Service).recordHeartbeat,
	"SetInstanceProtection":               (*Service).setInstanceProtection,
	"SetInstanceHealth":                   (*Service).setInstanceHealth,
	"CreateLaunchConfiguration":           (*Service).createLaunchConfiguration,
	"DescribeLaunchConfigurations":        (*Service).describeLaunchConfigurations,
	"DeleteLaunchConfiguration":           (*Service).deleteLaunchConfiguration,
	"CreateOrUpdateTags":                  (*Service).createOrUpdateTags,
	"DeleteTags":                          (*Service).deleteTags,
	"AttachLoadBalancerTargetGroups":      (*Service).attachTargetGroups,
}

// ServeHTTP answers one awsquery request through the shared Query
// dispatcher.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) }

func (s *Service) newAPI() *awsproto.Query[any] {
	q := &awsproto.Query[any]{
		Service:     "autoscaling",
		Version:     apiVersion,
		Actions:     map[string]awsproto.Action[any]{},
		MapFault:    faultError,
		WriteResult: writeResult,
		WriteError:  func(w http.ResponseWriter, err error) { awsproto.WriteQueryError(w, xmlns, err) },
		Log:         s.log,
	}
	if s.cfg.Faults != nil {
		q.Faults = s.cfg.Faults
	}
	for name, h := range handlers {
		q.Actions[name] = func(ctx context.Context, v awsproto.Values) (any, error) { return h(s, ctx, form{v}) }
	}
	return q
}

// faultError keeps an injected *awsproto.Error as it is and turns anything
// else into the server fault Auto Scaling answers with.
func faultError(err error) error {
	e := awsproto.AsError(err)
	if e.Code == "InternalError" {
		return &awsproto.Error{Code: "InternalFailure", Message: e.Message, Status: http.StatusInternalServerError, Receiver: true}
	}
	return e
}

// groupARN builds the ARN AWS gives a group.
func (s *Service) groupARN(name string) string {
	return fmt.Sprintf("arn:%s:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", partition(s.cfg.Region), s.cfg.Region, s.cfg.AccountID, newUUID(), name)
}

func (s *Service) instanceARN(id string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", partition(s.cfg.Region), s.cfg.Region, s.cfg.AccountID, id)
}

func serviceLinkedRoleARN(groupARN string) string {
	// arn:PARTITION:autoscaling:REGION:ACCOUNT:… → the account's
	// AWSServiceRoleForAutoScaling.
	f := strings.SplitN(groupARN, ":", 6)
	if len(f) < 6 {
		return ""
	}
	return "arn:" + f[1] + ":iam::" + f[4] + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// groupLocked returns a group or the error AWS gives for an unknown one.
// Callers hold mu.
func (s *Service) groupLocked(name string) (*group, error) {
	g, ok := s.st.Groups[name]
	if !ok {
		return nil, errGroupNotFound(name)
	}
	return g, nil
}

// mutableGroupLocked is groupLocked for calls that change the group, which
// a group being deleted refuses.
func (s *Service) mutableGroupLocked(name string) (*group, error) {
	g, err := s.groupLocked(name)
	if err == nil && g.Deleting {
		return nil, errGroupDeleting(name)
	}
	return g, err
}

// newActivityLocked records an activity for g and returns it.
func (s *Service) newActivityLocked(g *group, now time.Time, description, cause, zone string, status string, progress int) *activity {
	details := "{}"
	if zone != "" {
		if subnet := g.Subnets[zone]; subnet != "" {
			details = fmt.Sprintf(`{"Subnet ID":%q,"Availability Zone":%q}`, subnet, zone)
		} else {
			details = fmt.Sprintf(`{"Availability Zone":%q}`, zone)
		}
	}
	a := &activity{
		ID: newUUID(), Group: g.Name, GroupARN: g.ARN,
		Description: description, Cause: cause, Details: details,
		Start: now, Status: status, Progress: progress,
	}
	s.st.Activities = append(s.st.Activities, a)
	s.trimActivitiesLocked(g.ARN)
	return a
}

// trimActivitiesLocked drops a group's oldest activities past the limit.
func (s *Service) trimActivitiesLocked(groupARN string) {
	n := 0
	for _, a := range s.st.Activities {
		if a.GroupARN == groupARN {
			n++
		}
	}
	if n <= maxActivitiesPerGroup {
		return
	}
	drop := n - maxActivitiesPerGroup
	kept := s.st.Activities[:0]
	for _, a := range s.st.Activities {
		if a.GroupARN == groupARN && drop > 0 {
			drop--
			continue
		}
		kept = append(kept, a)
	}
	s.st.Activities = kept
}

func (s *Service) activityLocked(id string) *activity {
	for i := len(s.st.Activities) - 1; i >= 0; i-- {
		if a := s.st.Activities[i]; a.ID == id {
			return a
		}
	}
	return nil
}

// findInstanceLocked returns the group holding an instance.
func (s *Service) findInstanceLocked(id string) (*group, *instance) {
	for _, g := range s.st.Groups {
		if i, ok := g.Instances[id]; ok {
			return g, i
		}
	}
	return nil, nil
}
