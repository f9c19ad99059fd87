package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
)

const ttl = 20 * time.Second

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeLeases is a ledger's lease table: one lease per name, granted to
// whoever asks while it is free, expired or theirs. Other holders are
// simulated by Take.
type fakeLeases struct {
	mu sync.Mutex
	// NextErr is returned once by the method of that name.
	NextErr map[string]error
	// Calls lists "acquire NAME" and "release NAME".
	Calls  []string
	leases map[string]ledger.Lease
}

var _ lease.Leases = (*fakeLeases)(nil)

func newFakeLeases() *fakeLeases {
	return &fakeLeases{NextErr: map[string]error{}, leases: map[string]ledger.Lease{}}
}

func (f *fakeLeases) AcquireLease(_ context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "acquire "+name)
	if err := f.NextErr["AcquireLease"]; err != nil {
		delete(f.NextErr, "AcquireLease")
		return ledger.Lease{}, err
	}
	l := f.leases[name]
	if l.Holder != "" && l.Holder != holder && now.Before(l.Expires) {
		return l, ledger.ErrLeaseHeld
	}
	if l.Holder != holder {
		l.Token++
	}
	l.Name, l.Holder, l.Expires = name, holder, now.Add(ttl)
	f.leases[name] = l
	return l, nil
}

func (f *fakeLeases) ReleaseLease(_ context.Context, l ledger.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "release "+l.Name)
	if err := f.NextErr["ReleaseLease"]; err != nil {
		delete(f.NextErr, "ReleaseLease")
		return err
	}
	if cur := f.leases[l.Name]; cur.Holder == l.Holder && cur.Token == l.Token {
		cur.Holder, cur.Expires = "", time.Time{}
		f.leases[l.Name] = cur
	}
	return nil
}

// Take gives the lease to another holder until expires.
func (f *fakeLeases) Take(name, holder string, expires time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[name]
	l.Name, l.Holder, l.Token, l.Expires = name, holder, l.Token+1, expires
	f.leases[name] = l
}

// count returns how many calls of kind ("acquire", "release") there were
// from call number from on.
func (f *fakeLeases) count(kind string, from int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.Calls[from:] {
		if strings.HasPrefix(c, kind+" ") {
			n++
		}
	}
	return n
}

var errBoom = errors.New("boom")

// call is one Advance of the shared lease "rec/1" and what it must do.
type call struct {
	after      time.Duration // the clock moves this much first
	takenBy    string        // another holder takes the lease first, for a TTL
	acquireErr error
	releaseErr error
	next       []lease.Next // what the step returns, pass by pass
	stepErr    error        // returned by the step's first pass instead

	wantErr      error
	wantPasses   int
	wantAcquires int
	wantReleases int
}

