package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
	"github.com/handover-dev/handover/internal/ledger/sqlstore"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	// inflight is how many tenants are in the middle of a handover at any
	// time: a fleet-wide update of 100 databases at once, the size of EC2's
	// CreateSnapshot burst. Unfinished migrations are what the controller
	// scans for snapshot, volume and instance events, so this sets the cost
	// of those events.
	inflight = 100
	// workers advance migrations in each controller, as the daemon's
	// default Workers; one intake goroutine per controller hands them work,
	// as the daemon's does.
	workers = 4
	// receiveBatch is the most messages one SQS receive returns, which the
	// daemon's intake handles at once.
	receiveBatch = 10
)

// benchConfig is the production config but for the poll interval. Here a
// tenant's events follow each other within milliseconds; in production they
// are seconds to minutes apart, past the poll interval the previous step
// set. A poll interval of 1 ns keeps every event's Advance from being held
// back by that wait, so every event does its next action, as it would in
// production.
func benchConfig(holder string) handover.Config {
	cfg := handover.DefaultConfig()
	cfg.Holder = holder
	cfg.PollInterval = time.Nanosecond
	return cfg
}

// openLedgers opens one ledger per controller, all on the same store.
type openLedgers func(tb testing.TB, controllers int) []ledger.Ledger

func memoryLedgers(tb testing.TB, n int) []ledger.Ledger {
	l := memory.New()
	out := make([]ledger.Ledger, n)
	for i := range out {
		out[i] = l
	}
	return out
}

func sqliteLedgers(tb testing.TB, n int) []ledger.Ledger {
	return sqliteIn(tb, tb.TempDir(), n)
}

