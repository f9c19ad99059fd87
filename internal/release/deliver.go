package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
)

// RolledBackError says a rollout failed and the channel went back to the
// release it had. Nothing is left on Failed: every instance that switched
// was switched back.
type RolledBackError struct {
	Failed, RolledBackTo string
	Cause                error
	// Err is the rollback's own failure, if it had one.
	Err error
}

func (e *RolledBackError) Error() string {
	msg := fmt.Sprintf("the rollout of %s failed: %v; ", e.Failed, e.Cause)
	if e.Err != nil {
		return msg + fmt.Sprintf("rolling back to %s failed too: %v (run `handover release rollback --to %s` again)", e.RolledBackTo, e.Err, e.RolledBackTo)
	}
	return msg + fmt.Sprintf("rolled back: %s is the latest again, and no instance serves %s", e.RolledBackTo, e.Failed)
}

func (e *RolledBackError) Unwrap() error { return e.Cause }

// Deliver converges the channel to rel, which is its latest; if the
// rollout fails it records previous as the latest again, marks rel Failed
// and converges the channel to previous, so that no instance keeps rel
// (invariant of issue 16). previous "" (a first release) has nothing to go
// back to: the error is the rollout's.
func (r *Rollout) Deliver(ctx context.Context, led Ledger, clk clock.Clock, rel *ledger.Release, previous string) (ConvergeResult, error) {
	conv, err := r.Converge(ctx, rel.Channel, rel)
	if err == nil || previous == "" || errors.Is(err, context.Canceled) {
		return conv, err
	}
	rb := &RolledBackError{Failed: rel.Name, RolledBackTo: previous, Cause: err}
	r.progress("rollback", "rolling channel %s back to %s: %v", rel.Channel, previous, err)
	prev, gerr := led.GetRelease(ctx, ledger.ReleaseID(rel.Channel, previous))
	if gerr != nil {
		rb.Err = fmt.Errorf("reading release %s: %w", previous, gerr)
		return conv, rb
	}
	if _, serr := SetLatest(ctx, led, clk, prev); serr != nil {
		rb.Err = serr
		return conv, rb
	}
	if fresh, gerr := led.GetRelease(ctx, rel.ID); gerr == nil {
		fresh.State, fresh.Error = ledger.ReleaseFailed, "rollout failed and was rolled back: "+err.Error()
		if serr := led.SaveRelease(ctx, fresh); serr == nil {
			*rel = *fresh
		}
	}
	back, berr := r.Converge(ctx, rel.Channel, prev)
	conv.Switched = append(conv.Switched, back.Switched...)
	rb.Err = berr
	return conv, rb
}

// RollbackSpec is `release rollback`.
type RollbackSpec struct {
	Channel, To string
}

// Rollback makes release To the channel's latest again and converges the
// fleet to it, under the channel's lease like a publish.
func (p *Publisher) Rollback(ctx context.Context, spec RollbackSpec) (PublishResult, error) {
	p.defaults()
	start := p.Clock.Now()
	var res PublishResult
	if err := ledger.ValidReleaseName("--channel", spec.Channel); err != nil {
		return res, err
	}
	if err := ledger.ValidReleaseName("--to", spec.To); err != nil {
		return res, err
	}
	ch, err := p.Ledger.GetChannel(ctx, spec.Channel)
	if errors.Is(err, ledger.ErrNotFound) {
		return res, fmt.Errorf("%w: channel %s has no releases: there is nothing to roll back to", ErrUnknownRelease, spec.Channel)
	}
	if err != nil {
		return res, fmt.Errorf("reading channel %s: %w", spec.Channel, err)
	}
	rel, err := p.Ledger.GetRelease(ctx, ledger.ReleaseID(spec.Channel, spec.To))
	if errors.Is(err, ledger.ErrNotFound) {
		rs, _ := p.Ledger.ListReleases(ctx, spec.Channel)
		var names []string
		for _, r := range rs {
			if r.State == ledger.ReleasePublished {
				names = append(names, r.Name)
			}
		}
		return res, fmt.Errorf("%w: channel %s has no release %s; its published releases: %s", ErrUnknownRelease, spec.Channel, spec.To, strings.Join(names, ", "))
	}
	if err != nil {
		return res, fmt.Errorf("reading release %s: %w", spec.To, err)
	}
	switch rel.State {
	case ledger.ReleaseDeleted:
		return res, fmt.Errorf("%w: release %s of channel %s is deleted: retention removed its snapshot %s; publish its tree again under a new name", ErrUnknownRelease, spec.To, spec.Channel, rel.SnapshotID)
	case ledger.ReleasePublished:
	default:
		return res, fmt.Errorf("%w: release %s of channel %s is %s (%s): only a published release can be rolled back to", ErrUnknownRelease, spec.To, spec.Channel, rel.State, rel.Error)
	}
	ctx, done, err := holdLeaseForPublish(ctx, p.Ledger, p.Clock, p.Log, spec.Channel, p.Holder+" (rollback to "+spec.To+")", p.LeaseTTL)
	if err != nil {
		return res, err
	}
	defer done()
	prev, err := SetLatest(ctx, p.Ledger, p.Clock, rel)
	if err != nil {
		return res, err
	}
	if ch.Latest == spec.To {
		prev = ch.Previous
	}
	res.Previous = prev
	p.progress("recorded", "release %s is channel %s's latest again (was %q)", spec.To, spec.Channel, ch.Latest)
	if p.Rollout != nil {
		if p.Rollout.Progress == nil {
			p.Rollout.Progress = p.Progress
		}
		conv, err := p.Rollout.Deliver(ctx, p.Ledger, p.Clock, rel, ch.Latest)
		res.Converge = &conv
		if err != nil {
			return res, err
		}
	}
	res.Release = rel
	res.Took = p.Clock.Now().Sub(start)
	return res, nil
}

// ErrUnknownRelease: a rollback names a release that cannot be rolled back
// to (unknown, deleted, never published). Terminal.
var ErrUnknownRelease = errors.New("no such release")
