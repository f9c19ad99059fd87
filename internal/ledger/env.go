package ledger

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/manifest"
)

// EnvOp is one operation on a whole environment (S3 in docs/design.md):
// a standby that lasts until its resume, and later clones and migrations.
// Like an Update it is advanced one idempotent step at a time under a
// lease, records its intent before each side effect, and is stored whole
// as JSON next to ID, Environment, whether it is terminal and CreatedAt,
// so a new field needs no schema change. Its states are UpdateState's.
type EnvOp struct {
	ID          string `json:"id"`
	Environment string `json:"environment"` // the selector's value
	// SelectorKey is the tag that selects the environment's resources:
	// handover:environment, or aws:cloudformation:stack-name.
	SelectorKey string      `json:"selector_key"`
	Op          string      `json:"op"` // standby, clone
	State       UpdateState `json:"state"`
	Phase       string      `json:"phase"`
	Version     int64       `json:"version"` // compare-and-set version; 0 = not stored

	// Groups are the environment's groups as the operation found them,
	// and what it did to each.
	Groups []EnvGroup `json:"groups,omitempty"`

	// ResumeRequested asks a standby to end: its instances come back and
	// its groups' capacities are restored. Set by a resume, or by an abort
	// of a standby still under way.
	ResumeRequested bool   `json:"resume_requested,omitempty"`
	Abort           bool   `json:"abort,omitempty"` // the resume is an abort (ends Aborted)
	Error           string `json:"error,omitempty"`
	Attempts        int    `json:"attempts,omitempty"`

	// Clone is a clone's plan and what it made.
	Cloning *EnvClone `json:"clone,omitempty"`
	// Migration is a migration's progress: its clone, the entry
	// listener's switch, the drop of the old environment.
	Migration *EnvMigration `json:"migration,omitempty"`
	// Aborting is an abort's progress (handover env abort), once asked.
	Aborting *EnvAbort `json:"aborting,omitempty"`

	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	EndedAt   time.Time    `json:"ended_at,omitzero"`
	Timeline  []UpdateStep `json:"timeline,omitempty"`
}

// EnvGroup is one group of an environment operation: its capacity before
// the operation touched it, and each change the operation made (or may
// have made: every one is recorded before its call).
type EnvGroup struct {
	Name    string `json:"name"`
	Min     int32  `json:"min"`
	Max     int32  `json:"max"`
	Desired int32  `json:"desired"`
	// LoweredMin records that MinSize was (or may have been) set to
	// LoweredTo so the standby's decrements fit.
	LoweredMin bool  `json:"lowered_min,omitempty"`
	LoweredTo  int32 `json:"lowered_to"`
	// Standby are the instances the operation moved (or may have moved)
	// to Standby; Exited those it asked back out.
	Standby []string `json:"standby,omitempty"`
	Exited  []string `json:"exited,omitempty"`
	// Restored records that MinSize and DesiredCapacity are back.
	Restored bool `json:"restored,omitempty"`
}

// EnvClone is a clone's plan and progress.
type EnvClone struct {
	Dest string `json:"dest"`
	// Plan is the plan the clone carries out (env.ClonePlan; opaque to
	// the ledger), fixed when the clone is started.
	Plan json.RawMessage `json:"plan"`
	// Items are what the clone made, or may have made: each is recorded
	// before the call that makes it and completed after, so a run killed
	// in between finds it again (by name or tag) instead of making a
	// second, and nothing it made is forgotten.
	Items []EnvItem `json:"items,omitempty"`
	// QuiescedAt is when the first fence (or standby) call was made;
	// UnquiescedAt when the last lift of it returned. Between them SRC's
	// writes paused.
	QuiescedAt   time.Time `json:"quiesced_at,omitzero"`
	UnquiescedAt time.Time `json:"unquiesced_at,omitzero"`
	// QuiesceHeld records that the clone ended with SRC's databases still
	// fenced: a migration's clone, whose migration lifts the fence after
	// its cutover (or on abort), so no write SRC acknowledges after the
	// snapshots is lost.
	QuiesceHeld bool `json:"quiesce_held,omitempty"`
	// Rewrites are the references rewritten in DST's user data and tags,
	// resolved once DST's names and endpoints are known.
	Rewrites map[string]string `json:"rewrites,omitempty"`

	// Manifests are the content manifests of SRC's databases' data
	// directories, read through each one's fence route while it was
	// fenced for its snapshot (env clone --manifests=false reads none):
	// what env verify compares DST's volumes with.
	Manifests []EnvManifest `json:"manifests,omitempty"`
	// Objects are what each bucket copy left in DST's bucket: its keys
	// and their SHA-256, as the copy compared them.
	Objects []EnvObjects `json:"objects,omitempty"`
	// Verify is the last env verify of this clone, its result and the
	// scratch instances it made.
	Verify *EnvVerify `json:"verify,omitempty"`
}