// sqliteTmpfsLedgers keeps the file on tmpfs, where fsync returns at once:
// not durable, so not a configuration to run, but it shows what the
// controller does when the disk is not the limit.
func sqliteTmpfsLedgers(tb testing.TB, n int) []ledger.Ledger {
	dir, err := os.MkdirTemp("/dev/shm", "handover-bench-")
	if err != nil {
		tb.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return sqliteIn(tb, dir, n)
}

func sqliteIn(tb testing.TB, dir string, n int) []ledger.Ledger {
	path := filepath.Join(dir, "ledger.db")
	var out []ledger.Ledger
	for range n {
		l, err := sqlite.Open(tb.Context(), path, nil)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		out = append(out, l)
	}
	return out
}

// postgresLedgers gives each controller its own connection pool, as
// separate controller processes would have.
func postgresLedgers(tb testing.TB, n int) []ledger.Ledger {
	dsn := pgtest.Start(tb)
	var out []ledger.Ledger
	for range n {
		l, err := postgres.Open(tb.Context(), dsn, nil)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		out = append(out, l)
	}
	return out
}

// rig is a fleet and the controllers working on it.
type rig struct {
	fleet *fleet
	ctls  []*handover.Controller
	leds  []*countingLedger
}

func newRig(tb testing.TB, open openLedgers, controllers, tenants int) *rig {
	tb.Helper()
	clk := clock.Real{}
	r := &rig{}
	for i, l := range open(tb, controllers) {
		cl := &countingLedger{Ledger: l}
		r.leds = append(r.leds, cl)
		if i == 0 {
			f, err := newFleet(tb.Context(), tenants, clk, cl)
			if err != nil {
				tb.Fatal(err)
			}
			r.fleet = f
		}
	}
	for i, l := range r.leds {
		ctl, err := handover.New(benchConfig(fmt.Sprintf("controller-%d", i)), handover.Deps{
			Cloud: r.fleet.cloud, Service: r.fleet.svc, Ledger: l, Pacer: handovertest.NewPacer(), Clock: clk,
		})
		if err != nil {
			tb.Fatal(err)
		}
		r.ctls = append(r.ctls, ctl)
	}
	for i, t := range r.fleet.tenants {
		t.ctl = i % controllers
	}
	return r
}

// job is an event taken in, waiting for a worker to advance what it touched.
type job struct {
	t   *tenant
	ids []string
}

// drive runs n events through the controllers and waits until each has
// been taken in and every migration it named advanced. Each controller is
// shaped like the daemon: one intake goroutine calling HandleMessage, and
// workers calling Advance on the ids it returns. A tenant's next event is
// sent only once its previous one is done, as the cloud would only report
// the next step once the controller took it; tenants go to controllers by
// tenant (see README: with one standard queue, an event reaching a
// controller that does not hold the migration's lease leaves the work to
// the holder's advance loop).
func (r *rig) drive(ctx context.Context, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inbox := make([]chan *tenant, len(r.ctls))
	work := make([]chan job, len(r.ctls))
	for i := range r.ctls {
		inbox[i] = make(chan *tenant, len(r.fleet.tenants))
		work[i] = make(chan job, len(r.fleet.tenants))
	}
	var left, done atomic.Int64
	left.Store(int64(n))
	finished := make(chan struct{})
	issue := func(t *tenant) {
		if left.Add(-1) < 0 {
			return
		}
		if err := r.fleet.prepare(t); err != nil {
			cancel(err)
			return
		}
		inbox[t.ctl] <- t
	}

	var wg sync.WaitGroup
	for i, ctl := range r.ctls {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-inbox[i]:
					// What one receive brings (up to 10 messages), handled
					// at once, as the daemon's intake does.
					batch := []*tenant{t}
				more:
					for len(batch) < receiveBatch {
						select {
						case t := <-inbox[i]:
							batch = append(batch, t)
						default:
							break more
						}
					}
					var bw sync.WaitGroup
					for _, t := range batch {
						bw.Go(func() {
							ids, err := ctl.HandleMessage(ctx, t.body)
							if err != nil {
								cancel(fmt.Errorf("tenant %s step %d: handling %s: %w", t.db, t.step, t.body, err))
								return
							}
							work[i] <- job{t, ids}
						})
					}
					bw.Wait()
				}
			}
		})
		for range workers {
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case j := <-work[i]:
						for _, id := range j.ids {
							if err := ctl.Advance(ctx, id); err != nil {
								cancel(fmt.Errorf("tenant %s: advancing %s: %w", j.t.db, id, err))
								return
							}
						}
						if done.Add(1) == int64(n) {
							close(finished)
						}
						issue(j.t)
					}
				}
			})
		}
	}
	for _, t := range r.fleet.tenants {
		issue(t)
	}
	select {
	case <-finished:
	case <-ctx.Done():
	}
	cancel(nil)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// check asserts that the events did what the script says: every handover
// whose launch-successful event was handled is Committed, none rolled
// back, and every tenant's authoritative volume is the one its last
// committed handover created.
func (r *rig) check(tb testing.TB, n int) {
	tb.Helper()
	want := 0
	ms, err := r.leds[0].ListMigrations(context.Background(), ledger.MigrationQuery{})
	if err != nil {
		tb.Fatal(err)
	}
	committed := 0
	for _, m := range ms {
		switch m.State {
		case ledger.Committed:
			committed++
		case ledger.Aborted, ledger.RollingBack:
			tb.Errorf("migration %s of %s is %s: %s", m.ID, m.Database, m.State, m.LastError)
		}
	}
	for _, t := range r.fleet.tenants {
		// t.step is the next step of the script, every earlier one done:
		// past step 7 (launch-successful), the current cycle committed too.
		cycles := t.cycle - 1
		if t.step == 0 || t.step >= 8 {
			cycles++
		}
		want += max(cycles, 0)
		if t.cycle > 0 && (t.step == 0 || t.step >= 8) {
			db, err := r.leds[0].GetDatabase(context.Background(), t.db)
			if err != nil {
				tb.Fatal(err)
			}
			if db.Instance != t.newID || db.Volume != t.newVol || db.Claim != "" {
				tb.Errorf("tenant %s: ledger says instance %s volume %s claim %q; want %s %s and no claim",
					t.db, db.Instance, db.Volume, db.Claim, t.newID, t.newVol)
			}
		}
	}
	if committed != want {
		tb.Errorf("%d migrations committed after %d events; the script committed %d", committed, n, want)
	}
}

