package autoscaling

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/events"
)

// Events go through an outbox kept in the saved state: a transition and the
// event announcing it are saved together, and the event leaves the outbox
// only once Publisher took it. So an event is never lost to a failed publish
// or a restart, at the price of being sent twice when a restart falls
// between a publish and the save after it, which EventBridge consumers must
// cope with anyway.

type outboxEvent struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Target is a hook's NotificationTargetARN, for the message of a
	// lifecycle action that goes there (notify.go); "" is an event for
	// EventBridge.
	Target string          `json:"target,omitempty"`
	Body   json.RawMessage `json:"body"`
}

// queueLocked adds an encoded event to the outbox; callers hold mu.
func (s *Service) queueLocked(kind string, body []byte, err error) {
	if s.cfg.Publisher == nil {
		return
	}
	if err != nil {
		// Only a bug here can make an event invalid; say so loudly but keep
		// the group moving.
		s.log.Error("encoding event failed", "kind", kind, "err", err)
		return
	}
	s.st.Outbox = append(s.st.Outbox, outboxEvent{ID: newUUID(), Kind: kind, Body: body})
}

// flushOutbox publishes queued events (and delivers hook notifications) in
// order, stopping at the first failure so that order is kept; the rest go
// on the next pass.
func (s *Service) flushOutbox(ctx context.Context) error {
	s.mu.Lock()
	pending := slices.Clone(s.st.Outbox)
	s.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	sent := map[string]bool{}
	var pubErr error
	for _, e := range pending {
		if e.Target != "" {
			if err := s.notify(ctx, e); err != nil {
				pubErr = fmt.Errorf("delivering %s to %s: %w", e.Kind, e.Target, err)
				break
			}
		} else if s.cfg.Publisher != nil {
			if err := s.cfg.Publisher.Publish(ctx, e.Body); err != nil {
				pubErr = fmt.Errorf("publishing %s event: %w", e.Kind, err)
				break
			}
		}
		sent[e.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Outbox = slices.DeleteFunc(s.st.Outbox, func(e outboxEvent) bool { return sent[e.ID] })
	if len(sent) > 0 {
		if err := s.saveLocked(); err != nil && pubErr == nil {
			pubErr = err
		}
	}
	return pubErr
}

func (s *Service) envelope(kind events.Kind, now time.Time, resources ...string) *events.Event {
	return &events.Event{
		ID:         newUUID(),
		DetailType: kind.DetailType(),
		Source:     kind.Source(),
		Region:     s.cfg.Region,
		Account:    s.cfg.AccountID,
		Time:       now,
		Resources:  resources,
		Kind:       kind,
	}
}

// queueLifecycleLocked announces an instance waiting on a hook.
func (s *Service) queueLifecycleLocked(g *group, i *instance, h *hook, a *action, now time.Time) {
	kind := events.KindLaunchAction
	origin, destination := "EC2", "AutoScalingGroup"
	if a.Transition == transitionTerminating {
		kind = events.KindTerminateAction
		origin, destination = destination, origin
	}
	e := s.envelope(kind, now, g.ARN)
	e.Lifecycle = &events.LifecycleAction{
		Group: g.Name, Hook: h.Name, Token: a.Token, InstanceID: i.ID,
		Transition: a.Transition, Origin: origin, Destination: destination,
		Metadata: h.Metadata,
	}
	body, err := events.EncodeWith(e, events.EncodeOptions{})
	s.queueLocked(kind.String(), body, err)
	s.queueHookNotificationLocked(h, e)
}

// queueLaunchResultLocked announces a launch that succeeded or did not; i
// is nil when EC2 refused the launch and there is no instance.
func (s *Service) queueLaunchResultLocked(g *group, i *instance, act *activity, zone string, successful bool, now time.Time) {
	kind := events.KindLaunchUnsuccessful
	if successful {
		kind = events.KindLaunchSuccessful
	}
	resources := []string{g.ARN}
	id := ""
	if i != nil {
		id = i.ID
		resources = append(resources, s.instanceARN(id))
	}
	e := s.envelope(kind, now, resources...)
	e.Launch = &events.LaunchResult{
		Group: g.Name, InstanceID: id, ActivityID: act.ID,
		StatusCode: act.Status, StatusMessage: act.StatusMessage, Cause: act.Cause,
		AvailabilityZone: zone, Successful: successful,
	}
	body, err := events.EncodeWith(e, events.EncodeOptions{})
	s.queueLocked(kind.String(), body, err)
}

// The events package has no "EC2 Instance Terminate Successful" (handover
// does not consume it), so it is written here, in the shape of AWS's
// published example.
type terminateEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     terminateDetail `json:"detail"`
}

type terminateDetail struct {
	StatusCode           string           `json:"StatusCode"`
	Description          string           `json:"Description"`
	AutoScalingGroupName string           `json:"AutoScalingGroupName"`
	ActivityID           string           `json:"ActivityId"`
	Details              terminateDetails `json:"Details"`
	RequestID            string           `json:"RequestId"`
	StatusMessage        string           `json:"StatusMessage"`
	EndTime              string           `json:"EndTime"`
	EC2InstanceID        string           `json:"EC2InstanceId"`
	StartTime            string           `json:"StartTime"`
	Cause                string           `json:"Cause"`
	Origin               string           `json:"Origin"`
	Destination          string           `json:"Destination"`
}

type terminateDetails struct {
	AvailabilityZone string `json:"Availability Zone"`
	SubnetID         string `json:"Subnet ID,omitempty"`
}

const detailTypeTerminateSuccessful = "EC2 Instance Terminate Successful"

func (s *Service) queueTerminatedLocked(g *group, i *instance, act *activity, now time.Time) {
	const layout = "2006-01-02T15:04:05Z"
	e := terminateEvent{
		Version: "0", ID: newUUID(), DetailType: detailTypeTerminateSuccessful,
		Source: events.SourceAutoScaling, Account: s.cfg.AccountID,
		Time: now.UTC().Format(layout), Region: s.cfg.Region,
		Resources: []string{g.ARN, s.instanceARN(i.ID)},
		Detail: terminateDetail{
			// AWS's example says InProgress even though the instance is
			// gone; the local cloud keeps the quirk.
			StatusCode:           activityInProgress,
			Description:          act.Description,
			AutoScalingGroupName: g.Name,
			ActivityID:           act.ID,
			Details:              terminateDetails{AvailabilityZone: i.Zone, SubnetID: g.Subnets[i.Zone]},
			RequestID:            newUUID(),
			EndTime:              now.UTC().Format(layout),
			EC2InstanceID:        i.ID,
			StartTime:            act.Start.UTC().Format(layout),
			Cause:                act.Cause,
			Origin:               "AutoScalingGroup",
			Destination:          "EC2",
		},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // AWS does not escape <, > and &
	err := enc.Encode(e)
	s.queueLocked("terminate-successful", bytes.TrimSuffix(b.Bytes(), []byte("\n")), err)
}
