package ledgertest

import (
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

func testLeases(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("Lifecycle", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		const ttl = time.Minute
		at := func(d time.Duration) time.Time { return base.Add(d) }
		lease := func(holder string, token int64, expires time.Duration) ledger.Lease {
			return ledger.Lease{Name: "controller", Holder: holder, Token: token, Expires: at(expires)}
		}
		// Each step runs in order on the same lease; release steps are
		// followed by an acquire that shows their effect.
		for _, step := range []struct {
			name    string
			release *ledger.Lease // release this instead of acquiring
			holder  string
			now     time.Duration
			err     error
			want    ledger.Lease // the lease returned (also with ErrLeaseHeld)
		}{
			{name: "free", holder: "A", now: 0, want: lease("A", 1, time.Minute)},
			{name: "held", holder: "B", now: 30 * time.Second, err: ledger.ErrLeaseHeld, want: lease("A", 1, time.Minute)},
			{name: "renew keeps token", holder: "A", now: 40 * time.Second, want: lease("A", 1, 100*time.Second)},
			{name: "held until expiry", holder: "B", now: 100*time.Second - time.Microsecond, err: ledger.ErrLeaseHeld, want: lease("A", 1, 100*time.Second)},
			{name: "expired: new holder gets token+1", holder: "B", now: 100 * time.Second, want: lease("B", 2, 160*time.Second)},
			{name: "stale holder releases", release: &ledger.Lease{Name: "controller", Holder: "A", Token: 1}},
			{name: "still held by B", holder: "C", now: 120 * time.Second, err: ledger.ErrLeaseHeld, want: lease("B", 2, 160*time.Second)},
			{name: "right holder, stale token", release: &ledger.Lease{Name: "controller", Holder: "B", Token: 1}},
			{name: "still held by B after stale token", holder: "C", now: 121 * time.Second, err: ledger.ErrLeaseHeld, want: lease("B", 2, 160*time.Second)},
			{name: "right token, wrong holder", release: &ledger.Lease{Name: "controller", Holder: "C", Token: 2}},
			{name: "still held by B after wrong holder", holder: "C", now: 122 * time.Second, err: ledger.ErrLeaseHeld, want: lease("B", 2, 160*time.Second)},
			{name: "B releases", release: &ledger.Lease{Name: "controller", Holder: "B", Token: 2}},
			{name: "B releases twice", release: &ledger.Lease{Name: "controller", Holder: "B", Token: 2}},
			{name: "released: next holder gets token+1", holder: "C", now: 123 * time.Second, want: lease("C", 3, 183*time.Second)},
			{name: "own expired lease keeps token", holder: "C", now: time.Hour, want: lease("C", 3, time.Hour+time.Minute)},
			{name: "after re-acquire", holder: "A", now: time.Hour + time.Second, err: ledger.ErrLeaseHeld, want: lease("C", 3, time.Hour+time.Minute)},
		} {
			if step.release != nil {
				must(t, step.name, l.ReleaseLease(ctx, *step.release))
				continue
			}
			got, err := l.AcquireLease(ctx, "controller", step.holder, at(step.now), ttl)
			wantErr(t, step.name, err, step.err)
			sameLease(t, step.name, got, step.want)
		}
	})

	t.Run("NamesAreIndependent", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		must(t, "release never acquired", l.ReleaseLease(ctx, ledger.Lease{Name: "x", Holder: "A", Token: 1}))
		a, err := l.AcquireLease(ctx, "x", "A", base, time.Minute)
		must(t, "acquire x", err)
		b, err := l.AcquireLease(ctx, "y", "B", base, time.Minute)
		must(t, "acquire y", err)
		if a.Token != 1 || b.Token != 1 || a.Name != "x" || b.Name != "y" {
			t.Errorf("got %+v and %+v, want token 1 each", a, b)
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		if _, err := l.AcquireLease(ctx, "x", "", base, time.Minute); err == nil {
			t.Errorf("acquire with an empty holder succeeded")
		}
		if _, err := l.AcquireLease(ctx, "x", "A", base, 0); err == nil {
			t.Errorf("acquire with a zero ttl succeeded")
		}
		got, err := l.AcquireLease(ctx, "x", "B", base, time.Minute)
		must(t, "acquire after invalid attempts", err)
		if got.Token != 1 {
			t.Errorf("invalid attempts changed the lease: %+v", got)
		}
	})

	t.Run("List", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		at := func(d time.Duration) time.Time { return base.Add(d) }
		got, err := l.ListLeases(ctx, base)
		must(t, "list with no leases", err)
		if len(got) != 0 {
			t.Fatalf("no leases taken, listed %+v", got)
		}
		// Names out of order, so the order is the backend's sorting; a
		// released lease, an expired one and one held by two holders in
		// turn.
		for _, a := range []struct {
			name, holder string
			now, ttl     time.Duration
		}{
			{"update/u1", "B", 0, time.Minute},
			{"migration/m1", "A", 0, 2 * time.Minute},
			{"release-channel/web", "A", 0, 30 * time.Second},
			{"released", "C", 0, time.Hour},
			{"taken-over", "A", 0, 10 * time.Second},
			{"taken-over", "C", 20 * time.Second, time.Hour},
		} {
			_, err := l.AcquireLease(ctx, a.name, a.holder, at(a.now), a.ttl)
			must(t, "acquire "+a.name+" for "+a.holder, err)
		}
		must(t, "release", l.ReleaseLease(ctx, ledger.Lease{Name: "released", Holder: "C", Token: 1}))
		for _, c := range []struct {
			now  time.Duration
			want []ledger.Lease
		}{
			{now: 25 * time.Second, want: []ledger.Lease{
				{Name: "migration/m1", Holder: "A", Token: 1, Expires: at(2 * time.Minute)},
				{Name: "release-channel/web", Holder: "A", Token: 1, Expires: at(30 * time.Second)},
				{Name: "taken-over", Holder: "C", Token: 2, Expires: at(20*time.Second + time.Hour)},
				{Name: "update/u1", Holder: "B", Token: 1, Expires: at(time.Minute)},
			}},
			// Expired once now reaches the expiry.
			{now: 30 * time.Second, want: []ledger.Lease{
				{Name: "migration/m1", Holder: "A", Token: 1, Expires: at(2 * time.Minute)},
				{Name: "taken-over", Holder: "C", Token: 2, Expires: at(20*time.Second + time.Hour)},
				{Name: "update/u1", Holder: "B", Token: 1, Expires: at(time.Minute)},
			}},
			{now: 2 * time.Hour},
		} {
			what := "list at +" + c.now.String()
			got, err := l.ListLeases(ctx, at(c.now))
			must(t, what, err)
			if len(got) != len(c.want) {
				t.Fatalf("%s: listed %+v, want %+v", what, got, c.want)
			}
			for i := range got {
				sameLease(t, what, got[i], c.want[i])
			}
		}
	})
}

func sameLease(t *testing.T, what string, got, want ledger.Lease) {
	t.Helper()
	if got.Name != want.Name || got.Holder != want.Holder || got.Token != want.Token ||
		!normTime(got.Expires).Equal(normTime(want.Expires)) {
		t.Fatalf("%s: lease %+v, want %+v", what, got, want)
	}
}
