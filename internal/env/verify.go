package env

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/manifest"
)

// Verify states, as EnvVerify.State records them.
const (
	VerifyRunning = "running"
	VerifyPassed  = "passed"
	VerifyFailed  = "failed"
)

// TagVerify is put on a verify's scratch RDS instances, with the clone's
// operation id: the sweeper and the next verify know them by it.
const TagVerify = "handover:verify"

// itemScratch is the kind of a verify's scratch instance.
const itemScratch = "rds-scratch"

// VerifyCloud is what a verify asks of the cloud besides CloneCloud's
// RestoreDBInstance, DBInstanceState and InstanceAddr. It is implemented
// over aws-sdk-go-v2 by awscloud.Verifier.
type VerifyCloud interface {
	// DeleteDBInstance deletes a scratch RDS instance, skipping its final
	// snapshot. Safe to repeat: one that is gone or already being deleted
	// is fine. Unlike DeleteCloud's it does not wait (a verify polls
	// under its lease instead of holding a step for minutes);
	// DBInstanceState answers ErrNotFound once the instance is gone.
	DeleteDBInstance(ctx context.Context, name string) error
	// DBLogin returns the master user name and database name of an RDS
	// instance, which its restores keep.
	DBLogin(ctx context.Context, instance string) (user, database string, err error)
	// ObjectSums returns every current object of bucket with its SHA-256
	// (base64, as S3 gives it): the stored checksum, or that of its bytes.
	ObjectSums(ctx context.Context, bucket string) (map[string]string, error)
}

// TableSum is one table's row count and checksum.
type TableSum struct {
	Table string `json:"table"` // schema.name
	Rows  int64  `json:"rows"`
	Sum   string `json:"sum"`
}

// TableSummer reads the row count and checksum of every user table of a
// database: PGTables, over PostgreSQL.
type TableSummer interface {
	// TableSums connects to the database at endpoint (host:port) as user
	// and sums every table. It changes nothing.
	TableSums(ctx context.Context, endpoint, user, database string) ([]TableSum, error)
}

// VerifyRequest is one env verify.
type VerifyRequest struct {
	// CloneOpID is the clone verified: one that Succeeded (with SRC's
	// quiesce still held or not).
	CloneOpID string
	// VerifyCmd, when set, is run by sh -c with DST's endpoints in its
	// environment (VerifyEnv) and must exit 0.
	VerifyCmd string
	// Wait is called between steps that wait on the cloud (a scratch
	// instance being restored or deleted): it returns after the poll
	// interval, or the context's error. Nil waits a second.
	Wait func(ctx context.Context) error
}

// VerifyReport is what a verify found. OK is true when every check agreed
// and none could not be made.
type VerifyReport struct {
	CloneOpID   string         `json:"clone_op_id"`
	Source      string         `json:"source"`
	Destination string         `json:"destination"`
	OK          bool           `json:"ok"`
	Volumes     []VolumeCheck  `json:"volumes"`
	Tables      []TableCheck   `json:"tables"`
	Buckets     []BucketCheck  `json:"buckets"`
	Command     *CommandCheck  `json:"command,omitempty"`
	Mismatches  []string       `json:"mismatches,omitempty"`
	Notes       []string       `json:"notes,omitempty"`
	StartedAt   time.Time      `json:"started_at"`
	EndedAt     time.Time      `json:"ended_at"`
	Scratch     []ScratchCheck `json:"scratch,omitempty"`
}

