package ledgertest

import (
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

func testEvents(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	minute := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

	t.Run("MarkEvent", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		for _, step := range []struct {
			name         string
			id           string
			now, expires time.Time
			want         bool
		}{
			{"first", "e1", minute(0), minute(10), true},
			{"duplicate", "e1", minute(1), minute(20), false},
			{"duplicate does not extend", "e1", minute(10).Add(-time.Microsecond), minute(30), false},
			{"expired at its expiry is fresh", "e1", minute(10), minute(30), true},
			{"fresh record holds", "e1", minute(11), minute(40), false},
			{"other id is independent", "e2", minute(11), minute(12), true},
			{"other id duplicate", "e2", minute(11), minute(12), false},
			{"long after expiry", "e2", minute(500), minute(510), true},
		} {
			got, err := l.MarkEvent(ctx, step.id, step.now, step.expires)
			must(t, step.name, err)
			if got != step.want {
				t.Fatalf("%s: MarkEvent(%s, now=%s) = %v, want %v", step.name, step.id, step.now, got, step.want)
			}
		}
	})

	t.Run("EventSeen", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		seen := func(what, id string, now time.Time, want bool) {
			t.Helper()
			got, err := l.EventSeen(ctx, id, now)
			must(t, what, err)
			if got != want {
				t.Fatalf("%s: EventSeen(%s, now=%s) = %v, want %v", what, id, now, got, want)
			}
		}
		seen("never marked", "e1", minute(0), false)
		seen("looking changes nothing", "e1", minute(0), false)
		fresh, err := l.MarkEvent(ctx, "e1", minute(0), minute(10))
		must(t, "mark", err)
		if !fresh {
			t.Fatal("first mark after EventSeen not fresh")
		}
		seen("marked", "e1", minute(5), true)
		seen("just before expiry", "e1", minute(10).Add(-time.Microsecond), true)
		seen("at expiry", "e1", minute(10), false)
		seen("other id", "e2", minute(5), false)
		fresh, err = l.MarkEvent(ctx, "e1", minute(5), minute(20))
		must(t, "mark again", err)
		if fresh {
			t.Fatal("EventSeen changed the record")
		}
	})

	t.Run("PruneEvents", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		n, err := l.PruneEvents(ctx, minute(0))
		must(t, "prune empty", err)
		if n != 0 {
			t.Fatalf("prune of an empty ledger = %d", n)
		}
		for id, exp := range map[string]int{"e1": 30, "e2": 1, "e3": 5, "e4": 120} {
			fresh, err := l.MarkEvent(ctx, id, minute(0), minute(exp))
			must(t, "mark "+id, err)
			if !fresh {
				t.Fatalf("first mark of %s not fresh", id)
			}
		}
		for _, step := range []struct {
			name string
			now  time.Time
			want int
		}{
			{"none expired", minute(0), 0},
			{"e2 and e3 (at its expiry)", minute(5), 2},
			{"again", minute(5), 0},
		} {
			n, err := l.PruneEvents(ctx, step.now)
			must(t, step.name, err)
			if n != step.want {
				t.Fatalf("%s: PruneEvents(%s) = %d, want %d", step.name, step.now, n, step.want)
			}
		}
		fresh, err := l.MarkEvent(ctx, "e4", minute(5), minute(200))
		must(t, "mark e4", err)
		if fresh {
			t.Errorf("prune removed the unexpired e4")
		}
		fresh, err = l.MarkEvent(ctx, "e2", minute(5), minute(200))
		must(t, "mark e2", err)
		if !fresh {
			t.Errorf("pruned e2 is still a duplicate")
		}
		n, err = l.PruneEvents(ctx, minute(10_000))
		must(t, "prune all", err)
		if n != 3 {
			t.Errorf("final prune = %d, want 3 (e1, e2, e4)", n)
		}
	})
}
