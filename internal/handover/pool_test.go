package handover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// newPoolEnv is newEnv with a launch hook naming a pool (metadata).
func newPoolEnv(t *testing.T, metadata string) *env {
	t.Helper()
	e := newEnv(t)
	e.cloud.AddHook(group, launchHook, handover.Hook{
		HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon, Metadata: metadata,
	})
	return e
}

// hold makes inst (running at ip in zone) the holder of pool database id:
// its volume vol-<id> attached, epoch 1, tweaked by fns. lifecycle is the
// instance's state in the group; "" leaves it out of the group.
func (e *env) hold(id, inst, ip, zone, lifecycle string, fns ...func(*ledger.Database)) {
	e.t.Helper()
	if _, ok := e.cloud.Instance(inst); !ok {
		e.cloud.AddInstance(handover.Instance{ID: inst, Zone: zone, State: handover.InstanceRunning, PrivateIP: ip})
	}
	if lifecycle != "" {
		e.cloud.SetLifecycle(group, inst, lifecycle)
	}
	e.cloud.AddVolume(handover.Volume{
		ID: "vol-" + id, Zone: zone, State: handover.VolumeInUse, AttachedTo: inst, AttachState: "attached", SizeGiB: 10,
		Tags: map[string]string{handover.TagManaged: "true", handover.TagMigration: "tok-0-" + id, handover.TagDatabase: id},
	})
	db := &ledger.Database{ID: id, Volume: "vol-" + id, Zone: zone, Instance: inst, Group: group, Epoch: 1}
	for _, f := range fns {
		f(db)
	}
	e.putDB(db)
}

func marked(update string, gated bool) func(*ledger.Database) {
	return func(db *ledger.Database) { db.ReplaceBy, db.Gated = update, gated }
}

// dbOf reads database id; nil when the ledger has none.
func (e *env) dbOf(id string) *ledger.Database {
	e.t.Helper()
	db, err := e.led.GetDatabase(e.ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("GetDatabase(%s): %v", id, err)
	}
	return db
}

// runInst is run for a migration whose new instance settle does not know:
// it also puts inst InService once its launch got CONTINUE.
func (e *env) runInst(id, inst string, want ledger.State) {
	e.t.Helper()
	for range 100 {
		if m := e.m(id); m.State == want || m.State.Terminal() {
			break
		}
		e.poll(id)
		e.settle()
		if a, ok := e.cloud.Action(inst, launchHook); ok && a.Result == handover.ResultContinue &&
			e.cloud.Lifecycle(group, inst) == handover.LifecyclePendingWait {
			e.cloud.SetLifecycle(group, inst, handover.LifecycleInService)
		}
	}
	e.wantState(id, want)
}

// bootPool first-boots i-p1..i-p3 into the pool t-1..t-3 and returns
// their migration ids.
func bootPool(t *testing.T, e *env) []string {
	t.Helper()
	insts := []string{"i-p1", "i-p2", "i-p3"}
	var ids []string
	for i, inst := range insts {
		zone := []string{zoneA, zoneB}[i%2]
		ids = append(ids, e.launch(inst, fmt.Sprintf("10.0.1.%d", i+1), zone, fmt.Sprintf("tok-p%d", i+1)))
	}
	// Every launch picks before any commits: the claims alone keep them apart.
	for _, id := range ids {
		e.advance(id)
		e.wantState(id, ledger.CreatingVolume)
	}
	for i, id := range ids {
		e.runInst(id, insts[i], ledger.Committed)
	}
	return ids
}