// VolumeCheck compares one DST database's data directory with the
// manifest its SRC database served at the quiesce point.
type VolumeCheck struct {
	Database string `json:"database"` // DST's
	From     string `json:"from"`     // SRC's
	Want     string `json:"want"`     // the manifest hash recorded at the quiesce point
	Got      string `json:"got,omitempty"`
	Files    int64  `json:"files"`
	OK       bool   `json:"ok"`
	// Differences name each path that differs (at most maxListed).
	Differences []string `json:"differences,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// TableCheck compares one table of DST's RDS instance with the same table
// of the clone's snapshot, restored into a scratch instance.
type TableCheck struct {
	Instance string `json:"instance"` // DST's
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	WantRows int64  `json:"want_rows"`
	Sum      string `json:"sum,omitempty"`
	WantSum  string `json:"want_sum,omitempty"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// BucketCheck compares DST's bucket with what the clone's copy wrote.
type BucketCheck struct {
	Bucket      string   `json:"bucket"` // DST's
	From        string   `json:"from"`
	Objects     int      `json:"objects"`
	WantObjects int      `json:"want_objects"`
	Digest      string   `json:"digest,omitempty"`
	WantDigest  string   `json:"want_digest"`
	OK          bool     `json:"ok"`
	Differences []string `json:"differences,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// CommandCheck is --verify-cmd's run.
type CommandCheck struct {
	Command  string   `json:"command"`
	Env      []string `json:"env"` // the HANDOVER_* variables it was given
	ExitCode int      `json:"exit_code"`
	Output   string   `json:"output"`
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
}

// ScratchCheck is one scratch instance a verify made, and whether it is
// gone.
type ScratchCheck struct {
	Name     string `json:"name"`
	Snapshot string `json:"snapshot"`
	Deleted  bool   `json:"deleted"`
}

// maxListed bounds the differences a check lists.
const maxListed = 20

// ScratchName is the scratch instance a verify of clone restores SRC
// instance's snapshot into: fixed per clone and instance, so a killed
// verify's is found again by name.
func ScratchName(cloneID, instance string) string {
	n := "verify-" + cloneID + "-" + instance
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

// FindClone returns the latest clone of src into dst that Succeeded, for
// verify to check; ErrBadRequest naming what there is when there is none.
func (r *Runner) FindClone(ctx context.Context, src, dst string) (*ledger.EnvOp, error) {
	ops, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: src})
	if err != nil {
		return nil, fmt.Errorf("listing the operations of environment %s: %w", src, err)
	}
	var best *ledger.EnvOp
	var others []string
	for _, o := range ops {
		if o.Op != OpClone || o.Cloning == nil || o.Cloning.Dest != dst {
			continue
		}
		if o.State != ledger.UpdateSucceeded {
			others = append(others, fmt.Sprintf("%s (%s)", o.ID, o.State))
			continue
		}
		if best == nil || o.CreatedAt.After(best.CreatedAt) {
			best = o
		}
	}
	if best != nil {
		return best, nil
	}
	if len(others) > 0 {
		return nil, badRequestf("no clone of %s into %s has succeeded (%s): verify compares a finished clone; run handover env clone %s %s to finish it", src, dst, strings.Join(others, ", "), src, dst)
	}
	return nil, badRequestf("no clone of %s into %s is recorded in this ledger: run handover env clone %s %s first (is --ledger the one the clone used?)", src, dst, src, dst)
}

// verifiable checks that op is a clone verify can compare, and decodes it.
func verifiable(op *ledger.EnvOp) (*cloneRecord, error) {
	if op.Op != OpClone {
		return nil, badRequestf("environment operation %s is a %s, not a clone: verify compares a clone's DST with its SRC", op.ID, op.Op)
	}
	if op.State != ledger.UpdateSucceeded {
		return nil, badRequestf("clone %s is %s in phase %s: verify compares a clone that succeeded", op.ID, op.State, op.Phase)
	}
	return decodeClone(op)
}

// VerifyPlan is what a verify would compare: what --dry-run prints.
type VerifyPlan struct {
	CloneOpID   string   `json:"clone_op_id"`
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Volumes     []string `json:"volumes"`
	Tables      []string `json:"tables"`
	Buckets     []string `json:"buckets"`
	Command     string   `json:"command,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// PlanVerify says what Verify would compare, changing nothing.
func (r *Runner) PlanVerify(ctx context.Context, req VerifyRequest) (*VerifyPlan, error) {
	op, err := r.Get(ctx, req.CloneOpID)
	if err != nil {
		return nil, err
	}
	rec, err := verifiable(op)
	if err != nil {
		return nil, err
	}
	src, dst := rec.Plan.Source, op.Cloning.Dest
	p := &VerifyPlan{CloneOpID: op.ID, Source: src, Destination: dst, Command: req.VerifyCmd}
	for _, d := range rec.Source.Databases {
		n := cloneName(KindDatabase, d.ID, src, dst)
		m := recordedManifest(op, d.ID)
		switch {
		case m == nil:
			p.Volumes = append(p.Volumes, fmt.Sprintf("database %s: not compared, no manifest of %s was read at the quiesce point (a clone with --manifests=false or --quiesce standby)", n, d.ID))
		case m.Error != "":
			p.Volumes = append(p.Volumes, fmt.Sprintf("database %s: cannot be compared, the manifest of %s could not be read at the quiesce point: %s", n, d.ID, m.Error))
		default:
			p.Volumes = append(p.Volumes, fmt.Sprintf("database %s: its data directory's manifest (GET /admin/manifest) against %s's at the quiesce point, %d files, %s", n, d.ID, m.Files, m.Hash))
		}
	}
	for _, it := range op.Cloning.Items {
		if it.Kind == itemRDSSnapshot {
			n := cloneName(KindRDS, it.Name, src, dst)
			p.Tables = append(p.Tables, fmt.Sprintf("rds %s: every table's row count and checksum against snapshot %s restored into scratch instance %s (deleted after)", n, it.ID, ScratchName(op.ID, it.Name)))
		}
	}
	for _, o := range op.Cloning.Objects {
		what := "each key's SHA-256"
		if o.Partial {
			what = "the count and digest of the keys' SHA-256 (over " + fmt.Sprint(ledger.MaxRecordedObjects) + " keys: not recorded one by one)"
		}
		p.Buckets = append(p.Buckets, fmt.Sprintf("bucket %s: %d objects, %s, against what the clone copied from %s", o.Bucket, o.Count, what, o.From))
	}
	for _, c := range rec.Plan.Copies {
		if !slices.ContainsFunc(op.Cloning.Objects, func(o ledger.EnvObjects) bool { return o.Bucket == c.To }) {
			p.Buckets = append(p.Buckets, fmt.Sprintf("bucket %s: not compared, the clone recorded no checksums of its copy (a clone by an older handover)", c.To))
		}
	}
	if op.Cloning.Verify != nil && op.Cloning.Verify.State == VerifyRunning {
		p.Notes = append(p.Notes, fmt.Sprintf("a verify started at %s did not finish: the next one takes up its scratch instances", op.Cloning.Verify.StartedAt.UTC().Format(time.RFC3339)))
	}
	return p, nil
}

func recordedManifest(op *ledger.EnvOp, db string) *ledger.EnvManifest {
	for i := range op.Cloning.Manifests {
		if m := &op.Cloning.Manifests[i]; m.Database == db {
			return m
		}
	}
	return nil
}

// verifyRun is one Verify's progress in memory; what must survive a kill
// (the scratch instances) is on the clone's record.
type verifyRun struct {
	req    VerifyRequest
	rec    *cloneRecord
	report VerifyReport
	begun  bool
	// checks are the volume, bucket and command checks, run in parallel
	// with the scratch restores; done closes when they end.
	checksStarted bool
	done          chan struct{}
	tablesDone    bool
	failed        error // a step that kept failing: clean up, then fail
	attempts      int
	finished      bool
}

// Verify compares the clone's DST with SRC at the quiesce point: every
// database volume's manifest with the one recorded then, every table of
// every RDS instance with the clone's snapshot (restored into a scratch
// instance, deleted after), every bucket with what the clone's copy
// wrote, and runs req.VerifyCmd against DST. The result is recorded on the
// clone (EnvClone.Verify). It runs under the lease env-verify/ID: a
// verify killed at any point is taken up by the next, which finds its
// scratch instances by name and deletes them. A report that is not OK
// comes with a nil error; the error is for a verify that could not run.
func (r *Runner) Verify(ctx context.Context, req VerifyRequest) (*VerifyReport, error) {
	if r.Clone == nil || r.Verifier == nil || r.Tables == nil || r.Manifests == nil {
		return nil, errors.New("this runner has no CloneCloud, VerifyCloud, TableSummer or ManifestReader: it cannot verify")
	}
	op, err := r.Get(ctx, req.CloneOpID)
	if err != nil {
		return nil, err
	}
	rec, err := verifiable(op)
	if err != nil {
		return nil, err
	}
	if req.Wait == nil {
		req.Wait = func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
				return nil
			}
		}
	}
	run := &verifyRun{req: req, rec: rec, done: make(chan struct{})}
	run.report = VerifyReport{CloneOpID: op.ID, Source: rec.Plan.Source, Destination: op.Cloning.Dest}
	waitingSaid := false
	for !run.finished {
		ran := false
		err := r.leases.Advance(ctx, "env-verify/"+op.ID, func(ctx context.Context) (lease.Next, error) {
			ran = true
			return r.verifyStep(ctx, run)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("verifying clone %s: %w (run it again: the next verify deletes this one's scratch instances)", op.ID, ctx.Err())
			}
			run.attempts++
			r.log.Warn("verify step failed; will retry", "env-op-id", op.ID, "attempt", run.attempts, "err", err)
			r.say("verify step failed (attempt %d): %v", run.attempts, err)
			if run.attempts >= r.cfg.MaxAttempts && run.failed == nil {
				run.failed = err // clean up, then fail
			} else if run.attempts >= 2*r.cfg.MaxAttempts {
				return nil, fmt.Errorf("verifying clone %s: %w", op.ID, err)
			}
		}
		if !ran && !waitingSaid {
			r.say("waiting for another verify of clone %s to end, or its lease to lapse (a killed verify's does within its --lease-ttl)", op.ID)
			waitingSaid = true
		}
		if run.finished {
			break
		}
		if err := req.Wait(ctx); err != nil {
			return nil, fmt.Errorf("verifying clone %s: %w (run it again: the next verify deletes this one's scratch instances)", op.ID, err)
		}
	}
	return &run.report, nil
}

