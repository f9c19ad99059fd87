package handover_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
)

func withoutResource(m *ledger.Migration, id string) {
	m.Resources = slices.DeleteFunc(m.Resources, func(r ledger.Resource) bool { return r.ID == id })
}

// TestSnapshotCreatedButNotRecorded: the controller crashed after
// CreateSnapshot took effect but before the ledger recorded its id; the
// ledger still says what it was about to do. The next pass finds the
// snapshot by its tags instead of taking another.
func TestSnapshotCreatedButNotRecorded(t *testing.T) {
	tests := []struct {
		purpose string
		reach   func(e *env, id string)
		field   func(m *ledger.Migration) *string
		next    ledger.State
	}{
		{
			purpose: ledger.PurposePreCopy,
			reach:   func(e *env, id string) { e.advance(id); e.settle() },
			field:   func(m *ledger.Migration) *string { return &m.PreCopySnapshot },
			next:    ledger.Snapshotting,
		},
		{
			purpose: ledger.PurposeFinal,
			reach:   func(e *env, id string) { e.run(id, ledger.Snapshotting) },
			field:   func(m *ledger.Migration) *string { return &m.FinalSnapshot },
			next:    ledger.CreatingVolume,
		},
	}
	for _, tt := range tests {
		t.Run(tt.purpose, func(t *testing.T) {
			e := newEnv(t)
			e.addSource()
			id := e.launchNew()
			tt.reach(e, id)
			created := *tt.field(e.m(id))
			if s, ok := e.cloud.Snapshot(created); !ok || s.Tags[handover.TagMigration] != id || s.Tags[handover.TagPurpose] != tt.purpose {
				t.Fatalf("snapshot %q not tagged with the migration and purpose: %+v", created, s.Tags)
			}
			e.edit(id, func(m *ledger.Migration) {
				*tt.field(m) = ""
				m.Intent = "create-snapshot:" + tt.purpose
				withoutResource(m, created)
			})

			e.poll(id)

			m := e.m(id)
			if got := *tt.field(m); got != created {
				t.Errorf("%s snapshot = %q, want the one already created, %q", tt.purpose, got, created)
			}
			var same []string
			for _, s := range e.cloud.Snapshots() {
				if s.Tags[handover.TagPurpose] == tt.purpose && s.Tags[handover.TagMigration] == id {
					same = append(same, s.ID)
				}
			}
			if !slices.Equal(same, []string{created}) {
				t.Errorf("%s snapshots of the migration = %v, want only %s", tt.purpose, same, created)
			}
			if m.Intent != "" || !slices.Contains(resourceIDs(m, tt.purpose), created) {
				t.Errorf("intent %q resources %+v: the found snapshot is not recorded", m.Intent, m.Resources)
			}
			if m.State != tt.next {
				t.Errorf("state = %s, want %s\n%s", m.State, tt.next, describe(m))
			}
		})
	}
}

// TestIntentRecordedBeforeCreate: a create that fails leaves its intent in
// the ledger, so a crash at that point leaves a trail to look up by tag.
func TestIntentRecordedBeforeCreate(t *testing.T) {
	e := newEnv(t, func(c *handover.Config) { c.PreCopy = false })
	e.addSource()
	id := e.launchNew()
	e.cloud.NextErr["CreateSnapshot"] = handover.ErrUnavailable
	e.advance(id)
	e.wantState(id, ledger.Snapshotting)
	if m := e.m(id); m.Intent != "create-snapshot:final" || m.FinalSnapshot != "" || m.Attempts != 1 {
		t.Fatalf("after a failed CreateSnapshot: intent %q final %q attempts %d", m.Intent, m.FinalSnapshot, m.Attempts)
	}
	e.poll(id)
	if m := e.m(id); m.Intent != "" || m.FinalSnapshot == "" {
		t.Fatalf("after the retry: intent %q final %q", m.Intent, m.FinalSnapshot)
	}
}