// TestPoolFirstBoot: three instances of a pool of three each get their own
// database, created blank; a fourth finds none that needs an instance,
// waits in Launching saying so, and is abandoned when the step times out.
func TestPoolFirstBoot(t *testing.T) {
	e := newPoolEnv(t, `{"database":"t","count":3}`)
	ids := bootPool(t, e)

	seen := map[string]string{} // database → instance
	for i, id := range ids {
		m := e.m(id)
		inst := fmt.Sprintf("i-p%d", i+1)
		if m.Pool == nil || m.SourceFate != handover.FateNone {
			t.Errorf("migration %s: pool %v fate %q, want a pool migration on first boot", id, m.Pool, m.SourceFate)
		}
		if prev, dup := seen[m.Database]; dup {
			t.Fatalf("database %q given to both %s and %s", m.Database, prev, inst)
		}
		seen[m.Database] = inst
		db := e.dbOf(m.Database)
		if db == nil || db.Instance != inst || db.Volume != m.Volume || db.Epoch != 1 || db.Claim != "" || db.Group != group {
			t.Errorf("database %s = %+v, want volume %s on %s at epoch 1", m.Database, db, m.Volume, inst)
		}
	}
	for _, want := range []string{"t-1", "t-2", "t-3"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("database %s got no instance; assignments %v", want, seen)
		}
	}

	const fourth = "i-p4"
	id4 := e.launch(fourth, "10.0.1.4", zoneB, "tok-p4")
	e.advance(id4)
	e.wantState(id4, ledger.Launching)
	m := e.m(id4)
	if m.Database != "" || !strings.Contains(m.LastError, "pool [t-1 t-2 t-3]") || !strings.Contains(m.LastError, "needs an instance") {
		t.Errorf("fourth instance: database %q last error %q, want none picked and a reason naming the pool", m.Database, m.LastError)
	}
	e.clk.Advance(e.cfg.StepTimeout / 2)
	e.advance(id4)
	e.wantState(id4, ledger.Launching)

	e.clk.Advance(e.cfg.StepTimeout/2 + e.cfg.PollInterval)
	e.advance(id4)
	e.runInst(id4, fourth, ledger.Aborted)
	m = e.m(id4)
	if !strings.Contains(m.LastError, "Launching timed out") {
		t.Errorf("last error %q, want the Launching timeout", m.LastError)
	}
	if a, _ := e.cloud.Action(fourth, launchHook); a.Result != handover.ResultAbandon {
		t.Errorf("fourth launch action result = %q, want ABANDON", a.Result)
	}
	for db, inst := range seen {
		if got := e.dbOf(db); got.Instance != inst || got.Claim != "" || got.Epoch != 1 {
			t.Errorf("database %s = %+v after the fourth launch was abandoned", db, *got)
		}
	}
	if n := len(e.cloud.CallsOf("CreateVolume")); n != 3 {
		t.Errorf("%d volumes created, want 3 (none for the fourth instance)", n)
	}
}

// TestPoolWaitingLaunchTakesDatabaseWhenHolderFails: a launch waiting for a
// database takes the one whose holder turns unhealthy.
func TestPoolWaitingLaunchTakesDatabaseWhenHolderFails(t *testing.T) {
	e := newPoolEnv(t, `{"database":"t","count":3}`)
	ids := bootPool(t, e)
	id4 := e.launch("i-p4", "10.0.1.4", zoneB, "tok-p4")
	e.advance(id4)
	e.wantState(id4, ledger.Launching)

	victim := e.m(ids[1])
	e.cloud.SetHealth(group, victim.Instance, "Unhealthy")
	e.poll(id4)
	m := e.m(id4)
	if m.Database != victim.Database || m.Source != victim.Instance || m.State != ledger.PreCopying {
		t.Fatalf("fourth launch took %q from %q in %s, want %s from %s in PreCopying\n%s",
			m.Database, m.Source, m.State, victim.Database, victim.Instance, describe(m))
	}
	if m.LastError != "" {
		t.Errorf("last error %q kept after the pick", m.LastError)
	}
}

