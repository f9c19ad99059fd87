package ledgertest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/manifest"
)

// fullEnvOp returns an environment operation with every field set, so a
// backend that drops one fails the round trip.
func fullEnvOp(id string) *ledger.EnvOp {
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	return &ledger.EnvOp{
		ID: id, Environment: "staging", SelectorKey: "handover:environment", Op: "standby",
		State: ledger.UpdateRunning, Phase: "standby",
		Groups: []ledger.EnvGroup{
			{Name: "orders", Min: 2, Max: 4, Desired: 2, LoweredMin: true, LoweredTo: 1,
				Standby: []string{"i-0a", "i-0b"}, Exited: []string{"i-0a"}, Restored: true},
			{Name: "web", Min: 1, Max: 3, Desired: 3},
		},
		ResumeRequested: true, Abort: true,
		Error:    "group orders: i-0b stuck\x00 — ünïcode ✓",
		Attempts: 3,
		Cloning: &ledger.EnvClone{
			Dest: "prod", Plan: []byte(`{"source":"staging","destination":"prod"}`),
			Items: []ledger.EnvItem{
				{Kind: "ebs-snapshot", Name: "orders-1", ID: "snap-0a", Detail: "vol-0a", Done: true, Started: true},
				{Kind: "fence", Name: "orders-2"},
			},
			QuiescedAt: base.Add(10 * time.Second), UnquiescedAt: base.Add(11 * time.Second).In(plus2), QuiesceHeld: true,
			Rewrites: map[string]string{"staging-assets": "prod-assets"},
			Manifests: []ledger.EnvManifest{{Database: "orders-1", Hash: "blake3:0a", Files: 1, Bytes: 3,
				Entries: []manifest.Entry{{Path: "seg-000001.log", Type: "file", Mode: 0o644, Size: 3, Hash: "0b"}}, Error: "no route"}},
			Objects: []ledger.EnvObjects{{Bucket: "prod-assets", From: "staging-assets", Count: 1, Digest: "sha256:0c",
				Sums: map[string]string{"a/b": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, Partial: true}},
			Verify: &ledger.EnvVerify{State: "failed", StartedAt: base.Add(3 * time.Minute), EndedAt: base.Add(4 * time.Minute).In(plus2),
				Scratch:    []ledger.EnvItem{{Kind: "rds-scratch", Name: "verify-e-staging-db", ID: "staging-db", Detail: "127.0.0.1:5432", Done: true, Started: true}},
				Mismatches: []string{"table public.orders: 3 rows, the snapshot's 4"}, Report: []byte(`{"ok":false}`)},
		},
		Migration: &ledger.EnvMigration{
			Dest: "staging-next", CloneOp: "env-0c", Plan: []byte(`{"environment":"staging"}`),
			Entry: "arn:listener/1", EntryLB: "arn:lb/1", SourceTG: "arn:tg/1", EntryTG: "arn:tg/2",
			Verified: true, VerifyNote: "passed", Switching: true, SwitchedAt: base.Add(5 * time.Minute).In(plus2), SwitchedBack: true,
			LiftedAt: base.Add(6 * time.Minute), Bake: 3 * time.Second, DeleteData: true, SourceKept: "verify did not pass",
			Items:     []ledger.EnvItem{{Kind: "temporary-listener", Name: "orders", ID: "arn:listener/2", Detail: "deleted", Done: true, Started: true}},
			Unchanged: []string{"bucket staging-next-assets (S3 names cannot change)"},
		},
		Aborting: &ledger.EnvAbort{From: "clone-build (Running)", RequestedAt: base.Add(30 * time.Second),
			Deleted:     []ledger.EnvItem{{Kind: "group", Name: "prod-web", ID: "prod-web", Done: true}},
			Checks:      1,
			Differences: []string{"group web: max_size 4 -> 9"}},
		CreatedAt: base,
		UpdatedAt: base.Add(time.Minute).In(plus2),
		EndedAt:   base.Add(2 * time.Minute),
		Timeline: []ledger.UpdateStep{
			{Phase: "standby", Start: base, End: base.Add(time.Minute), Note: "2 groups"},
			{Phase: "resume", Start: base.Add(time.Minute)},
		},
	}
}

func normEnvOp(o *ledger.EnvOp) *ledger.EnvOp {
	c := o.Clone()
	for _, p := range []*time.Time{&c.CreatedAt, &c.UpdatedAt, &c.EndedAt} {
		*p = normTime(*p)
	}
	if c.Cloning != nil {
		c.Cloning.QuiescedAt, c.Cloning.UnquiescedAt = normTime(c.Cloning.QuiescedAt), normTime(c.Cloning.UnquiescedAt)
		if len(c.Cloning.Items) == 0 {
			c.Cloning.Items = nil
		}
		if len(c.Cloning.Rewrites) == 0 {
			c.Cloning.Rewrites = nil
		}
		if len(c.Cloning.Plan) == 0 {
			c.Cloning.Plan = nil
		}
		if v := c.Cloning.Verify; v != nil {
			v.StartedAt, v.EndedAt = normTime(v.StartedAt), normTime(v.EndedAt)
		}
	}
	if m := c.Migration; m != nil {
		m.SwitchedAt, m.LiftedAt = normTime(m.SwitchedAt), normTime(m.LiftedAt)
		if len(m.Items) == 0 {
			m.Items = nil
		}
		if len(m.Unchanged) == 0 {
			m.Unchanged = nil
		}
		if len(m.Plan) == 0 {
			m.Plan = nil
		}
	}
	for i := range c.Timeline {
		c.Timeline[i].Start = normTime(c.Timeline[i].Start)
		c.Timeline[i].End = normTime(c.Timeline[i].End)
	}
	for i := range c.Groups {
		if len(c.Groups[i].Standby) == 0 {
			c.Groups[i].Standby = nil
		}
		if len(c.Groups[i].Exited) == 0 {
			c.Groups[i].Exited = nil
		}
	}
	if len(c.Groups) == 0 {
		c.Groups = nil
	}
	if len(c.Timeline) == 0 {
		c.Timeline = nil
	}
	return c
}

func sameEnvOp(t *testing.T, what string, got, want *ledger.EnvOp) {
	t.Helper()
	if g, w := normEnvOp(got), normEnvOp(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func testEnvOps(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("FixtureComplete", func(t *testing.T) {
		o := fullEnvOp("e")
		checkAllSet(t, o, "Version")
		checkAllSet(t, &o.Groups[0])
		checkAllSet(t, o.Cloning)
		checkAllSet(t, &o.Cloning.Items[0])
		checkAllSet(t, &o.Cloning.Manifests[0])
		checkAllSet(t, &o.Cloning.Objects[0])
		checkAllSet(t, o.Cloning.Verify)
		checkAllSet(t, o.Migration)
		checkAllSet(t, &o.Migration.Items[0])
		checkAllSet(t, &o.Timeline[0])
	})

	t.Run("RoundTripAndCAS", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		o := fullEnvOp("env-1")
		o.Version = 5 // ignored: a create stores version 1
		must(t, "create", l.CreateEnvOp(ctx, o))
		if o.Version != 1 {
			t.Fatalf("after create Version = %d, want 1", o.Version)
		}
		got, err := l.GetEnvOp(ctx, "env-1")
		must(t, "get", err)
		sameEnvOp(t, "round trip of every field", got, o)

		again := fullEnvOp("env-1")
		again.Version = 3
		wantErr(t, "second create", l.CreateEnvOp(ctx, again), ledger.ErrExists)
		if again.Version != 3 {
			t.Errorf("failed create changed Version to %d", again.Version)
		}

		stale := o.Clone()
		o.Groups[1].Standby = append(o.Groups[1].Standby, "i-0c")
		o.State = ledger.UpdateSucceeded
		must(t, "save", l.SaveEnvOp(ctx, o))
		if o.Version != 2 {
			t.Fatalf("after save Version = %d, want 2", o.Version)
		}
		wantErr(t, "stale save", l.SaveEnvOp(ctx, stale), ledger.ErrConflict)
		if stale.Version != 1 {
			t.Errorf("failed save changed Version to %d", stale.Version)
		}
		got, err = l.GetEnvOp(ctx, "env-1")
		must(t, "get after save", err)
		sameEnvOp(t, "after save", got, o)

		_, err = l.GetEnvOp(ctx, "absent")
		wantErr(t, "get absent", err, ledger.ErrNotFound)
		absent := fullEnvOp("absent")
		absent.Version = 1
		wantErr(t, "save absent", l.SaveEnvOp(ctx, absent), ledger.ErrNotFound)

		minimal := &ledger.EnvOp{ID: "env-min", State: ledger.UpdateRunning}
		must(t, "create minimal", l.CreateEnvOp(ctx, minimal))
		got, err = l.GetEnvOp(ctx, "env-min")
		must(t, "get minimal", err)
		sameEnvOp(t, "round trip of zero fields", got, minimal)
	})

	t.Run("List", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		recs := []struct {
			id, env string
			created time.Time
			state   ledger.UpdateState
		}{
			{"e-b", "staging", base.Add(2 * time.Second), ledger.UpdateRunning},
			{"e-a", "staging", base.Add(time.Second), ledger.UpdateSucceeded},
			{"e-c", "prod", base.Add(3 * time.Second), ledger.UpdateRunning},
			{"e-d", "staging", base.Add(4 * time.Second), ledger.UpdateAborted},
		}
		for _, r := range recs {
			o := fullEnvOp(r.id)
			o.Environment, o.CreatedAt, o.State = r.env, r.created, r.state
			must(t, "create "+r.id, l.CreateEnvOp(ctx, o))
		}
		check := func(q ledger.EnvOpQuery, want []string) {
			t.Helper()
			got, err := l.ListEnvOps(ctx, q)
			must(t, "list", err)
			var ids []string
			for _, o := range got {
				ids = append(ids, o.ID)
			}
			if !slices.Equal(ids, want) {
				t.Errorf("ListEnvOps(%+v) = %q, want %q", q, ids, want)
			}
		}
		check(ledger.EnvOpQuery{}, []string{"e-a", "e-b", "e-c", "e-d"})
		check(ledger.EnvOpQuery{Unfinished: true}, []string{"e-b", "e-c"})
		check(ledger.EnvOpQuery{Environment: "staging"}, []string{"e-a", "e-b", "e-d"})
		check(ledger.EnvOpQuery{Environment: "staging", Unfinished: true}, []string{"e-b"})
		check(ledger.EnvOpQuery{Environment: "stag"}, nil)

		o, err := l.GetEnvOp(ctx, "e-b")
		must(t, "get", err)
		o.State = ledger.UpdateSucceeded
		must(t, "save", l.SaveEnvOp(ctx, o))
		check(ledger.EnvOpQuery{Environment: "staging", Unfinished: true}, nil)
	})
}