// TestCreateVolumeRepeatedReturnsSameVolume: a crash after CreateVolume
// took effect leaves the ledger without the volume id; the repeat carries
// the same client token and gets the same volume back.
func TestCreateVolumeRepeatedReturnsSameVolume(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.CreatingVolume)
	created := e.m(id).Volume
	// (The intent it had recorded is only a trail; the client token is
	// what makes the repeat safe.)
	e.edit(id, func(m *ledger.Migration) {
		m.Volume = ""
		withoutResource(m, created)
	})

	e.poll(id)

	m := e.m(id)
	if m.Volume != created {
		t.Errorf("volume = %q, want the one already created, %q", m.Volume, created)
	}
	if n := len(e.cloud.CallsOf("CreateVolume")); n != 2 {
		t.Errorf("CreateVolume called %d times, want 2 (the lost one and its repeat)", n)
	}
	var vols []string
	for _, v := range e.cloud.Volumes() {
		if v.ID != oldVol {
			vols = append(vols, v.ID)
		}
	}
	if !slices.Equal(vols, []string{created}) {
		t.Errorf("volumes in the cloud = %v, want only %s", vols, created)
	}
	e.run(id, ledger.Committed)
}

// TestFailedVolumeGetsNewToken: a volume that failed to create is kept for
// cleanup and another one is created under a new client token.
func TestFailedVolumeGetsNewToken(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	for e.m(id).Volume == "" {
		e.poll(id)
		for _, s := range e.cloud.Snapshots() {
			if s.State == handover.SnapshotPending {
				e.cloud.CompleteSnapshot(s.ID)
			}
		}
	}
	first := e.m(id).Volume
	e.cloud.FailVolume(first)
	e.poll(id) // sees the failure
	e.poll(id) // creates another
	m := e.m(id)
	if m.Volume == "" || m.Volume == first {
		t.Fatalf("volume after a failed create = %q (first %q)", m.Volume, first)
	}
	if got := resourceIDs(m, ledger.PurposeTarget); !slices.Equal(got, []string{first, m.Volume}) {
		t.Errorf("target resources = %v, want both for cleanup", got)
	}
}

// TestCrashAfterCommitBeforeSave: the database record was committed but
// the migration not yet marked Committed. The next pass finishes the
// bookkeeping without bumping the epoch again.
func TestCrashAfterCommitBeforeSave(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.Committed)
	e.edit(id, func(m *ledger.Migration) {
		m.State = ledger.Completing
		m.Timeline = m.Timeline[:len(m.Timeline)-1]
		m.Timeline[len(m.Timeline)-1].End = time.Time{}
	})
	e.poll(id)
	e.wantState(id, ledger.Committed)
	if db := e.db(); db.Epoch != epoch+1 {
		t.Errorf("epoch = %d after a repeated commit, want %d", db.Epoch, epoch+1)
	}
	if n := len(e.cloud.CallsOf("CompleteLifecycleAction")); n != 1 {
		t.Errorf("CompleteLifecycleAction called %d times, want 1", n)
	}
}

// blockingService holds the first Fence call until released; later ones
// only say they came.
type blockingService struct {
	*handovertest.Service
	entered, release chan struct{}
	calls            atomic.Int32
}

func (b *blockingService) Fence(ctx context.Context, t handover.Target, epoch int64) error {
	b.entered <- struct{}{}
	if b.calls.Add(1) == 1 {
		<-b.release
	}
	return b.Service.Fence(ctx, t, epoch)
}

// TestAdvanceOneGoroutinePerMigration: a second Advance of a migration that
// one goroutine of the same controller is advancing returns at once instead
// of repeating its side effects (both hold the same lease).
func TestAdvanceOneGoroutinePerMigration(t *testing.T) {
	e := newEnv(t, func(c *handover.Config) { c.PreCopy = false })
	e.addSource()
	tok := e.launchNew()
	bs := &blockingService{Service: e.svc, entered: make(chan struct{}, 2), release: make(chan struct{})}
	ctl, err := handover.New(e.cfg, handover.Deps{Cloud: e.cloud, Service: bs, Ledger: e.led, Pacer: e.pacer, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error)
	go func() { first <- ctl.Advance(e.ctx, tok) }()
	<-bs.entered // the first goroutine is fencing
	if err := ctl.Advance(e.ctx, tok); err != nil {
		t.Fatalf("second Advance: %v", err)
	}
	select {
	case <-bs.entered:
		t.Fatal("the second Advance fenced too")
	default:
	}
	close(bs.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := count(e.svc.Calls, "Fence "+oldIP+" 4"); n != 1 {
		t.Errorf("%d fence calls, want 1: %v", n, e.svc.Calls)
	}
}