// EnvManifest is the content manifest of one SRC database's data
// directory at the quiesce point, or why there is none.
type EnvManifest struct {
	Database string           `json:"database"` // SRC's
	Hash     string           `json:"hash,omitempty"`
	Files    int64            `json:"files,omitempty"`
	Bytes    int64            `json:"bytes,omitempty"`
	Entries  []manifest.Entry `json:"entries,omitempty"`
	// Error says why no manifest was read (a service without the
	// route, say); the clone goes on without it.
	Error string `json:"error,omitempty"`
}

// EnvObjects is one bucket copy's result: DST's bucket's keys with the
// SHA-256 (base64, as S3 gives it) of each, the copy's source, and a
// digest over the sorted key and checksum lines. Sums is kept only up to
// MaxRecordedObjects keys, so the record stays within every backend's
// item size (DynamoDB's 400 KB); beyond that the count and digest remain.
type EnvObjects struct {
	Bucket  string            `json:"bucket"` // DST's
	From    string            `json:"from"`   // SRC's
	Count   int               `json:"count"`
	Digest  string            `json:"digest"`
	Sums    map[string]string `json:"sums,omitempty"`
	Partial bool              `json:"partial,omitempty"` // Sums left out: more than MaxRecordedObjects keys
}

// MaxRecordedObjects bounds EnvObjects.Sums.
const MaxRecordedObjects = 1000

// EnvVerify is one env verify of a clone.
type EnvVerify struct {
	State     string    `json:"state"` // running, passed, failed
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Scratch are the RDS instances verify restores from the clone's
	// snapshots to compare DST with: each recorded before its restore
	// call and Done once deleted, so a killed verify's are found by the
	// next (by name) and deleted.
	Scratch    []EnvItem `json:"scratch,omitempty"`
	Mismatches []string  `json:"mismatches,omitempty"`
	// Report is the whole result (env.VerifyReport; opaque here).
	Report json.RawMessage `json:"report,omitempty"`
}

// Passed reports whether the clone's last verify passed.
func (c *EnvClone) Passed() bool { return c != nil && c.Verify != nil && c.Verify.State == "passed" }

// EnvMigration is a migration's progress. Its clone is an operation of
// its own (CloneOp); what the migration itself does (the entry target
// group, the temporary listener, the switch, the drop, the re-tags) is in
// Items, each recorded before its call.
type EnvMigration struct {
	Dest    string `json:"dest"`
	CloneOp string `json:"clone_op,omitempty"`
	// Plan is the migration's plan (env.MigratePlan; opaque to the
	// ledger), fixed when it is started.
	Plan json.RawMessage `json:"plan"`
	// Entry is the entry listener; SourceTG the target group it forwarded
	// to before the cutover (SRC's), EntryTG the copy of DST's target
	// group on the entry listener's load balancer that it forwards to
	// after.
	Entry    string `json:"entry"`
	EntryLB  string `json:"entry_lb"`
	SourceTG string `json:"source_tg"`
	EntryTG  string `json:"entry_tg,omitempty"`
	// Verified records that verify passed; VerifyNote what it said.
	Verified   bool   `json:"verified,omitempty"`
	VerifyNote string `json:"verify_note,omitempty"`
	// Switching is set before the ModifyListener call, SwitchedAt after
	// it returned; SwitchedBack after a fail-back's (or an abort's).
	Switching    bool      `json:"switching,omitempty"`
	SwitchedAt   time.Time `json:"switched_at,omitzero"`
	SwitchedBack bool      `json:"switched_back,omitempty"`
	// LiftedAt is when SRC's fences were lifted after the cutover: at
	// its drop (its RDS fence, before the final snapshot), or when the
	// drop is refused and SRC kept.
	LiftedAt   time.Time     `json:"lifted_at,omitzero"`
	Bake       time.Duration `json:"bake,omitempty"`
	DeleteData bool          `json:"delete_data,omitempty"`
	// SourceKept says why SRC was not dropped, when it was not.
	SourceKept string    `json:"source_kept,omitempty"`
	Items      []EnvItem `json:"items,omitempty"`
	// Unchanged are the physical names the re-tag could not change.
	Unchanged []string `json:"unchanged,omitempty"`
}

// EnvAbort is an abort of an environment operation: where the operation
// stood when it was asked, what the abort deleted, and how SRC compared
// with the inventory recorded at the operation's start.
type EnvAbort struct {
	From        string    `json:"from"` // the operation's phase and state when the abort was asked
	RequestedAt time.Time `json:"requested_at"`
	// Deleted are the resources the abort deleted (or may have: each is
	// recorded before its delete, Done after).
	Deleted []EnvItem `json:"deleted,omitempty"`
	// Checks counts the inventory comparisons that found SRC different;
	// Differences are the last one's.
	Checks      int      `json:"checks,omitempty"`
	Differences []string `json:"differences,omitempty"`
}