// updateClone applies f to the clone's record and saves it, reading it
// again after a lost compare-and-set (env-migrate may save it meanwhile).
func (r *Runner) updateClone(ctx context.Context, id string, f func(op *ledger.EnvOp) error) (*ledger.EnvOp, error) {
	for {
		op, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := f(op); err != nil {
			return nil, err
		}
		err = r.save(ctx, op)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		return op, err
	}
}

// verifyStep does the next step of a verify.
func (r *Runner) verifyStep(ctx context.Context, run *verifyRun) (lease.Next, error) {
	id := run.report.CloneOpID
	if !run.begun {
		now := r.clk.Now()
		op, err := r.updateClone(ctx, id, func(op *ledger.EnvOp) error {
			v := op.Cloning.Verify
			if v != nil && v.State == VerifyRunning {
				r.say("taking up the verify of clone %s started at %s (killed?): its scratch instances are reused, then deleted", id, v.StartedAt.UTC().Format(time.RFC3339))
			}
			nv := &ledger.EnvVerify{State: VerifyRunning, StartedAt: now}
			if v != nil {
				for _, it := range v.Scratch {
					if !it.Done {
						nv.Scratch = append(nv.Scratch, it)
					}
				}
			}
			op.Cloning.Verify = nv
			return nil
		})
		if err != nil {
			return lease.Wait, err
		}
		run.begun = true
		run.report.StartedAt = now
		r.say("verifying clone %s: %s (DST) against %s at the quiesce point %s", id, op.Cloning.Dest, op.Environment, op.Cloning.QuiescedAt.UTC().Format(time.RFC3339))
		return lease.Again, nil
	}
	op, err := r.Get(ctx, id)
	if err != nil {
		return lease.Wait, err
	}
	if run.failed == nil {
		if more, err := r.verifyRestore(ctx, run, op); err != nil || more {
			return lease.Again, err
		}
		if !run.checksStarted {
			run.checksStarted = true
			go func() {
				defer close(run.done)
				r.verifyChecks(ctx, run, op)
			}()
		}
		if !run.tablesDone {
			ready, err := r.verifyTables(ctx, run, op)
			if err != nil || !ready {
				return lease.Wait, err
			}
			run.tablesDone = true
		}
		select {
		case <-run.done:
		default:
			return lease.Wait, nil
		}
	}
	if run.checksStarted {
		<-run.done // they write the report; they end with ctx at the latest
	}
	gone, err := r.verifyCleanup(ctx, run, op)
	if err != nil || !gone {
		return lease.Wait, err
	}
	return lease.Done, r.verifyFinish(ctx, run)
}