// TestPoolPrefersOrphanedDatabase: a database whose holder is lost is taken
// before one an update marked, and that before one never assigned.
func TestPoolPrefersOrphanedDatabase(t *testing.T) {
	tests := []struct {
		name      string
		lifecycle string // of p-orphan's holder; "" = not in the group
		health    string
		holds     bool   // p-orphan carries a held terminate action
		state     string // p-orphan's holder's EC2 state, when not running
		outOfZone bool   // p-orphan's holder stands in a zone the group left
		want      string
	}{
		{name: "holder left the group and terminated", state: handover.InstanceTerminated, want: "p-orphan"},
		{name: "holder left the group and stopped", state: handover.InstanceStopped, want: "p-orphan"},
		{name: "holder not listed but running: a lagging listing steals nothing", want: "p-marked"},
		{name: "holder unhealthy", lifecycle: handover.LifecycleInService, health: "Unhealthy", want: "p-orphan"},
		{name: "holder terminating", lifecycle: "Terminating:Wait", want: "p-orphan"},
		{name: "holder detaching", lifecycle: "Detaching", want: "p-orphan"},
		{name: "holder's zone taken out of the group", lifecycle: handover.LifecycleInService, health: "Healthy", outOfZone: true, want: "p-orphan"},
		{name: "holder's termination held", lifecycle: handover.LifecycleInService, health: "Healthy", holds: true, want: "p-orphan"},
		{name: "control: holder healthy", lifecycle: handover.LifecycleInService, health: "Healthy", want: "p-marked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Pool order puts the orphan last: the preference, not the order, decides.
			e := newPoolEnv(t, `{"databases":["p-fresh","p-marked","p-orphan"]}`)
			e.hold("p-marked", "i-m", "10.0.2.1", zoneA, handover.LifecycleInService, marked("upd-1", false))
			hold := ledger.HookRef{Group: group, Hook: termHook, Token: "tok-term", Instance: oldID, Timeout: hookTimeout, Since: start, LastBeat: start}
			e.hold("p-orphan", oldID, oldIP, zoneA, tt.lifecycle, func(db *ledger.Database) {
				if tt.holds {
					db.TerminateHolds = []ledger.HookRef{hold}
				}
			})
			if tt.health != "" {
				e.cloud.SetHealth(group, oldID, tt.health)
			}
			if tt.state != "" {
				e.cloud.SetInstanceState(oldID, tt.state)
			}
			if tt.outOfZone {
				e.cloud.SetOutOfZone(group, oldID)
			}
			id := e.launchNew()
			e.advance(id)

			m := e.m(id)
			if m.Database != tt.want {
				t.Fatalf("picked %q, want %q\n%s", m.Database, tt.want, describe(m))
			}
			if db := e.dbOf(tt.want); db.Claim != id {
				t.Errorf("database %s claim = %q, want %q", tt.want, db.Claim, id)
			}
			for _, other := range []string{"p-marked", "p-orphan"} {
				if db := e.dbOf(other); other != tt.want && db.Claim != "" {
					t.Errorf("database %s claimed by %q too", other, db.Claim)
				}
			}
			if db := e.dbOf("p-fresh"); db != nil {
				t.Errorf("fresh database recorded: %+v", *db)
			}
			wantUpdate := ""
			if tt.want == "p-marked" {
				wantUpdate = "upd-1"
			}
			if m.Update != wantUpdate {
				t.Errorf("migration update = %q, want %q", m.Update, wantUpdate)
			}
			if tt.holds {
				if len(m.TerminateHolds) != 1 || m.TerminateHolds[0].Token != hold.Token {
					t.Errorf("migration holds %+v, want the database's held termination", m.TerminateHolds)
				}
				if db := e.dbOf("p-orphan"); len(db.TerminateHolds) != 0 {
					t.Errorf("database keeps holds %+v after the migration took them over", db.TerminateHolds)
				}
			}
		})
	}
}

// TestPoolTakesMarkedDatabase: a database an update marked is moved off its
// healthy holder; the migration carries the update's mark until commit,
// which clears it on the database.
func TestPoolTakesMarkedDatabase(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-2","p-1"]}`)
	e.hold("p-2", "i-h2", "10.0.2.2", zoneA, handover.LifecycleInService)
	e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService, marked("upd-1", true))
	id := e.launchNew()
	e.advance(id)

	m := e.m(id)
	if m.Database != "p-1" || m.Update != "upd-1" || !m.Gated {
		t.Fatalf("migration database %q update %q gated %v, want p-1 with upd-1's gated mark", m.Database, m.Update, m.Gated)
	}
	if m.Source != oldID || m.SourceFate != handover.FateRunning || m.FromEpoch != 1 {
		t.Errorf("source %s fate %q epoch %d, want running %s at 1", m.Source, m.SourceFate, m.FromEpoch, oldID)
	}
	if db := e.dbOf("p-1"); db.ReplaceBy != "upd-1" || !db.Gated {
		t.Errorf("mark cleared before commit: %+v", *db)
	}
	// upd-1 is not in the ledger, so its gate holds nothing.
	e.run(id, ledger.Committed)

	db := e.dbOf("p-1")
	if db.Instance != newID || db.Epoch != 2 || db.Claim != "" || db.ReplaceBy != "" || db.Gated {
		t.Errorf("database after commit = %+v, want on %s at epoch 2 with its mark cleared", *db, newID)
	}
	if db := e.dbOf("p-2"); db.Instance != "i-h2" || db.Epoch != 1 || db.Claim != "" {
		t.Errorf("unmarked database moved: %+v", *db)
	}
	if f, ep := fenced(e.svc, oldIP); !f || ep != 2 {
		t.Errorf("old holder fenced=%v epoch=%d, want fenced under 2", f, ep)
	}
}

