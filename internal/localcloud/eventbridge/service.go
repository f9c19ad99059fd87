// Package eventbridge is the local cloud's Amazon EventBridge: rules with
// event patterns on the default event bus, SQS queue targets, PutEvents,
// and an in-process Publish for the events the local cloud's own services
// emit. Matching events are delivered to their target queues
// asynchronously and at least once, as the full event JSON (the SQS
// message body EventBridge itself writes); an optional EventFaults drops,
// duplicates, delays or reorders deliveries so consumers' handling of
// imperfect delivery can be tested.
//
// Serves AWS JSON 1.1 (X-Amz-Target: AWSEvents.<Operation>) to the
// unmodified SDKs and CLI. It must never deliver anywhere but through its
// QueueSender, nor let one slow or failing target hold up the others'
// deliveries indefinitely.
package eventbridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// DefaultAccountID is the account the local cloud pretends to be.
const DefaultAccountID = "000000000000"

// QueueSender delivers a message to the SQS queue with an ARN. The local
// cloud's sqs.Service implements it. SendByARN need not be idempotent:
// EventBridge retries failed deliveries, so a target may see duplicates.
// For a queue that does not exist it returns an error, and the delivery is
// retried (by the target's retry policy) like any other failure, since the
// queue may yet be created.
type QueueSender interface {
	SendByARN(ctx context.Context, queueARN, body string) error
}

// Delivery is one event on its way to one target, as EventFaults sees it.
type Delivery struct {
	Rule     string
	TargetID string
	QueueARN string
	EventID  string
	// Body is the message the target queue receives.
	Body string
}

// Fault is what goes wrong with one delivery; the zero value delivers it
// normally.
type Fault struct {
	// Drop loses the delivery.
	Drop bool
	// Duplicates delivers that many extra copies.
	Duplicates int
	// Delay holds the delivery back (in real time); deliveries routed
	// meanwhile overtake it.
	Delay time.Duration
	// Reorder holds the delivery back until the next delivery has been
	// made (or reorderHold passes), so the two arrive swapped.
	Reorder bool
}

// EventFaults decides, for each delivery, what goes wrong with it. It is
// called once per delivery when the event is routed (not again for
// retries), possibly from several goroutines at once.
type EventFaults interface {
	Fault(d Delivery) Fault
}

// Config configures a Service.
type Config struct {
	// Region and AccountID go into ARNs and events; defaults us-east-1 and
	// 000000000000.
	Region    string
	AccountID string
	// Queues delivers to SQS targets. Required.
	Queues QueueSender
	// DataDir, when set, is where rules and targets are saved (as
	// eventbridge.json, replaced atomically shortly after each change) and
	// loaded from by New. Deliveries not yet made are not saved: like
	// AWS's, they are lost if the process dies.
	DataDir string
	// Clock stamps events and measures delivery age; default the wall
	// clock. Retry backoff and fault delays run in real time.
	Clock clock.Clock
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
	// Faults, when set, injects delivery faults.
	Faults EventFaults
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Queues == nil {
		return fmt.Errorf("eventbridge: Queues is required")
	}
	if len(c.AccountID) != 12 || strings.Trim(c.AccountID, "0123456789") != "" {
		return fmt.Errorf("eventbridge: account id %q is not 12 digits", c.AccountID)
	}
	if strings.ContainsAny(c.Region, ": /") {
		return fmt.Errorf("eventbridge: region %q is not a region name", c.Region)
	}
	return nil
}

const saveDelay = 50 * time.Millisecond

// Service is the EventBridge endpoint (an http.Handler) and router. Close
// it to stop delivery and flush its state.
type Service struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger
	d     *deliverer

	mu    sync.RWMutex
	rules map[string]*rule

	saver *statefile.Saver // nil without DataDir
}

// New returns a Service, loading saved rules from cfg.DataDir if any, and
// starts its delivery goroutine.
func New(cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:   cfg,
		clock: cfg.Clock,
		log:   cfg.Logger,
		rules: map[string]*rule{},
	}
	if cfg.DataDir != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
		s.saver = statefile.NewSaver(saveDelay, s.save, s.log.With("data-dir", cfg.DataDir))
	}
	s.d = newDeliverer(cfg.Queues, cfg.Clock, cfg.Logger)
	return s, nil
}

// Close stops delivery (deliveries not yet made are dropped) and saves the
// rules. It is safe to call more than once.
func (s *Service) Close() error {
	s.d.close()
	if s.saver != nil {
		return s.saver.Close()
	}
	return nil
}

// Flush waits until every delivery routed so far has been made, dropped by
// a fault, or given up on after its retries, or until ctx ends. Tests and
// the simulator use it to wait for delivery without sleeping.
func (s *Service) Flush(ctx context.Context) error {
	return s.d.flush(ctx)
}

// Publish routes a complete event (EventBridge's JSON shape, as
// events.EncodeWith writes it) through the rules, as AWS services' own
// events are. It returns once the deliveries are queued; they happen
// asynchronously, at least once. Repeating it publishes the event again.
// It returns an error only for an event that is not a JSON object with
// string "source" and "detail-type" fields.
func (s *Service) Publish(ctx context.Context, event []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ev, err := DecodeEvent(event)
	if err != nil {
		return fmt.Errorf("publishing event: %w", err)
	}
	for _, f := range []string{"source", "detail-type"} {
		if _, ok := ev[f].(string); !ok {
			return fmt.Errorf("publishing event: field %q missing or not a string", f)
		}
	}
	id, _ := ev["id"].(string)
	s.route(id, event, ev)
	return nil
}

// RuleARN returns the ARN of the rule called name on the default bus.
func (s *Service) RuleARN(name string) string {
	return "arn:aws:events:" + s.cfg.Region + ":" + s.cfg.AccountID + ":rule/" + name
}

func (s *Service) busARN() string {
	return "arn:aws:events:" + s.cfg.Region + ":" + s.cfg.AccountID + ":event-bus/default"
}

// checkBus accepts the default bus by name or ARN; the local cloud has no
// other.
func (s *Service) checkBus(name string) error {
	if name == "" || name == "default" || name == s.busARN() {
		return nil
	}
	return errNotFound("Event bus %s does not exist.", name)
}

func (s *Service) markDirtyLocked() {
	if s.saver != nil {
		s.saver.MarkDirty()
	}
}

func (s *Service) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}