// scratchOf are the scratch instances the verify needs: one per RDS
// snapshot of the clone, with DST's instance of the same SRC instance.
func scratchOf(op *ledger.EnvOp, rec *cloneRecord) []ledger.EnvItem {
	var out []ledger.EnvItem
	for _, it := range op.Cloning.Items {
		if it.Kind == itemRDSSnapshot {
			out = append(out, ledger.EnvItem{Kind: itemScratch, Name: ScratchName(op.ID, it.Name), ID: it.ID,
				Detail: cloneName(KindRDS, it.Name, rec.Plan.Source, op.Cloning.Dest)})
		}
	}
	return out
}

func findScratch(v *ledger.EnvVerify, name string) *ledger.EnvItem {
	for i := range v.Scratch {
		if v.Scratch[i].Name == name {
			return &v.Scratch[i]
		}
	}
	return nil
}

// verifyRestore records each scratch instance, then asks for its restore
// (a repeat finds the one made before by name and tag). It reports true
// when it changed the record.
func (r *Runner) verifyRestore(ctx context.Context, run *verifyRun, op *ledger.EnvOp) (bool, error) {
	for _, s := range scratchOf(op, run.rec) {
		it := findScratch(op.Cloning.Verify, s.Name)
		if it != nil && it.Started {
			continue
		}
		if it == nil {
			// Intent first: a verify killed during the call below leaves
			// the instance recorded, and the next one deletes it.
			if _, err := r.updateClone(ctx, op.ID, func(o *ledger.EnvOp) error {
				if findScratch(o.Cloning.Verify, s.Name) == nil {
					o.Cloning.Verify.Scratch = append(o.Cloning.Verify.Scratch, s)
				}
				return nil
			}); err != nil {
				return false, err
			}
		}
		tags := map[string]string{TagEnvOp: op.ID, TagVerify: op.ID}
		if err := r.Clone.RestoreDBInstance(ctx, s.Detail, s.ID, s.Name, tags); err != nil {
			return false, fmt.Errorf("restoring snapshot %s into scratch instance %s: %w", s.ID, s.Name, err)
		}
		r.say("restoring snapshot %s into scratch instance %s", s.ID, s.Name)
		_, err := r.updateClone(ctx, op.ID, func(o *ledger.EnvOp) error {
			if it := findScratch(o.Cloning.Verify, s.Name); it != nil {
				it.Started = true
			}
			return nil
		})
		return true, err
	}
	return false, nil
}

