package autoscaling

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
)

// DefaultTick is how often Start runs the group controller.
const DefaultTick = time.Second

// DefaultLaunchBatchDelay is the pause between launch batches. AWS documents
// neither its batch size nor its pacing; two seconds is the local cloud's
// choice: long enough that a consumer sees the batches as separate waves,
// short enough for tests on the wall clock.
const DefaultLaunchBatchDelay = 2 * time.Second

// Config configures the Auto Scaling service.
type Config struct {
	// Region and AccountID appear in ARNs and events.
	Region, AccountID string
	// Instances launches, terminates and describes instances. Required.
	Instances Instances
	// Publisher receives events; nil sends none.
	Publisher Publisher
	// Notifier delivers to hooks' notification targets; nil refuses hooks
	// with a NotificationTargetARN (their test message cannot be sent).
	Notifier Notifier
	// Targets registers instances with target groups; nil means groups
	// must not name any.
	Targets Targets
	// Faults injects API errors; nil injects none.
	Faults FaultInjector
	// DataDir is where the state is kept; "" keeps it in memory only.
	DataDir string
	// Clock is the time source; nil is the wall clock.
	Clock clock.Clock
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
	// Tick is how often Start runs the controller; 0 is DefaultTick.
	Tick time.Duration
	// LaunchRetryDelay is how long a zone whose launch failed is skipped;
	// 0 is 10s.
	LaunchRetryDelay time.Duration
	// LaunchBatchDelay is how long a group that is still short after a
	// full batch of ten launches waits before it starts the next, as AWS
	// paces a large scale-out; 0 is DefaultLaunchBatchDelay. Tests on a
	// fake clock advance past it; tests on the wall clock may set it
	// small.
	LaunchBatchDelay time.Duration
	// HooksOnExitStandby makes instances leaving Standby go through the
	// launch lifecycle hooks. AWS documents that hooks do not run on
	// standby transitions, so it is off by default; turn it on to test a
	// consumer that must cope with either.
	HooksOnExitStandby bool
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.LaunchRetryDelay == 0 {
		c.LaunchRetryDelay = 10 * time.Second
	}
	if c.LaunchBatchDelay == 0 {
		c.LaunchBatchDelay = DefaultLaunchBatchDelay
	}
	return c
}

// Validate reports what is wrong with c, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !events.IsRegion(c.Region) {
		errs = append(errs, fmt.Errorf("region %q is not a region name like us-east-1", c.Region))
	}
	if !isAccountID(c.AccountID) {
		errs = append(errs, fmt.Errorf("account id %q is not 12 digits", c.AccountID))
	}
	if c.Instances == nil {
		errs = append(errs, errors.New("no Instances: the service cannot launch anything"))
	}
	if c.Tick < 0 {
		errs = append(errs, fmt.Errorf("tick %v is negative", c.Tick))
	}
	if c.LaunchRetryDelay < 0 {
		errs = append(errs, fmt.Errorf("launch retry delay %v is negative", c.LaunchRetryDelay))
	}
	if c.LaunchBatchDelay < 0 {
		errs = append(errs, fmt.Errorf("launch batch delay %v is negative", c.LaunchBatchDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("autoscaling config: %w", err)
	}
	return nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
