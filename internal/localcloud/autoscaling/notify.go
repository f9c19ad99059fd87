package autoscaling

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// A hook with a NotificationTargetARN gets messages of its own, besides the
// EventBridge events every hook causes: a test message, sent while the
// PutLifecycleHook (or CreateAutoScalingGroup) call is answered, which
// fails the call when it cannot be delivered; and one message per lifecycle
// action, which goes through the outbox like the events (events.go).

// sendTestNotification delivers the test message of hook h of a group, or
// returns AWS's error for a target or role it could not publish with. It
// is called without mu held.
func (s *Service) sendTestNotification(ctx context.Context, group, groupARN string, h *hook) error {
	switch {
	case s.cfg.Notifier == nil:
		s.log.Info("refusing a hook notification target: this Auto Scaling has no notifier", "group", group, "hook", h.Name, "target", h.TargetARN)
		return errTestPublish(h.TargetARN, h.RoleARN)
	case !isRoleARN(h.RoleARN):
		return errTestPublish(h.TargetARN, h.RoleARN)
	case strings.HasPrefix(h.TargetARN, "arn:") && strings.Contains(h.TargetARN, ":sqs:") && strings.HasSuffix(h.TargetARN, ".fifo"):
		// The user guide: "FIFO queues are not compatible with lifecycle
		// hooks."
		return errTestPublish(h.TargetARN, h.RoleARN)
	}
	body, err := events.EncodeHookTest(events.HookTest{
		Account: s.cfg.AccountID, RequestID: newUUID(), GroupARN: groupARN, Group: group, Time: s.now().Truncate(time.Millisecond),
	})
	if err != nil {
		return awsproto.Internal("encoding the test notification of hook %s: %v", h.Name, err)
	}
	if err := s.cfg.Notifier.Notify(ctx, h.TargetARN, string(body)); err != nil {
		s.log.Info("lifecycle hook test notification not delivered", "group", group, "hook", h.Name, "target", h.TargetARN, "err", err)
		return errTestPublish(h.TargetARN, h.RoleARN)
	}
	return nil
}

// isRoleARN reports whether s is the ARN of an IAM role, which is all the
// local cloud, having no IAM, can check of the role a hook publishes as.
func isRoleARN(s string) bool {
	a, err := events.ParseARN(s)
	return err == nil && a.Service == "iam" && a.Region == "" && a.Account != "" && a.ResourceType == "role" && a.ResourceID != ""
}

// queueHookNotificationLocked puts the message of a lifecycle action for
// its hook's notification target in the outbox; callers hold mu.
func (s *Service) queueHookNotificationLocked(h *hook, e *events.Event) {
	if h.TargetARN == "" || s.cfg.Notifier == nil {
		return
	}
	n := *e
	n.ID, n.Delivery, n.Region, n.Resources = newUUID(), events.DeliveryHookNotification, "", nil
	n.Time = e.Time.Truncate(time.Millisecond) // AWS writes milliseconds
	body, err := events.Encode(&n)
	if err != nil {
		s.log.Error("encoding lifecycle hook notification failed", "hook", h.Name, "err", err)
		return
	}
	s.st.Outbox = append(s.st.Outbox, outboxEvent{ID: newUUID(), Kind: e.Kind.String() + "-notification", Target: h.TargetARN, Body: body})
}

// notify delivers one outbox entry to its hook's target. A target that is
// gone drops the message (nil), as AWS cannot deliver it either; the action
// still times out, or is completed by whoever learns of it another way.
func (s *Service) notify(ctx context.Context, e outboxEvent) error {
	if s.cfg.Notifier == nil {
		return nil
	}
	err := s.cfg.Notifier.Notify(ctx, e.Target, string(e.Body))
	if errors.Is(err, ErrNoTarget) {
		s.log.Warn("lifecycle hook notification dropped: its target is gone", "target", e.Target, "err", err)
		return nil
	}
	return err
}