// verifyTables compares every table of each DST instance with the same
// table in its scratch instance, once all of them are available. It
// reports false while one is still being restored.
func (r *Runner) verifyTables(ctx context.Context, run *verifyRun, op *ledger.EnvOp) (bool, error) {
	type pair struct{ dst, dstEP, scratch, scratchEP string }
	var pairs []pair
	var waits []string
	for _, s := range scratchOf(op, run.rec) {
		status, ep, err := r.Clone.DBInstanceState(ctx, s.Name)
		if errors.Is(err, handover.ErrNotFound) {
			// Deleted by a verify that ended meanwhile: restore again.
			_, err := r.updateClone(ctx, op.ID, func(o *ledger.EnvOp) error {
				if it := findScratch(o.Cloning.Verify, s.Name); it != nil {
					it.Started = false
				}
				return nil
			})
			return false, err
		}
		if err != nil {
			return false, fmt.Errorf("reading scratch instance %s: %w", s.Name, err)
		}
		if status != "available" || ep == "" {
			waits = append(waits, fmt.Sprintf("%s (%s)", s.Name, status))
			continue
		}
		_, dstEP, err := r.Clone.DBInstanceState(ctx, s.Detail)
		if err != nil {
			return false, fmt.Errorf("reading DST's RDS instance %s: %w", s.Detail, err)
		}
		pairs = append(pairs, pair{s.Detail, dstEP, s.Name, ep})
	}
	if len(waits) > 0 {
		r.say("waiting for scratch %s to be restored: %s", pluralWord(len(waits), "instance"), strings.Join(waits, ", "))
		return false, nil
	}
	for _, p := range pairs {
		user, db, err := r.Verifier.DBLogin(ctx, p.dst)
		if err != nil {
			return false, fmt.Errorf("reading the master user of %s: %w", p.dst, err)
		}
		var got, want []TableSum
		err = parallel(2, func(i int) error {
			var err error
			if i == 0 {
				got, err = r.Tables.TableSums(ctx, p.dstEP, user, db)
			} else {
				want, err = r.Tables.TableSums(ctx, p.scratchEP, user, db)
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("summing the tables of %s and of its snapshot: %w", p.dst, err)
		}
		checks := compareTables(p.dst, got, want)
		run.report.Tables = append(run.report.Tables, checks...)
		bad := 0
		for _, c := range checks {
			if !c.OK {
				bad++
			}
		}
		r.say("rds %s: %s compared with its snapshot, %d differ", p.dst, plural(len(checks), "table"), bad)
	}
	return true, nil
}

func pluralWord(n int, one string) string {
	if n == 1 {
		return one
	}
	return one + "s"
}

// compareTables pairs DST's tables with the snapshot's by name.
func compareTables(instance string, got, want []TableSum) []TableCheck {
	g := map[string]TableSum{}
	for _, t := range got {
		g[t.Table] = t
	}
	var out []TableCheck
	for _, w := range want {
		c := TableCheck{Instance: instance, Table: w.Table, WantRows: w.Rows, WantSum: w.Sum}
		if t, ok := g[w.Table]; ok {
			c.Rows, c.Sum = t.Rows, t.Sum
			c.OK = t.Rows == w.Rows && t.Sum == w.Sum
			delete(g, w.Table)
		} else {
			c.Error = "missing in DST"
		}
		out = append(out, c)
	}
	for _, name := range slicesSorted(g) {
		t := g[name]
		out = append(out, TableCheck{Instance: instance, Table: name, Rows: t.Rows, Sum: t.Sum, Error: "not in the snapshot (made in DST since)"})
	}
	return out
}

func slicesSorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// verifyChecks runs the checks that need no scratch instance: volumes,
// buckets, the command.
func (r *Runner) verifyChecks(ctx context.Context, run *verifyRun, op *ledger.EnvOp) {
	var vols []VolumeCheck
	var buckets []BucketCheck
	var cmd *CommandCheck
	_ = parallel(3, func(i int) error {
		switch i {
		case 0:
			vols = r.verifyVolumes(ctx, run, op)
		case 1:
			buckets = r.verifyBuckets(ctx, op)
		case 2:
			if run.req.VerifyCmd != "" {
				vars, err := r.VerifyEnv(ctx, op)
				cmd = runVerifyCmd(ctx, run.req.VerifyCmd, vars, err)
				r.say("--verify-cmd exited %d", cmd.ExitCode)
			}
		}
		return nil
	})
	run.report.Volumes, run.report.Buckets, run.report.Command = vols, buckets, cmd
}

// verifyVolumes reads each DST database's manifest through its fence
// route and compares it with its SRC database's at the quiesce point.
func (r *Runner) verifyVolumes(ctx context.Context, run *verifyRun, op *ledger.EnvOp) []VolumeCheck {
	src, dst := run.rec.Plan.Source, op.Cloning.Dest
	dbs := run.rec.Source.Databases
	out := make([]VolumeCheck, len(dbs))
	_ = parallel(len(dbs), func(i int) error {
		d := dbs[i]
		c := VolumeCheck{Database: cloneName(KindDatabase, d.ID, src, dst), From: d.ID}
		defer func() { out[i] = c }()
		m := recordedManifest(op, d.ID)
		if m == nil {
			c.Error = "no manifest was read at the quiesce point (a clone with --manifests=false or --quiesce standby): not compared"
			c.OK = true
			return nil
		}
		if m.Error != "" {
			c.Error = "the manifest could not be read at the quiesce point: " + m.Error
			return nil
		}
		c.Want, c.Files = m.Hash, m.Files
		db, err := r.led.GetDatabase(ctx, c.Database)
		if err != nil {
			c.Error = fmt.Sprintf("reading DST's database %s: %v", c.Database, err)
			return nil
		}
		addr, err := r.Clone.InstanceAddr(ctx, db.Instance)
		if err != nil {
			c.Error = fmt.Sprintf("finding the address of instance %s: %v", db.Instance, err)
			return nil
		}
		got, err := r.Manifests.Manifest(ctx, handover.Target{Instance: db.Instance, Addr: addr})
		if err != nil {
			c.Error = fmt.Sprintf("reading the manifest of %s on %s: %v", c.Database, db.Instance, err)
			return nil
		}
		c.Got = got.Hash()
		want := manifest.Manifest{Entries: m.Entries}
		diff := want.Compare(got)
		c.OK = len(diff) == 0
		if len(diff) > maxListed {
			diff = append(diff[:maxListed], fmt.Sprintf("and %d more", len(diff)-maxListed))
		}
		c.Differences = diff
		return nil
	})
	return out
}

// verifyBuckets compares each of DST's buckets with what the clone's copy
// recorded writing into it.
func (r *Runner) verifyBuckets(ctx context.Context, op *ledger.EnvOp) []BucketCheck {
	objs := op.Cloning.Objects
	out := make([]BucketCheck, len(objs))
	_ = parallel(len(objs), func(i int) error {
		o := objs[i]
		c := BucketCheck{Bucket: o.Bucket, From: o.From, WantObjects: o.Count, WantDigest: o.Digest}
		defer func() { out[i] = c }()
		sums, err := r.Verifier.ObjectSums(ctx, o.Bucket)
		if err != nil {
			c.Error = fmt.Sprintf("reading bucket %s: %v", o.Bucket, err)
			return nil
		}
		c.Objects, c.Digest = len(sums), ObjectsDigest(sums)
		c.OK = c.Digest == o.Digest
		if c.OK {
			return nil
		}
		want := o.Sums
		if o.Partial {
			// The copy's keys were too many to record one by one: SRC as
			// it is now names the candidates, which is all it can do (SRC
			// may have moved on since the copy, so a key named here may be
			// SRC's change, not DST's).
			src, err := r.Verifier.ObjectSums(ctx, o.From)
			if err != nil {
				c.Error = fmt.Sprintf("bucket %s differs from what the copy wrote (%d objects, digest %.20s; it wrote %d, %.20s), and reading %s to name the keys failed: %v", o.Bucket, c.Objects, c.Digest, o.Count, o.Digest, o.From, err)
				return nil
			}
			want = src
			c.Differences = append(c.Differences, fmt.Sprintf("(the copy's %d keys were not recorded one by one: compared with %s now)", o.Count, o.From))
		}
		for _, k := range slicesSorted(want) {
			switch got, ok := sums[k]; {
			case !ok:
				c.Differences = append(c.Differences, "missing "+k)
			case got != want[k]:
				c.Differences = append(c.Differences, fmt.Sprintf("%s differs: SHA-256 %s, found %s", k, want[k], got))
			}
		}
		for _, k := range slicesSorted(sums) {
			if _, ok := want[k]; !ok {
				c.Differences = append(c.Differences, "extra "+k)
			}
		}
		if len(c.Differences) > maxListed {
			c.Differences = append(c.Differences[:maxListed], fmt.Sprintf("and %d more", len(c.Differences)-maxListed))
		}
		return nil
	})
	return out
}

// verifyCleanup deletes every scratch instance not yet deleted, and
// reports true once all are gone.
func (r *Runner) verifyCleanup(ctx context.Context, run *verifyRun, op *ledger.EnvOp) (bool, error) {
	// The deletes must happen even when the verify's own context has
	// ended (a timeout): a scratch instance costs money until it does.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	gone := true
	for _, it := range op.Cloning.Verify.Scratch {
		if it.Done {
			continue
		}
		_, _, err := r.Clone.DBInstanceState(ctx, it.Name)
		if errors.Is(err, handover.ErrNotFound) {
			if _, err := r.updateClone(ctx, op.ID, func(o *ledger.EnvOp) error {
				if s := findScratch(o.Cloning.Verify, it.Name); s != nil {
					s.Done = true
				}
				return nil
			}); err != nil {
				return false, err
			}
			r.say("scratch instance %s deleted", it.Name)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading scratch instance %s: %w", it.Name, err)
		}
		gone = false
		if err := r.Verifier.DeleteDBInstance(ctx, it.Name); err != nil {
			return false, fmt.Errorf("deleting scratch instance %s: %w", it.Name, err)
		}
	}
	if !gone {
		r.say("waiting for the scratch instances to be deleted")
	}
	return gone, nil
}

// verifyFinish settles the report and records it on the clone.
func (r *Runner) verifyFinish(ctx context.Context, run *verifyRun) error {
	rep := &run.report
	rep.EndedAt = r.clk.Now()
	rep.Mismatches, rep.Notes = nil, nil
	for _, v := range rep.Volumes {
		switch {
		case v.Error != "" && !v.OK:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("database %s: %s", v.Database, v.Error))
		case !v.OK:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("database %s: its volume differs from %s's at the quiesce point: %s", v.Database, v.From, strings.Join(v.Differences, "; ")))
		case v.Error != "":
			rep.Notes = append(rep.Notes, fmt.Sprintf("database %s: %s", v.Database, v.Error))
		}
	}
	for _, t := range rep.Tables {
		switch {
		case t.Error != "":
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("rds %s table %s: %s", t.Instance, t.Table, t.Error))
		case !t.OK:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("rds %s table %s: %d rows (checksum %.12s), the snapshot's %d (%.12s)", t.Instance, t.Table, t.Rows, t.Sum, t.WantRows, t.WantSum))
		}
	}
	for _, b := range rep.Buckets {
		switch {
		case b.Error != "":
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("bucket %s: %s", b.Bucket, b.Error))
		case !b.OK && len(b.Differences) > 0:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("bucket %s: %s", b.Bucket, strings.Join(b.Differences, "; ")))
		case !b.OK:
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("bucket %s: %d objects (digest %.20s), the copy wrote %d (%.20s)", b.Bucket, b.Objects, b.Digest, b.WantObjects, b.WantDigest))
		}
	}
	if c := rep.Command; c != nil && !c.OK {
		msg := fmt.Sprintf("--verify-cmd exited %d", c.ExitCode)
		if c.Error != "" {
			msg = "--verify-cmd: " + c.Error
		}
		rep.Mismatches = append(rep.Mismatches, msg)
	}
	if run.failed != nil {
		rep.Mismatches = append(rep.Mismatches, "the verify could not finish: "+run.failed.Error())
	}
	rep.OK = len(rep.Mismatches) == 0
	state := VerifyPassed
	if !rep.OK {
		state = VerifyFailed
	}
	_, err := r.updateClone(ctx, rep.CloneOpID, func(o *ledger.EnvOp) error {
		v := o.Cloning.Verify
		rep.Scratch = nil
		for _, s := range v.Scratch {
			rep.Scratch = append(rep.Scratch, ScratchCheck{Name: s.Name, Snapshot: s.ID, Deleted: s.Done})
		}
		b, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("encoding the verify's report: %w", err)
		}
		v.State, v.EndedAt, v.Mismatches, v.Report = state, rep.EndedAt, rep.Mismatches, b
		return nil
	})
	if err != nil {
		rep.Scratch = nil
		return err
	}
	run.finished = true
	r.log.Info("verify ended", "env-op-id", rep.CloneOpID, "state", state, "mismatches", len(rep.Mismatches))
	return nil
}

