package env

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// fakeVerify is VerifyCloud and TableSummer over fakeBuild's resources:
// a scratch instance's tables are the snapshot's, DST's instance's are
// the same unless a test changes them.
type fakeVerify struct {
	fb      *fakeBuild
	dstRows map[string]TableSum // table -> DST's sum, when it differs
	// kill, when set, is called by the first delete or restore of a
	// scratch instance (after it takes effect): the test's process dies.
	kill func()
}

var (
	_ VerifyCloud = (*fakeVerify)(nil)
	_ TableSummer = (*fakeVerify)(nil)
)

func (v *fakeVerify) DeleteDBInstance(_ context.Context, name string) error {
	v.fb.mu.Lock()
	defer v.fb.mu.Unlock()
	return v.fb.c.mutate("DeleteDBInstance "+name, func() error {
		delete(v.fb.made, KindRDS+"/"+name)
		return nil
	})
}

func (v *fakeVerify) DBLogin(_ context.Context, instance string) (string, string, error) {
	return "app", "app", nil
}

func (v *fakeVerify) ObjectSums(_ context.Context, bucket string) (map[string]string, error) {
	v.fb.mu.Lock()
	defer v.fb.mu.Unlock()
	out := map[string]string{}
	for k, c := range v.fb.objects[bucket] {
		out[k] = fakeSum(c)
	}
	return out, nil
}

func (v *fakeVerify) TableSums(_ context.Context, endpoint, user, db string) ([]TableSum, error) {
	if user != "app" || db != "app" {
		return nil, fmt.Errorf("logged in as %s to %s", user, db)
	}
	snap := []TableSum{{Table: "public.orders", Rows: 5000, Sum: "sha256:aa"}, {Table: "public.users", Rows: 3, Sum: "sha256:bb"}}
	if strings.HasPrefix(endpoint, "verify-") {
		return snap, nil
	}
	for i, t := range snap {
		if d, ok := v.dstRows[t.Table]; ok {
			snap[i] = d
		}
	}
	return snap, nil
}

// verifyRig is a finished clone of cloneRunRig with a runner that can
// verify it.
func verifyRig(t *testing.T) (*rig, *fakeBuild, *fakeVerify, *ledger.EnvOp) {
	x, fr, fb := cloneRunRig(t)
	op := x.clone(fr, fb)
	checkClone(t, x, fb, op)
	fv := &fakeVerify{fb: fb, dstRows: map[string]TableSum{}}
	x.r.Clone, x.r.Manifests, x.r.Verifier, x.r.Tables = fb, fb, fv, fv
	return x, fb, fv, op
}

func (x *rig) verify(op *ledger.EnvOp, req VerifyRequest, fb *fakeBuild, fv *fakeVerify) (*VerifyReport, error) {
	x.t.Helper()
	x.r.Clone, x.r.Manifests, x.r.Verifier, x.r.Tables = fb, fb, fv, fv
	req.CloneOpID = op.ID
	req.Wait = func(ctx context.Context) error {
		x.clk.Advance(time.Second)
		return ctx.Err()
	}
	return x.r.Verify(context.Background(), req)
}

func scratchLeft(fb *fakeBuild) []string {
	var out []string
	for k := range fb.made {
		if strings.HasPrefix(k, KindRDS+"/verify-") {
			out = append(out, k)
		}
	}
	return out
}

func TestVerifyPasses(t *testing.T) {
	x, fb, fv, op := verifyRig(t)
	rep, err := x.verify(op, VerifyRequest{VerifyCmd: `test "$HANDOVER_ENV" = prod && test -n "$HANDOVER_RDS_PROD_PG_ENDPOINT" && echo checked "$HANDOVER_BUCKETS"`}, fb, fv)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Mismatches) != 0 {
		t.Fatalf("verify of an untouched clone: %+v", rep.Mismatches)
	}
	if len(rep.Volumes) != 2 || len(rep.Tables) != 2 || len(rep.Buckets) != 1 || rep.Command == nil {
		t.Fatalf("report %+v", rep)
	}
	for _, v := range rep.Volumes {
		if !v.OK || v.Want == "" || v.Got != v.Want {
			t.Errorf("volume %+v", v)
		}
	}
	if c := rep.Command; !c.OK || c.Output != "checked prod-assets\n" {
		t.Errorf("command %+v", c)
	}
	if left := scratchLeft(fb); len(left) != 0 || fb.creates["rds/"+ScratchName(op.ID, "staging-pg")] != 1 {
		t.Errorf("scratch instances left %v, made %d times", left, fb.creates["rds/"+ScratchName(op.ID, "staging-pg")])
	}
	got, err := x.r.Get(t.Context(), op.ID)
	must(t, err)
	if !got.Cloning.Passed() || got.Cloning.Verify.EndedAt.IsZero() || len(got.Cloning.Verify.Report) == 0 {
		t.Errorf("recorded verify %+v", got.Cloning.Verify)
	}
}