func TestKeeperAdvance(t *testing.T) {
	wait := []lease.Next{lease.Wait}
	tests := []struct {
		name  string
		calls []call
	}{
		{"takes the lease, keeps it while the record waits", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"held by another holder: skipped, not remembered", []call{
			{takenBy: "ctl-2", next: wait, wantAcquires: 1},
			{after: time.Second, takenBy: "ctl-2", next: wait, wantAcquires: 1},
		}},
		{"renewal skipped while more than half the TTL is left", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{after: ttl/2 - time.Millisecond, next: wait, wantPasses: 1},
			{next: wait, wantPasses: 1},
		}},
		{"renewed once half the TTL is gone, then fresh again", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{after: ttl / 2, next: wait, wantPasses: 1, wantAcquires: 1},
			{after: ttl/2 - time.Millisecond, next: wait, wantPasses: 1},
			{after: time.Millisecond, next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"an expired lease is taken again", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{after: 3 * ttl, next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"lost after it expired: another holder took it", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{after: ttl, takenBy: "ctl-2", next: wait, wantAcquires: 1},
			{after: time.Second, takenBy: "ctl-2", next: wait, wantAcquires: 1},
		}},
		{"released when the record is terminal, then taken afresh", []call{
			{next: []lease.Next{lease.Again, lease.Done}, wantPasses: 2, wantAcquires: 1, wantReleases: 1},
			{next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"a failed release is logged, not returned, and forgotten", []call{
			{releaseErr: errBoom, next: []lease.Next{lease.Done}, wantPasses: 1, wantAcquires: 1, wantReleases: 1},
			{next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"forgotten after a step error", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{stepErr: errBoom, wantErr: errBoom, wantPasses: 1},
			{next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"forgotten after an acquire error; the step does not run", []call{
			{next: wait, wantPasses: 1, wantAcquires: 1},
			{after: ttl / 2, acquireErr: errBoom, wantErr: errBoom, wantAcquires: 1},
			{next: wait, wantPasses: 1, wantAcquires: 1},
		}},
		{"at most MaxPasses passes per call", []call{
			{next: slices.Repeat([]lease.Next{lease.Again}, lease.MaxPasses+4), wantPasses: lease.MaxPasses, wantAcquires: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewFake(t0)
			f := newFakeLeases()
			k := lease.New(f, "ctl-1", ttl, clk, nil)
			for i, c := range tc.calls {
				clk.Advance(c.after)
				if c.takenBy != "" {
					f.Take("rec/1", c.takenBy, clk.Now().Add(ttl))
				}
				if c.acquireErr != nil {
					f.NextErr["AcquireLease"] = c.acquireErr
				}
				if c.releaseErr != nil {
					f.NextErr["ReleaseLease"] = c.releaseErr
				}
				from, passes := len(f.Calls), 0
				err := k.Advance(ctx, "rec/1", func(context.Context) (lease.Next, error) {
					passes++
					if c.stepErr != nil {
						return lease.Wait, c.stepErr
					}
					return c.next[passes-1], nil
				})
				if !errors.Is(err, c.wantErr) || (err == nil) != (c.wantErr == nil) {
					t.Errorf("call %d: Advance = %v, want %v", i+1, err, c.wantErr)
				}
				if passes != c.wantPasses {
					t.Errorf("call %d: %d passes, want %d", i+1, passes, c.wantPasses)
				}
				if got := f.count("acquire", from); got != c.wantAcquires {
					t.Errorf("call %d: %d AcquireLease calls, want %d (%v)", i+1, got, c.wantAcquires, f.Calls[from:])
				}
				if got := f.count("release", from); got != c.wantReleases {
					t.Errorf("call %d: %d ReleaseLease calls, want %d (%v)", i+1, got, c.wantReleases, f.Calls[from:])
				}
			}
		})
	}
}

// A loop of many passes checks the lease before each: a pass never starts
// with half the TTL or less left.
func TestKeeperRenewsBetweenPasses(t *testing.T) {
	clk := clock.NewFake(t0)
	f := newFakeLeases()
	k := lease.New(f, "ctl-1", ttl, clk, nil)
	passes := 0
	err := k.Advance(context.Background(), "rec/1", func(context.Context) (lease.Next, error) {
		passes++
		clk.Advance(ttl / 4) // a slow step
		if passes == 8 {
			return lease.Wait, nil
		}
		return lease.Again, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Passes start at 0, 5, 10, … s: renewed at 0, 10, 20 and 30 s.
	if got := f.count("acquire", 0); got != 4 {
		t.Errorf("%d AcquireLease calls over 8 passes of TTL/4, want 4 (%v)", got, f.Calls)
	}
}

// Another goroutine of this process advancing the same name makes Advance
// skip it; other names go on.
func TestKeeperBusyInProcess(t *testing.T) {
	ctx := context.Background()
	f := newFakeLeases()
	k := lease.New(f, "ctl-1", ttl, clock.NewFake(t0), nil)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- k.Advance(ctx, "rec/1", func(context.Context) (lease.Next, error) {
			close(inside)
			<-release
			return lease.Wait, nil
		})
	}()
	<-inside
	ran := map[string]bool{}
	for _, name := range []string{"rec/1", "rec/2"} {
		if err := k.Advance(ctx, name, func(context.Context) (lease.Next, error) {
			ran[name] = true
			return lease.Wait, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ran["rec/1"] || !ran["rec/2"] {
		t.Errorf("steps ran %v, want only rec/2 while rec/1 was busy", ran)
	}
	// Once the first call returned, the name is free again.
	if err := k.Advance(ctx, "rec/1", func(context.Context) (lease.Next, error) {
		ran["rec/1"] = true
		return lease.Wait, nil
	}); err != nil || !ran["rec/1"] {
		t.Errorf("rec/1 not advanced after the busy call ended (err %v)", err)
	}
}

// Many goroutines of two controllers: each pass runs under a lease held
// by its controller alone, and no name is stepped twice at once.
func TestKeeperConcurrent(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	f := newFakeLeases()
	keepers := []*lease.Keeper{lease.New(f, "ctl-1", ttl, clk, nil), lease.New(f, "ctl-2", ttl, clk, nil)}
	var mu sync.Mutex
	stepping := map[string]string{} // name → holder stepping it
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			holder := fmt.Sprintf("ctl-%d", i%2+1)
			name := fmt.Sprintf("rec/%d", i%3)
			err := keepers[i%2].Advance(ctx, name, func(context.Context) (lease.Next, error) {
				mu.Lock()
				if h, ok := stepping[name]; ok {
					t.Errorf("%s stepped by %s while %s steps it", name, holder, h)
				}
				stepping[name] = holder
				mu.Unlock()
				clk.Advance(time.Second)
				mu.Lock()
				delete(stepping, name)
				mu.Unlock()
				return lease.Wait, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// Held lists the leases a waiting record keeps, by name, and drops the
// released and the expired.
func TestKeeperHeld(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	f := newFakeLeases()
	k := lease.New(f, "ctl-1", ttl, clk, nil)
	for _, name := range []string{"update/b", "migration/a", "migration/done"} {
		next := lease.Wait
		if name == "migration/done" {
			next = lease.Done
		}
		if err := k.Advance(ctx, name, func(context.Context) (lease.Next, error) { return next, nil }); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, l := range k.Held() {
		names = append(names, l.Name)
		if l.Holder != "ctl-1" || !l.Expires.Equal(t0.Add(ttl)) {
			t.Errorf("held %+v", l)
		}
	}
	if want := []string{"migration/a", "update/b"}; !slices.Equal(names, want) {
		t.Errorf("Held() = %v, want %v", names, want)
	}
	clk.Advance(ttl)
	if h := k.Held(); len(h) != 0 {
		t.Errorf("Held() after the TTL = %v, want none", h)
	}
}