// report adds events/s, the ledger work behind each event, this process's
// CPU per event and how busy the machine was.
func (r *rig) report(b *testing.B, cpu cpuMeter) {
	var reads, writes, rows, commits int64
	sql := false
	for _, l := range r.leds {
		reads += l.reads.Load()
		writes += l.writes.Load()
		rows += l.rows.Load()
		if st, ok := sqlStore(l.Ledger); ok {
			sql = true
			commits += st.Stats().Commits - l.commits0
		}
	}
	n := float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(reads)/n, "ledger-reads/event")
	b.ReportMetric(float64(writes)/n, "ledger-writes/event")
	b.ReportMetric(float64(rows)/n, "rows-listed/event")
	if sql {
		// One commit is one fsync (SQLite) or WAL flush (PostgreSQL).
		b.ReportMetric(float64(commits)/n, "commits/event")
	}
	if use, ok := cpu.stop(); ok {
		b.ReportMetric(float64(use.self.Microseconds())/n, "controller-cpu-µs/event")
		b.ReportMetric(float64(use.children.Microseconds())/n, "server-cpu-µs/event")
		b.ReportMetric(100*use.busy, "machine-busy-%")
	}
}

func benchEvents(b *testing.B, open openLedgers, controllers, tenants int) {
	r := newRig(b, open, controllers, tenants)
	for _, l := range r.leds { // count only what the events cost
		l.reads.Store(0)
		l.writes.Store(0)
		l.rows.Store(0)
		if st, ok := sqlStore(l.Ledger); ok {
			l.commits0 = st.Stats().Commits
		}
	}
	b.ResetTimer()
	cpu := startCPU()
	if err := r.drive(b.Context(), b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	r.report(b, cpu)
	r.check(b, b.N)
}

// BenchmarkEvents measures events/s through decode, dedup, the ledger's
// compare-and-set and the next action. One op is one event. The memory
// ledger is the ceiling: the controller's own cost with a free ledger;
// sqlite-tmpfs is SQLite without the cost of fsync; inflight=10 shows how
// the cost of an event grows with the migrations in flight.
func BenchmarkEvents(b *testing.B) {
	for _, c := range []struct {
		ledger      string
		open        openLedgers
		controllers []int
		inflight    []int
	}{
		{"memory", memoryLedgers, []int{1}, []int{inflight, 10}},
		{"sqlite", sqliteLedgers, []int{1}, []int{inflight, 10}},
		{"sqlite-tmpfs", sqliteTmpfsLedgers, []int{1}, []int{inflight, 10}},
		{"postgres", postgresLedgers, []int{1, 2, 4}, []int{inflight}},
	} {
		for _, in := range c.inflight {
			for _, n := range c.controllers {
				name := fmt.Sprintf("inflight=%d/ledger=%s/controllers=%d", in, c.ledger, n)
				b.Run(name, func(b *testing.B) { benchEvents(b, c.open, n, in) })
			}
		}
	}
}

// TestScript checks, fast, that the event script drives every handover to
// Committed through several controllers, so the benchmark measures what it
// claims.
func TestScript(t *testing.T) {
	for _, tenants := range []int{1, 3} {
		t.Run(fmt.Sprintf("tenants=%d", tenants), func(t *testing.T) {
			r := newRig(t, memoryLedgers, 2, tenants)
			n := tenants*scriptLen*2 + 7
			if err := r.drive(t.Context(), n); err != nil {
				t.Fatal(err)
			}
			r.check(t, n)
		})
	}
}

// sqlStore returns the SQL store under l, if it has one.
func sqlStore(l ledger.Ledger) (*sqlstore.Store, bool) {
	rec, ok := l.(*ledger.Records)
	if !ok {
		return nil, false
	}
	st, ok := rec.Store().(*sqlstore.Store)
	return st, ok
}