// Every kind of difference is found and named: a volume, a table, an
// object, and a failing command; the result is recorded failed.
func TestVerifyNamesEveryMismatch(t *testing.T) {
	x, fb, fv, op := verifyRig(t)
	d, err := x.led.GetDatabase(t.Context(), "kv-1-prod")
	must(t, err)
	fb.tamper[d.Instance] = "data, then a write"
	fv.dstRows["public.orders"] = TableSum{Table: "public.orders", Rows: 5000, Sum: "sha256:cc"}
	fb.objects["prod-assets"]["a.txt"] = "changed"
	fb.objects["prod-assets"]["new.txt"] = "extra"
	rep, err := x.verify(op, VerifyRequest{VerifyCmd: "echo smoke test failed; exit 3"}, fb, fv)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("verify passed a tampered clone")
	}
	all := strings.Join(rep.Mismatches, "\n")
	for _, want := range []string{
		"database kv-1-prod: its volume differs from kv-1's at the quiesce point: seg-000001.log differs: content data",
		"rds prod-pg table public.orders: 5000 rows (checksum sha256:cc), the snapshot's 5000 (sha256:aa)",
		"bucket prod-assets: a.txt differs",
		"extra new.txt",
		"--verify-cmd exited 3",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("mismatches lack %q:\n%s", want, all)
		}
	}
	t.Logf("mismatches:\n%s", all)
	if len(rep.Mismatches) != 4 || rep.Command.Output != "smoke test failed\n" {
		t.Errorf("%d mismatches, command output %q", len(rep.Mismatches), rep.Command.Output)
	}
	got, err := x.r.Get(t.Context(), op.ID)
	must(t, err)
	if got.Cloning.Passed() || got.Cloning.Verify.State != VerifyFailed || !slices.Equal(got.Cloning.Verify.Mismatches, rep.Mismatches) {
		t.Errorf("recorded verify %+v", got.Cloning.Verify)
	}
	if left := scratchLeft(fb); len(left) != 0 {
		t.Errorf("scratch instances left: %v", left)
	}
}

// A verify killed before or after any of its cloud calls (the scratch
// instance's restore, its delete), then run again by a new process,
// passes and leaves no scratch instance, which is made once.
func TestVerifyKilledAtEveryCall(t *testing.T) {
	x, fb, fv, op := verifyRig(t)
	base := x.cloud.calls
	if _, err := x.verify(op, VerifyRequest{}, fb, fv); err != nil {
		t.Fatal(err)
	}
	total := x.cloud.calls - base
	if total < 2 {
		t.Fatalf("a verify made %d cloud calls, want its restore and its delete", total)
	}
	for at := 1; at <= total; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before %v", at, before), func(t *testing.T) {
				x, fb, fv, op := verifyRig(t)
				ctx, kill := context.WithCancel(context.Background())
				x.cloud.crashAt, x.cloud.crashBefore = x.cloud.calls+at, before
				x.cloud.onCrash = kill
				x.r.Clone, x.r.Manifests, x.r.Verifier, x.r.Tables = fb, fb, fv, fv
				_, err := x.r.Verify(ctx, VerifyRequest{CloneOpID: op.ID, Wait: func(ctx context.Context) error {
					x.clk.Advance(time.Second)
					return ctx.Err()
				}})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("killed verify: %v", err)
				}
				x.cloud.crashAt, x.cloud.onCrash = 0, nil
				x.restart()
				rep, err := x.verify(op, VerifyRequest{}, fb, fv)
				if err != nil || !rep.OK {
					t.Fatalf("verify run again: %v, %+v", err, rep)
				}
				name := "rds/" + ScratchName(op.ID, "staging-pg")
				// Killed once its delete took effect, the comparisons it
				// made were lost with it: the next restores again.
				want := 1
				if at == total && !before {
					want = 2
				}
				if left := scratchLeft(fb); len(left) != 0 || fb.creates[name] != want {
					t.Errorf("scratch instances left %v; made %d times, want %d", left, fb.creates[name], want)
				}
				got, _ := x.r.Get(t.Context(), op.ID)
				if !got.Cloning.Passed() || len(got.Cloning.Verify.Scratch) != 1 || !got.Cloning.Verify.Scratch[0].Done {
					t.Errorf("recorded verify %+v", got.Cloning.Verify)
				}
			})
		}
	}
}

