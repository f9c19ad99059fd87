package handover_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// fencedAtSnapshotting returns a migration that fenced its source and
// whose first try at the final snapshot failed with fail.
func fencedAtSnapshotting(t *testing.T, fail error) (*env, string) {
	e := newEnv(t, func(c *handover.Config) { c.PreCopy = false })
	e.addSource()
	id := e.launchNew()
	e.cloud.NextErr["CreateSnapshot"] = fail
	e.advance(id)
	return e, id
}

// TestThrottlingIsNotAnAttempt: a throttled call backs the family off but
// does not bring the migration closer to a rollback, however often.
func TestThrottlingIsNotAnAttempt(t *testing.T) {
	throttled := fmt.Errorf("RequestLimitExceeded: %w", handover.ErrThrottled)
	e, id := fencedAtSnapshotting(t, throttled)
	for i := range 2 * e.cfg.MaxAttempts {
		m := e.m(id)
		if m.State != ledger.Snapshotting || m.Attempts != 0 {
			t.Fatalf("after %d throttles: state %s attempts %d", i+1, m.State, m.Attempts)
		}
		if want := e.clk.Now().Add(e.cfg.RetryBase); !m.NextAttemptAt.Equal(want) {
			t.Fatalf("next attempt at %s, want %s (retry base)", m.NextAttemptAt, want)
		}
		e.cloud.NextErr["CreateSnapshot"] = throttled
		e.poll(id)
	}
	if got, want := e.pacer.ThrottleCount(pacing.FamilySnapshot), 2*e.cfg.MaxAttempts+1; got != want {
		t.Errorf("pacer told of %d throttles, want %d", got, want)
	}
	e.run(id, ledger.Committed)
}

// TestRepeatedFailuresRollBack: transient errors are retried with growing
// back-off up to MaxAttempts, then the migration rolls back; an error that
// retrying cannot fix rolls back at once.
func TestRepeatedFailuresRollBack(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCalls int
		wantError string
	}{
		{"transient", handover.ErrUnavailable, 3, "Snapshotting failed 3 times"},
		{"invalid request", handover.ErrInvalid, 1, "invalid request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, id := fencedAtSnapshotting(t, tt.err)
			for attempt := 1; attempt < tt.wantCalls; attempt++ {
				m := e.m(id)
				if m.State != ledger.Snapshotting || m.Attempts != attempt {
					t.Fatalf("after failure %d: state %s attempts %d\n%s", attempt, m.State, m.Attempts, describe(m))
				}
				backoff := e.cfg.RetryBase << (attempt - 1)
				if want := e.clk.Now().Add(backoff); !m.NextAttemptAt.Equal(want) {
					t.Errorf("after failure %d next attempt at %s, want +%s", attempt, m.NextAttemptAt, backoff)
				}
				e.advance(id) // too early: nothing happens
				e.clk.Advance(backoff)
				e.cloud.NextErr["CreateSnapshot"] = tt.err
				e.advance(id)
			}
			if n := len(e.cloud.CallsOf("CreateSnapshot")); n != tt.wantCalls {
				t.Errorf("CreateSnapshot called %d times, want %d", n, tt.wantCalls)
			}
			e.run(id, ledger.Aborted)
			m := e.m(id)
			if !strings.Contains(m.LastError, tt.wantError) {
				t.Errorf("last error %q does not say %q", m.LastError, tt.wantError)
			}
			if f, _ := fenced(e.svc, oldIP); f {
				t.Errorf("source left fenced after the rollback")
			}
			if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultAbandon {
				t.Errorf("launch action result %q, want ABANDON", a.Result)
			}
		})
	}
}

// TestPacingWaitIsNotAStepTimeout: a step held back by the controller's own
// pacing for longer than the step timeout does not roll back (with a fleet
// of handovers, token waits can be long); once tokens come, it commits.
func TestPacingWaitIsNotAStepTimeout(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.pacer.Hold(pacing.FamilyDescribe, time.Minute)
	for range 2 * int(e.cfg.StepTimeout/time.Minute) {
		e.clk.Advance(time.Minute)
		e.advance(id)
		if m := e.m(id); m.State != ledger.Launching {
			t.Fatalf("after %s of pacing waits: %s (%s)", e.clk.Now().Sub(start), m.State, m.LastError)
		}
	}
	e.pacer.Hold(pacing.FamilyDescribe, 0)
	e.run(id, ledger.Committed)
}
