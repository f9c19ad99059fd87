package update

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the runner. Start from DefaultConfig; New calls Validate.
type Config struct {
	// Holder and LeaseTTL: as for migrations, one controller advances an
	// update at a time, under the lease "update/<id>".
	Holder   string
	LeaseTTL time.Duration
	// BatchTimeout fails a rolling batch (or a replace-all cutover) that
	// has not finished in this long.
	BatchTimeout time.Duration
	// MaxAborts fails a batch once this many of its handovers rolled back:
	// the new version is not coming up, and the group would retry forever.
	MaxAborts int
	// Poll is how soon a waiting update looks again.
	Poll time.Duration
}

// DefaultConfig returns the defaults; Holder must still be set.
func DefaultConfig() Config {
	return Config{LeaseTTL: 20 * time.Second, BatchTimeout: 30 * time.Minute, MaxAborts: 2, Poll: 2 * time.Second}
}

// Validate reports every setting that cannot work, each naming the field
// and what it may be (the wording of handover.Config.Validate).
func (c Config) Validate() error {
	var errs []error
	if c.Holder == "" {
		errs = append(errs, errors.New("holder must not be empty: it names this controller in leases, distinct per controller"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"lease TTL", c.LeaseTTL}, {"batch timeout", c.BatchTimeout}, {"poll interval", c.Poll}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	if c.MaxAborts < 1 {
		errs = append(errs, fmt.Errorf("max aborts must be at least 1 (rolled-back handovers of a batch that fail the update), got %d", c.MaxAborts))
	}
	return errors.Join(errs...)
}