// Verify refuses what is not a succeeded clone, and FindClone says what
// there is.
func TestVerifyRefuses(t *testing.T) {
	x, fb, fv, op := verifyRig(t)
	if _, err := x.r.FindClone(t.Context(), "staging", "nope"); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "no clone of staging into nope") {
		t.Errorf("FindClone of an unknown DST: %v", err)
	}
	found, err := x.r.FindClone(t.Context(), "staging", "prod")
	if err != nil || found.ID != op.ID {
		t.Errorf("FindClone: %v, %v", found, err)
	}
	failed := op.Clone()
	failed.ID, failed.State, failed.Version = "env-failed", ledger.UpdateFailed, 0
	must(t, x.led.CreateEnvOp(t.Context(), failed))
	if _, err := x.verify(failed, VerifyRequest{}, fb, fv); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "verify compares a clone that succeeded") {
		t.Errorf("verify of a failed clone: %v", err)
	}
	if len(fb.made) != 6 || !maps.Equal(fb.tamper, map[string]string{}) {
		t.Errorf("a refusal changed something: %v", fb.made)
	}
}

// The sweeper keeps a scratch instance while a verify of its clone is
// recorded running, and judges it leaked once the verify has ended; the
// clone's own resources stay kept.
func TestSweepJudgesScratch(t *testing.T) {
	x, fb, fv, op := verifyRig(t)
	if _, err := x.verify(op, VerifyRequest{}, fb, fv); err != nil {
		t.Fatal(err)
	}
	scratch := OpResource{Owned: Owned{Kind: KindRDS, ID: ScratchName(op.ID, "staging-pg"), Name: ScratchName(op.ID, "staging-pg")}, Op: op.ID}
	dst := OpResource{Owned: Owned{Kind: KindRDS, ID: "prod-pg", Name: "prod-pg"}, Op: op.ID}
	vs, err := JudgeOpResources(t.Context(), x.led, []OpResource{scratch, dst})
	must(t, err)
	if !vs[0].Leaked || !strings.Contains(vs[0].Reason, "has ended") || vs[1].Leaked {
		t.Errorf("after the verify ended: %+v", vs)
	}
	_, err = x.r.updateClone(t.Context(), op.ID, func(o *ledger.EnvOp) error { o.Cloning.Verify.State = VerifyRunning; return nil })
	must(t, err)
	vs, err = JudgeOpResources(t.Context(), x.led, []OpResource{scratch})
	must(t, err)
	if vs[0].Leaked || !strings.Contains(vs[0].Reason, "recorded running") {
		t.Errorf("while a verify runs: %+v", vs)
	}
}

// A bucket of more keys than the clone records one by one is compared by
// count and digest, and a difference is named against SRC as it is now.
func TestVerifyLargeBucket(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	for i := range ledger.MaxRecordedObjects + 1 {
		fb.objects["staging-assets"][fmt.Sprintf("k/%05d", i)] = fmt.Sprint(i)
	}
	op := x.clone(fr, fb)
	if o := op.Cloning.Objects[0]; !o.Partial || o.Sums != nil || o.Count != ledger.MaxRecordedObjects+3 {
		t.Fatalf("recorded %d objects, partial %v, %d sums", o.Count, o.Partial, len(o.Sums))
	}
	fv := &fakeVerify{fb: fb, dstRows: map[string]TableSum{}}
	rep, err := x.verify(op, VerifyRequest{}, fb, fv)
	if err != nil || !rep.OK {
		t.Fatalf("verify of the untouched clone: %v, %v", err, rep.Mismatches)
	}
	fb.objects["prod-assets"]["k/00007"] = "changed"
	rep, err = x.verify(op, VerifyRequest{}, fb, fv)
	if err != nil || rep.OK || len(rep.Mismatches) != 1 || !strings.Contains(rep.Mismatches[0], "k/00007 differs") || !strings.Contains(rep.Mismatches[0], "compared with staging-assets now") {
		t.Errorf("verify of a changed object: %v, %q", err, rep.Mismatches)
	}
}