// cloneVerifier verifies a clone, as a migration does before its drop:
// Runner.Verify (a Runner sets its VerifyClone to itself).
type cloneVerifier interface {
	Verify(ctx context.Context, req VerifyRequest) (*VerifyReport, error)
}

var _ cloneVerifier = (*Runner)(nil)

// scratchVerdict judges r, a resource of op, for the sweeper when it is
// one of op's verify scratch instances (ok): kept while a verify of the
// clone is recorded running (it, or the next run taking it up, deletes
// it), leaked once the clone's verify has ended without deleting it.
func scratchVerdict(op *ledger.EnvOp, r OpResource) (leaked bool, reason string, ok bool) {
	if r.Kind != KindRDS || op.Op != OpClone || op.Cloning == nil || !strings.HasPrefix(r.ID, "verify-") {
		return false, "", false
	}
	rec := &cloneRecord{Plan: &ClonePlan{}}
	if err := json.Unmarshal(op.Cloning.Plan, rec); err != nil || rec.Plan == nil {
		return false, "", false
	}
	if !slices.ContainsFunc(scratchOf(op, rec), func(s ledger.EnvItem) bool { return s.Name == r.ID }) {
		return false, "", false
	}
	if v := op.Cloning.Verify; v != nil && v.State == VerifyRunning {
		return false, fmt.Sprintf("scratch instance of the verify of clone %s started at %s, recorded running: it deletes it when done (a killed one's is deleted by the next handover env verify)", op.ID, v.StartedAt.UTC().Format(time.RFC3339)), true
	}
	return true, fmt.Sprintf("scratch instance of a verify of clone %s that has ended: nothing else deletes it", op.ID), true
}
