package ec2

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// eventQueue hands events to the Publisher from one goroutine, in the order
// they were emitted, so that publishing never blocks an API call and a
// "running" never overtakes its "pending". Like EC2's events, delivery is
// best-effort: a full queue or a failed Publish drops the event.
type eventQueue struct {
	pub  Publisher
	log  *slog.Logger
	ch   chan []byte
	done chan struct{}
	once sync.Once
	stop context.CancelFunc
	ctx  context.Context
}

const eventQueueLen = 4096

func newEventQueue(pub Publisher, log *slog.Logger) *eventQueue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &eventQueue{pub: pub, log: log, ch: make(chan []byte, eventQueueLen), done: make(chan struct{}), ctx: ctx, stop: cancel}
	go q.run()
	return q
}

func (q *eventQueue) run() {
	defer close(q.done)
	for b := range q.ch {
		if q.pub == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(q.ctx, 10*time.Second)
		if err := q.pub.Publish(ctx, b); err != nil {
			q.log.Warn("publishing an ec2 event failed; dropped", "error", err)
		}
		cancel()
	}
}

func (q *eventQueue) push(b []byte) {
	select {
	case q.ch <- b:
	default:
		q.log.Warn("ec2 event queue full; event dropped")
	}
}

// close delivers what is queued, giving up after timeout.
func (q *eventQueue) close(timeout time.Duration) {
	q.once.Do(func() { close(q.ch) })
	select {
	case <-q.done:
	case <-time.After(timeout):
		q.stop()
		<-q.done
	}
	q.stop()
}

// emitLocked encodes and queues an event. s.mu must be held, so that events
// are queued in the order the state changed.
func (s *Service) emitLocked(ev *events.Event) {
	if s.cfg.Publisher == nil {
		return
	}
	ev.ID = awsproto.RequestID()
	ev.Source = ev.Kind.Source()
	ev.DetailType = ev.Kind.DetailType()
	ev.Region = s.cfg.Region
	ev.Account = s.cfg.AccountID
	ev.Time = s.clk.Now().UTC().Truncate(time.Second)
	b, err := events.EncodeWith(ev, s.cfg.EventShape)
	if err != nil {
		s.log.Error("encoding an ec2 event failed", "kind", ev.Kind.String(), "error", err)
		return
	}
	s.events.push(b)
}

// emitSnapshotLocked emits EBS Snapshot Notification for a finished
// createSnapshot. cause is empty on success.
func (s *Service) emitSnapshotLocked(sn *snapshot, cause string) {
	s.emitLocked(&events.Event{
		Kind:      events.KindSnapshot,
		Resources: []string{events.FormatEC2ARN(s.cfg.EventShape.SnapshotIDs, s.arnRegion(), "", "snapshot", sn.ID)},
		Snapshot: &events.SnapshotResult{
			SnapshotID: sn.ID, VolumeID: sn.VolumeID, Succeeded: cause == "",
			Cause: cause, RequestID: awsproto.RequestID(), Region: s.cfg.Region,
		},
	})
}

// emitVolumeLocked emits EBS Volume Notification for a finished
// createVolume.
func (s *Service) emitVolumeLocked(v *volume, cause string) {
	s.emitLocked(&events.Event{
		Kind:      events.KindVolume,
		Resources: []string{events.FormatEC2ARN(events.ShapeFull, s.cfg.Region, s.cfg.AccountID, "volume", v.ID)},
		Volume: &events.VolumeResult{
			VolumeID: v.ID, Available: cause == "", Cause: cause,
			RequestID: awsproto.RequestID(), Region: s.cfg.Region,
		},
	})
}

// emitStateLocked emits EC2 Instance State-change Notification.
func (s *Service) emitStateLocked(in *instance) {
	s.emitLocked(&events.Event{
		Kind:          events.KindInstanceState,
		Resources:     []string{events.FormatEC2ARN(events.ShapeFull, s.cfg.Region, s.cfg.AccountID, "instance", in.ID)},
		InstanceState: &events.InstanceStateChange{InstanceID: in.ID, State: in.State},
	})
}

func (s *Service) arnRegion() string {
	if s.cfg.EventShape.ARNRegion != "" {
		return s.cfg.EventShape.ARNRegion
	}
	return s.cfg.Region
}