// EnvItem is one thing an environment operation did or made.
type EnvItem struct {
	Kind string `json:"kind"` // fence, ebs-snapshot, rds-snapshot, bucket, bucket-copy, target-group, load-balancer, rds, launch-template, database, group
	// Name is the item's name: DST's physical name, or for a fence or a
	// snapshot the SRC database or instance it is of.
	Name string `json:"name"`
	// ID is what the cloud answered: a snapshot id, an ARN, a DNS name.
	ID     string `json:"id,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Done records that the call returned (for a snapshot: that it
	// completed).
	Done bool `json:"done,omitempty"`
	// Started records that a snapshot is pending: its point in time is
	// taken.
	Started bool `json:"started,omitempty"`
}

// Clone returns a deep copy.
func (o *EnvOp) Clone() *EnvOp {
	c := *o
	if o.Cloning != nil {
		cl := *o.Cloning
		cl.Plan = append(json.RawMessage(nil), o.Cloning.Plan...)
		cl.Items = append([]EnvItem(nil), o.Cloning.Items...)
		cl.Rewrites = maps.Clone(o.Cloning.Rewrites)
		cl.Manifests = slices.Clone(o.Cloning.Manifests)
		for i := range cl.Manifests {
			cl.Manifests[i].Entries = slices.Clone(cl.Manifests[i].Entries)
		}
		cl.Objects = slices.Clone(o.Cloning.Objects)
		for i := range cl.Objects {
			cl.Objects[i].Sums = maps.Clone(cl.Objects[i].Sums)
		}
		if v := o.Cloning.Verify; v != nil {
			vc := *v
			vc.Scratch = slices.Clone(v.Scratch)
			vc.Mismatches = slices.Clone(v.Mismatches)
			vc.Report = slices.Clone(v.Report)
			cl.Verify = &vc
		}
		c.Cloning = &cl
	}
	if o.Migration != nil {
		m := *o.Migration
		m.Plan = append(json.RawMessage(nil), o.Migration.Plan...)
		m.Items = append([]EnvItem(nil), o.Migration.Items...)
		m.Unchanged = append([]string(nil), o.Migration.Unchanged...)
		c.Migration = &m
	}
	c.Groups = make([]EnvGroup, len(o.Groups))
	for i, g := range o.Groups {
		g.Standby = append([]string(nil), g.Standby...)
		g.Exited = append([]string(nil), g.Exited...)
		c.Groups[i] = g
	}
	if o.Groups == nil {
		c.Groups = nil
	}
	if o.Aborting != nil {
		a := *o.Aborting
		a.Deleted = append([]EnvItem(nil), o.Aborting.Deleted...)
		a.Differences = append([]string(nil), o.Aborting.Differences...)
		c.Aborting = &a
	}
	c.Timeline = append([]UpdateStep(nil), o.Timeline...)
	return &c
}

// EnvOpQuery filters ListEnvOps. Zero fields match everything.
type EnvOpQuery struct {
	Unfinished  bool   // only non-terminal operations
	Environment string // only operations on this environment
}

var envOps = &kindOf[EnvOp]{
	Kind: Kind{Name: "env-op", Keys: []string{"environment"}},
	meta: func(o *EnvOp) (string, []string, bool, *int64, time.Time) {
		return o.ID, []string{o.Environment}, o.State.Terminal(), &o.Version, o.CreatedAt
	},
	clone: (*EnvOp).Clone,
}

// CreateEnvOp implements Ledger.
func (r *Records) CreateEnvOp(ctx context.Context, o *EnvOp) error {
	return envOps.create(ctx, r.store, &r.cache, o)
}

// GetEnvOp implements Ledger.
func (r *Records) GetEnvOp(ctx context.Context, id string) (*EnvOp, error) {
	return envOps.get(ctx, r.store, &r.cache, id)
}

// SaveEnvOp implements Ledger.
func (r *Records) SaveEnvOp(ctx context.Context, o *EnvOp) error {
	return envOps.save(ctx, r.store, &r.cache, o)
}

// ListEnvOps implements Ledger.
func (r *Records) ListEnvOps(ctx context.Context, q EnvOpQuery) ([]*EnvOp, error) {
	f := Filter{Unfinished: q.Unfinished}
	if q.Environment != "" {
		f.Key, f.Value = "environment", q.Environment
	}
	return envOps.list(ctx, r.store, &r.cache, f)
}