// raceLedger lets a test run something just before one SaveDatabase, so
// another migration changes the record between a read and its write.
type raceLedger struct {
	*ledger.Records
	mu     sync.Mutex
	before func(*ledger.Database) bool // true: fired, drop it
}

func (l *raceLedger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	l.mu.Lock()
	f := l.before
	l.mu.Unlock()
	if f != nil && f(d) {
		l.mu.Lock()
		l.before = nil
		l.mu.Unlock()
	}
	return l.Records.SaveDatabase(ctx, d)
}

// raceEnv rewires e's controller onto a raceLedger over e's ledger.
func raceEnv(t *testing.T, e *env) *raceLedger {
	t.Helper()
	rl := &raceLedger{Records: e.led}
	ctl, err := handover.New(e.cfg, handover.Deps{Cloud: e.cloud, Service: e.svc, Ledger: rl, Pacer: e.pacer, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	e.ctl = ctl
	return rl
}

const new2, new2IP = "i-new2", "10.0.0.3"

// TestPoolRaceForMarkedDatabase: two new instances pick the same marked
// database; the one whose claim loses the compare-and-set picks again and
// takes the other marked database.
func TestPoolRaceForMarkedDatabase(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-1","p-2"]}`)
	e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService, marked("upd-1", false))
	e.hold("p-2", "i-h2", "10.0.2.2", zoneA, handover.LifecycleInService, marked("upd-1", false))
	rl := raceEnv(t, e)
	loser := e.launchNew()
	winner := e.launch(new2, new2IP, zoneB, "tok-2")

	// The loser read p-1 unclaimed; before its claim is written the
	// winner picks and claims p-1.
	rl.before = func(d *ledger.Database) bool {
		if d.ID != "p-1" || d.Claim != loser {
			return false
		}
		if err := e.ctl.Advance(e.ctx, winner); err != nil {
			t.Errorf("Advance(%s) inside the race: %v", winner, err)
		}
		return true
	}
	e.advance(loser)
	if rl.before != nil {
		t.Fatal("the race never happened: the loser did not try to claim p-1")
	}
	mw, ml := e.m(winner), e.m(loser)
	if mw.Database != "p-1" || ml.Database != "p-2" {
		t.Fatalf("winner has %q, loser %q; want p-1 and p-2", mw.Database, ml.Database)
	}
	if got := e.dbOf("p-1").Claim; got != winner {
		t.Errorf("p-1 claim = %q, want the winner %q", got, winner)
	}
	if got := e.dbOf("p-2").Claim; got != loser {
		t.Errorf("p-2 claim = %q, want the loser %q", got, loser)
	}
	if ml.Source != "i-h2" || ml.Update != "upd-1" {
		t.Errorf("loser source %q update %q, want i-h2 under upd-1", ml.Source, ml.Update)
	}

	e.run(winner, ledger.Committed)
	e.run(loser, ledger.Committed)
	if db := e.dbOf("p-1"); db.Instance != new2 || db.Epoch != 2 {
		t.Errorf("p-1 = %+v, want on %s at epoch 2", *db, new2)
	}
	if db := e.dbOf("p-2"); db.Instance != newID || db.Epoch != 2 {
		t.Errorf("p-2 = %+v, want on %s at epoch 2", *db, newID)
	}
}

// TestPoolConcurrentPicksNeverShare: two launches advanced at once, many
// times over, never end up with the same database.
func TestPoolConcurrentPicksNeverShare(t *testing.T) {
	for round := range 20 {
		e := newPoolEnv(t, `{"databases":["p-1","p-2","p-3"]}`)
		e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService, marked("upd-1", false))
		e.hold("p-2", "i-h2", "10.0.2.2", zoneA, handover.LifecycleInService, marked("upd-1", false))
		a := e.launchNew()
		b := e.launch(new2, new2IP, zoneB, "tok-2")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, id := range []string{a, b} {
			wg.Go(func() { errs[i] = e.ctl.Advance(e.ctx, id) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ma, mb := e.m(a), e.m(b)
		if ma.Database == "" || mb.Database == "" || ma.Database == mb.Database {
			t.Fatalf("round %d: databases %q and %q, want two different ones", round, ma.Database, mb.Database)
		}
		for _, m := range []*ledger.Migration{ma, mb} {
			if db := e.dbOf(m.Database); db.Claim != m.ID {
				t.Fatalf("round %d: %s claimed by %q, not by %s which picked it", round, m.Database, db.Claim, m.ID)
			}
			if m.Database == "p-3" {
				t.Errorf("round %d: fresh p-3 picked while marked p-1 or p-2 was free", round)
			}
		}
	}
}

// TestPoolRaceLoserDropsUpdateMark: a launch that loses the race for a
// marked database and takes an unmarked one instead must not keep the
// first one's update mark (it would wait at that update's gate and roll
// back with it, though the update never asked for its database).
func TestPoolRaceLoserDropsUpdateMark(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-1","p-2"]}`)
	e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService, marked("upd-1", true))
	rl := raceEnv(t, e)
	loser := e.launchNew()
	winner := e.launch(new2, new2IP, zoneB, "tok-2")
	rl.before = func(d *ledger.Database) bool {
		if d.ID != "p-1" || d.Claim != loser {
			return false
		}
		if err := e.ctl.Advance(e.ctx, winner); err != nil {
			t.Errorf("Advance(%s) inside the race: %v", winner, err)
		}
		return true
	}
	e.advance(loser)
	ml := e.m(loser)
	if ml.Database != "p-2" || ml.SourceFate != handover.FateNone {
		t.Fatalf("loser has %q (fate %q), want first boot of p-2", ml.Database, ml.SourceFate)
	}
	if ml.Update != "" || ml.Gated {
		t.Errorf("loser keeps update %q gated %v from p-1, which it did not take; p-2 is unmarked", ml.Update, ml.Gated)
	}
}

// TestPoolLeavingStandby: an instance that already holds a pool database
// gets that one back, before an orphaned one, without a copy; the update
// mark stays on the database, since the instance did not move off it.
func TestPoolLeavingStandby(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-1","p-2","p-3"]}`)
	e.hold("p-1", oldID, oldIP, zoneA, "") // orphaned: its holder left the group
	e.hold("p-2", newID, newIP, zoneB, handover.LifecycleInService, marked("upd-1", true))
	id := e.launchNew()
	e.run(id, ledger.Committed)

	m := e.m(id)
	if m.Database != "p-2" || m.SourceFate != handover.FateSelf || m.Volume != "vol-p-2" {
		t.Fatalf("migration took %q (fate %q, volume %q), want p-2 held already\n%s", m.Database, m.SourceFate, m.Volume, describe(m))
	}
	if m.Update != "" || m.Gated {
		t.Errorf("migration took update %q gated %v though it moves nothing", m.Update, m.Gated)
	}
	db := e.dbOf("p-2")
	if db.Instance != newID || db.Volume != "vol-p-2" || db.Epoch != 1 || db.Claim != "" || db.ReplaceBy != "upd-1" || !db.Gated {
		t.Errorf("p-2 = %+v, want unchanged on %s at epoch 1, still marked", *db, newID)
	}
	if db := e.dbOf("p-1"); db.Claim != "" || db.Instance != oldID {
		t.Errorf("p-1 touched: %+v", *db)
	}
	if db := e.dbOf("p-3"); db != nil {
		t.Errorf("p-3 recorded: %+v", *db)
	}
	for _, call := range []string{"CreateSnapshot", "CreateVolume", "AttachVolume"} {
		if c := e.cloud.CallsOf(call); len(c) != 0 {
			t.Errorf("%s calls %q; the instance holds its volume already", call, c)
		}
	}
	if c := e.svc.CallsOf("Fence"); len(c) != 0 {
		t.Errorf("fence calls %q", c)
	}
}

// TestPoolLeavingStandbyWhileDatabaseMoves: the instance's database is
// being moved to a replacement (an update marked it while the instance
// was in Standby). The instance must not take it back, and must not fail
// on the other migration's claim either.
func TestPoolLeavingStandbyWhileDatabaseMoves(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-1","p-2"]}`)
	e.hold("p-1", newID, newIP, zoneB, handover.LifecycleInService, func(db *ledger.Database) { db.Claim = "tok-y" })
	now := e.clk.Now()
	if err := e.led.CreateMigration(e.ctx, &ledger.Migration{
		ID: "tok-y", Group: group, Hook: launchHook, Instance: "i-y", Database: "p-1", Source: newID,
		State: ledger.PreCopying, CreatedAt: now, UpdatedAt: now, StepStartedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	id := e.launchNew()
	e.advance(id)
	e.poll(id)
	m := e.m(id)
	if m.Attempts != 0 || strings.Contains(m.LastError, "conflict") {
		t.Errorf("migration failing on the other claim: attempts %d, last error %q", m.Attempts, m.LastError)
	}
	if m.Database == "p-1" || m.State == ledger.RollingBack || m.State == ledger.Aborted {
		t.Errorf("migration has %q in %s, want it to leave p-1 to tok-y (wait, or take p-2)\n%s", m.Database, m.State, describe(m))
	}
	if db := e.dbOf("p-1"); db.Claim != "tok-y" {
		t.Errorf("p-1 claim = %q, want tok-y's", db.Claim)
	}
}

// TestSingleDatabaseMetadataUnchanged: metadata naming one database makes
// no pool: the migration names its database from the start, never looks at
// the group, and hands over as before.
func TestSingleDatabaseMetadataUnchanged(t *testing.T) {
	for _, md := range []string{
		database,
		`{"database":"` + database + `"}`,
		` {"database":"` + database + `","size_gib":20} `,
		`{"database":"` + database + `","count":0}`,
	} {
		t.Run(md, func(t *testing.T) {
			e := newPoolEnv(t, md)
			e.addSource()
			id := e.launchNew()
			if m := e.m(id); m.Pool != nil || m.Database != database {
				t.Fatalf("migration pool %v database %q, want no pool and %s", m.Pool, m.Database, database)
			}
			e.run(id, ledger.Committed)
			m := e.m(id)
			if m.Pool != nil || m.Update != "" || m.Gated || m.SourceFate != handover.FateRunning {
				t.Errorf("migration pool %v update %q gated %v fate %q", m.Pool, m.Update, m.Gated, m.SourceFate)
			}
			if db := e.db(); db.Instance != newID || db.Epoch != epoch+1 || db.Claim != "" {
				t.Errorf("database = %+v, want on %s at epoch %d", *db, newID, epoch+1)
			}
			if c := e.cloud.CallsOf("GroupMembers"); len(c) != 0 {
				t.Errorf("group listed for a single database: %q", c)
			}
		})
	}
}

// A pool migration whose earlier pick was recorded but not claimed (a
// failed attempt, a restart) must not claim that database once another
// instance took it and committed: it picks again.
func TestPoolClaimRechecksAnEarlierPick(t *testing.T) {
	e := newPoolEnv(t, `{"databases":["p-1","p-2"]}`)
	e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService)
	id := e.launchNew()
	m := e.m(id)
	m.Database = "p-1" // picked while p-1 was fresh, before its first boot committed
	if err := e.led.SaveMigration(e.ctx, m); err != nil {
		t.Fatal(err)
	}
	e.advance(id)
	if got := e.m(id).Database; got != "p-2" {
		t.Fatalf("migration holds %q, want p-2 (p-1 is held by healthy %s)\n%s", got, oldID, describe(e.m(id)))
	}
	if db := e.dbOf("p-1"); db.Claim != "" || db.Instance != oldID {
		t.Errorf("p-1 was disturbed: claim %q instance %q", db.Claim, db.Instance)
	}
}
