package ledgertest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

const (
	workers    = 8
	increments = 25
)

// RunShared runs the concurrency tests against one store. Worker i uses
// handles[i%len(handles)], so a backend shared by several processes passes
// several handles (separate pools or files opened twice) onto the same store
// to show that no update is lost between them. Run calls it with one handle.
func RunShared(t *testing.T, handles ...ledger.Ledger) {
	if len(handles) == 0 {
		t.Fatal("RunShared needs at least one ledger")
	}
	pick := func(i int) ledger.Ledger { return handles[i%len(handles)] }
	// Several handles may share a store across RunShared calls; a per-call
	// prefix keeps their records apart.
	prefix := fmt.Sprintf("%s/", t.Name())

	t.Run("MigrationCASIncrements", func(t *testing.T) {
		t.Parallel()
		ctx, id := t.Context(), prefix+"cas"
		m := fullMigration(id)
		m.Attempts = 0
		must(t, "create", pick(0).CreateMigration(ctx, m))
		conflicts := race(t, func(i int) error {
			l := pick(i)
			m, err := l.GetMigration(ctx, id)
			if err != nil {
				return err
			}
			m.Attempts++
			return l.SaveMigration(ctx, m)
		})
		got, err := pick(0).GetMigration(ctx, id)
		must(t, "get", err)
		if got.Attempts != workers*increments || got.Version != 1+workers*increments {
			t.Errorf("after %d increments: attempts %d, version %d (lost updates)", workers*increments, got.Attempts, got.Version)
		}
		t.Logf("%d conflicts retried", conflicts)
	})

	t.Run("DatabaseCASIncrements", func(t *testing.T) {
		t.Parallel()
		ctx, id := t.Context(), prefix+"db"
		must(t, "create", pick(0).SaveDatabase(ctx, &ledger.Database{ID: id}))
		race(t, func(i int) error {
			l := pick(i)
			d, err := l.GetDatabase(ctx, id)
			if err != nil {
				return err
			}
			d.Epoch++
			return l.SaveDatabase(ctx, d)
		})
		got, err := pick(0).GetDatabase(ctx, id)
		must(t, "get", err)
		if got.Epoch != workers*increments || got.Version != 1+workers*increments {
			t.Errorf("after %d increments: epoch %d, version %d (lost updates)", workers*increments, got.Epoch, got.Version)
		}
	})

	// One winner per round among workers doing the same create, mark or
	// acquire at once.
	once := func(t *testing.T, loser error, do func(l ledger.Ledger, round, worker int) error) {
		t.Helper()
		for round := range 5 {
			var wg sync.WaitGroup
			errs := make([]error, workers)
			for w := range workers {
				wg.Go(func() { errs[w] = do(pick(w), round, w) })
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, loser):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d workers won, want exactly 1", round, wins)
			}
		}
	}
	errDuplicate := errors.New("duplicate")

	t.Run("CreateMigrationRace", func(t *testing.T) {
		t.Parallel()
		once(t, ledger.ErrExists, func(l ledger.Ledger, round, _ int) error {
			return l.CreateMigration(t.Context(), fullMigration(fmt.Sprintf("%screate-%d", prefix, round)))
		})
	})
	t.Run("CreateDatabaseRace", func(t *testing.T) {
		t.Parallel()
		once(t, ledger.ErrConflict, func(l ledger.Ledger, round, _ int) error {
			return l.SaveDatabase(t.Context(), fullDatabase(fmt.Sprintf("%screate-%d", prefix, round)))
		})
	})
	t.Run("CreateUpdateRace", func(t *testing.T) {
		t.Parallel()
		once(t, ledger.ErrExists, func(l ledger.Ledger, round, _ int) error {
			return l.CreateUpdate(t.Context(), fullUpdate(fmt.Sprintf("%screate-update-%d", prefix, round)))
		})
	})
	t.Run("SaveUpdateRace", func(t *testing.T) {
		t.Parallel()
		ctx, id := t.Context(), prefix+"update"
		must(t, "create", pick(0).CreateUpdate(ctx, fullUpdate(id)))
		var mu sync.Mutex
		winner := -1
		// Every worker saves at the version the previous round's single
		// winner left (once fails the test if there was not exactly one).
		once(t, ledger.ErrConflict, func(l ledger.Ledger, round, w int) error {
			at := int64(1 + round)
			u := fullUpdate(id)
			u.Version, u.Attempts = at, w
			err := l.SaveUpdate(ctx, u)
			switch {
			case err == nil && u.Version != at+1:
				return fmt.Errorf("round %d: worker %d won but Version is %d, want %d", round, w, u.Version, at+1)
			case err != nil && u.Version != at:
				// Not wrapped: once must not count this as a plain loss.
				return fmt.Errorf("round %d: worker %d lost (%v) but Version changed to %d", round, w, err, u.Version)
			case err == nil:
				mu.Lock()
				winner = w
				mu.Unlock()
			}
			return err
		})
		got, err := pick(0).GetUpdate(ctx, id)
		must(t, "get", err)
		if got.Version != 6 || got.Attempts != winner {
			t.Errorf("after 5 rounds: version %d, attempts %d; want 6 and the last winner, %d", got.Version, got.Attempts, winner)
		}
	})
	t.Run("MarkEventRace", func(t *testing.T) {
		t.Parallel()
		once(t, errDuplicate, func(l ledger.Ledger, round, _ int) error {
			fresh, err := l.MarkEvent(t.Context(), prefix+"event", base.Add(time.Duration(round)*time.Hour), base.Add(time.Duration(round)*time.Hour+time.Minute))
			if err == nil && !fresh {
				err = errDuplicate
			}
			return err
		})
	})
	t.Run("AcquireLeaseRace", func(t *testing.T) {
		t.Parallel()
		once(t, ledger.ErrLeaseHeld, func(l ledger.Ledger, round, w int) error {
			now := base.Add(time.Duration(round) * time.Hour)
			_, err := l.AcquireLease(t.Context(), prefix+"lease", fmt.Sprintf("holder-%d", w), now, time.Minute)
			return err
		})
		got, err := pick(0).AcquireLease(t.Context(), prefix+"lease", "late", base.Add(99*time.Hour), time.Minute)
		must(t, "acquire after the races", err)
		// Every round starts after the last lease expired; the token grows
		// by one whenever the holder changes, so after five rounds and a
		// new holder it is between 2 and 6.
		if got.Token < 2 || got.Token > 6 {
			t.Errorf("token after 5 rounds and a new holder = %d, want 2..6", got.Token)
		}
	})
}

// race runs workers goroutines that each apply op increments times,
// retrying on ErrConflict, and returns how many conflicts were retried.
func race(t *testing.T, op func(worker int) error) int {
	t.Helper()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		failure   error
	)
	for w := range workers {
		wg.Go(func() {
			for range increments {
				for {
					err := op(w)
					if err == nil {
						break
					}
					if !errors.Is(err, ledger.ErrConflict) {
						mu.Lock()
						failure = err
						mu.Unlock()
						return
					}
					mu.Lock()
					conflicts++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failure != nil {
		t.Fatalf("worker failed: %v", failure)
	}
	return conflicts
}
