// Package ledger defines the durable records handover keeps — migrations,
// databases with their authoritative volume and epoch, group updates,
// releases and their channels, processed event ids and leases — the Ledger interface its consumers use,
// and the one small core, Store, that every backend implements (memory;
// SQLite and PostgreSQL through the shared SQL store in sqlstore;
// DynamoDB).
//
// # Layers
//
// A Store knows records only as a kind, an id, a version, a JSON body and
// the few indexed keys the kind declares; it offers create, get,
// compare-and-set (Swap), list by an indexed key or by "unfinished",
// expiring event marks and leases with fencing tokens. Records (New) puts
// the typed Ledger on any Store: one create/get/save/list wrapper per kind,
// one line each. Every change to a record is a compare-and-set on its
// Version — the one verb is Save — and a lost race returns a
// *ConflictError (errors.Is(err, ErrConflict)): re-read and retry from
// fresh state. A store must never silently overwrite a newer record.
//
// The core is limited to single-record conditional writes and simple
// queries, so a DynamoDB table implements it without transactions.
//
// # Adding a record kind
//
// A kind is one declaration and its wrappers; no backend changes. The
// release kind was added this way:
//
//	// in kind.go, beside migrations, databases and updates:
//	releases = &kindOf[Release]{
//		Kind: Kind{Name: "release", Keys: []string{"channel"}},
//		meta: func(r *Release) (string, []string, bool, *int64, time.Time) {
//			return r.ID, []string{r.Channel}, r.State.Terminal(), &r.Version, r.CreatedAt
//		},
//		clone: (*Release).Clone,
//	}
//
//	// add &releases.Kind to Kinds(), then the wrappers:
//	func (r *Records) CreateRelease(ctx context.Context, v *Release) error {
//		return releases.create(ctx, r.store, &r.cache, v)
//	}
//	func (r *Records) SaveRelease(ctx context.Context, v *Release) error {
//		return releases.save(ctx, r.store, &r.cache, v)
//	}
//	func (r *Records) ListReleases(ctx context.Context, channel string) ([]*Release, error) {
//		return releases.list(ctx, r.store, &r.cache, Filter{Key: "channel", Value: channel})
//	}
//
// and the methods on the Ledger interface, with a fixture in ledgertest.
// The kind's name and the order of its keys are stored: never rename one,
// only append keys (at most MaxKeys).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by every backend. Callers test them with errors.Is.
var (
	// ErrNotFound: the record does not exist. Safe to act on.
	ErrNotFound = errors.New("ledger: record not found")
	// ErrExists: a create found the record already present. For idempotent
	// creates (a migration keyed by its lifecycle token) this means "done".
	ErrExists = errors.New("ledger: record already exists")
	// ErrConflict: a compare-and-set lost a race; the stored version is not
	// the one the caller read. Re-read and retry from fresh state.
	ErrConflict = errors.New("ledger: version conflict")
	// ErrLeaseHeld: another holder owns an unexpired lease.
	ErrLeaseHeld = errors.New("ledger: lease held by another holder")
)

// State is a step of the handover protocol (docs/design.md).
type State int

// The states. Committed and Aborted are terminal. States are stored by
// name, and new ones are appended: States lists them in protocol order.
const (
	StateUnknown State = iota
	Launching
	PreCopying
	Fencing
	StoppingSource
	Snapshotting
	CreatingVolume
	Attaching
	AwaitingHealth
	Completing
	Committed
	RollingBack
	Aborted
	// Retiring (before CONTINUE): the new instance is confirmed fenced
	// under the new epoch, and the old one told to retire (forward to the
	// new one) under the retire cutover.
	Retiring
	// Draining (after CONTINUE, drain cutover): the old instance is taken
	// out of its load balancers and its connections drained.
	Draining
	// Unfencing (after CONTINUE): the new instance is unfenced, now that
	// the old one no longer answers from its own data.
	Unfencing
)

var stateNames = [...]string{
	StateUnknown:   "Unknown",
	Launching:      "Launching",
	PreCopying:     "PreCopying",
	Fencing:        "Fencing",
	StoppingSource: "StoppingSource",
	Snapshotting:   "Snapshotting",
	CreatingVolume: "CreatingVolume",
	Attaching:      "Attaching",
	AwaitingHealth: "AwaitingHealth",
	Completing:     "Completing",
	Committed:      "Committed",
	RollingBack:    "RollingBack",
	Aborted:        "Aborted",
	Retiring:       "Retiring",
	Draining:       "Draining",
	Unfencing:      "Unfencing",
}

// protocolOrder is every real state in the order a migration meets them.
var protocolOrder = []State{
	Launching, PreCopying, Fencing, StoppingSource, Snapshotting, CreatingVolume, Attaching, AwaitingHealth,
	Retiring, Completing, Draining, Unfencing, Committed, RollingBack, Aborted,
}

// States lists every real state, in protocol order.
func States() []State { return append([]State(nil), protocolOrder...) }

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Terminal reports whether no further step follows s.
func (s State) Terminal() bool { return s == Committed || s == Aborted }

// ParseState is the inverse of String.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name && State(i) != StateUnknown {
			return State(i), nil
		}
	}
	return StateUnknown, fmt.Errorf("unknown migration state %q", name)
}

// MarshalText stores states by name, so ledgers stay readable and a
// reordering of the constants cannot corrupt them.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Resource kinds and purposes recorded for everything a migration creates.
const (
	KindSnapshot = "snapshot"
	KindVolume   = "volume"

	PurposePreCopy = "pre-copy"
	PurposeFinal   = "final"
	PurposeTarget  = "target"
)

// Resource is a cloud resource a migration created.
type Resource struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Purpose string `json:"purpose"`
	// Deleted is set once the migration (or the sweeper) deleted it.
	Deleted bool `json:"deleted,omitempty"`
}

// Step is one entry of a migration's timeline.
type Step struct {
	State State     `json:"state"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	Note  string    `json:"note,omitempty"`
	// Calls counts the cloud calls made while the migration was in this
	// step; Throttled and Errors those of them answered with throttling or
	// another error, Paced the calls the controller's own pacer held back.
	// Counted in memory and stored with the step's next save, so a pass
	// that lost a compare-and-set race is not counted.
	Calls     int `json:"calls,omitempty"`
	Throttled int `json:"throttled,omitempty"`
	Errors    int `json:"errors,omitempty"`
	Paced     int `json:"paced,omitempty"`
}

// Migration is one handover, keyed by the lifecycle action token. Backends
// store it whole (as JSON) next to the indexed key fields, so adding a field
// needs no schema change.
type Migration struct {
	ID       string `json:"id"` // lifecycle action token, or "instance:<id>" when found by reconcile
	Group    string `json:"group"`
	Hook     string `json:"hook"`
	Instance string `json:"instance"` // the new instance
	Zone     string `json:"zone,omitempty"`
	Database string `json:"database"` // empty until a pool migration picks one
	// Pool lists the databases a pool hook names; the migration picks one
	// at Launching.
	Pool  []string `json:"pool,omitempty"`
	Cause string   `json:"cause,omitempty"` // event, reconcile
	// Update is the group update (Update.ID) that asked for this database
	// to move; the migration rolls back if that update fails first. Gated
	// migrations also wait, healthy, before completing until the update
	// opens its gates (replace-all: every new instance signalled).
	Update string `json:"update,omitempty"`
	Gated  bool   `json:"gated,omitempty"`
	// GateSince is when a gated migration found its service healthy and
	// began waiting for the gate; from then on only the gate is watched.
	GateSince time.Time `json:"gate_since,omitzero"`
	// Channel is the release channel the group joins (the hook's
	// "channel", S4): the launch completes only once the instance serves
	// the channel's latest release, as the release controller reports.
	Channel string `json:"channel,omitempty"`
	// SeedSnapshot and SizeGiB come from the hook metadata and shape a
	// first-boot volume.
	SeedSnapshot string `json:"seed_snapshot,omitempty"`
	SizeGiB      int32  `json:"size_gib,omitempty"`
	State        State  `json:"state"`
	// Version is the compare-and-set version; 0 means "not yet stored".
	Version int64 `json:"version"`

	Source       string `json:"source,omitempty"`        // instance that held the volume
	SourceVolume string `json:"source_volume,omitempty"` // authoritative volume at start
	SourceFate   string `json:"source_fate,omitempty"`   // running, dead, unreachable, none
	FromEpoch    int64  `json:"from_epoch"`              // database epoch when the migration claimed it
	Fenced       bool   `json:"fenced,omitempty"`        // a fence call was made (or may have been)
	FenceEpoch   int64  `json:"fence_epoch,omitempty"`   // epoch carried by the fence: FromEpoch+1
	// SourceStopped records that the source was stopped as a hard fence, so
	// a rollback knows to start it again.
	SourceStopped bool `json:"source_stopped,omitempty"`
	// Unfenced records that a rollback lifted the fence (or decided it must
	// stay), so a repeated rollback does not try again.
	Unfenced bool `json:"unfenced,omitempty"`
	// Cutover is how the old instance stops answering before the new one
	// takes writes: auto, retire, drain or overlap (handover.Cutover*),
	// chosen at Launching and resolved at Retiring. Empty on migrations
	// recorded before cutovers existed: they run the overlap ordering.
	Cutover string `json:"cutover,omitempty"`
	// Retired records that a retire call was made (or may have been) to
	// the source, before it was made.
	Retired bool `json:"retired,omitempty"`
	// NewUnfenced records that Unfencing opened the new instance to
	// writes, so a repeated pass does not need it to answer again.
	NewUnfenced bool `json:"new_unfenced,omitempty"`
	// DrainStarted records that Draining saw the new instance in service
	// and began taking the old one out of its load balancers (recorded
	// before the first call), so a rollback knows to register it again.
	DrainStarted bool `json:"drain_started,omitempty"`

	PreCopySnapshot string     `json:"pre_copy_snapshot,omitempty"`
	FinalSnapshot   string     `json:"final_snapshot,omitempty"`
	Volume          string     `json:"volume,omitempty"` // the new authoritative-to-be volume
	Resources       []Resource `json:"resources,omitempty"`
	// Intent names the side effect in flight, recorded before it is made so a
	// crash leaves a trail to look up by tag.
	Intent string `json:"intent,omitempty"`

	Result   string `json:"result,omitempty"` // CONTINUE or ABANDON, once decided
	HookDone bool   `json:"hook_done,omitempty"`

	Attempts  int    `json:"attempts,omitempty"` // consecutive failures of the current step
	LastError string `json:"last_error,omitempty"`

	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	StepStartedAt time.Time `json:"step_started_at"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// PacedAt is when the current step was first held back for want of a
	// pacing token (zero when it was not): that wait is the controller's
	// own rationing, not the step being stuck, so it does not count
	// against the step's timeout.
	PacedAt          time.Time     `json:"paced_at,omitzero"`
	LastHeartbeat    time.Time     `json:"last_heartbeat,omitzero"`
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// Deadline is when the hook's overall wait ends: min(48h, 100×heartbeat).
	Deadline time.Time `json:"deadline,omitzero"`
	// TerminateHolds are terminate lifecycle actions of the source, held
	// until this migration ends so the old instance keeps serving reads.
	TerminateHolds []HookRef `json:"terminate_holds,omitempty"`

	// HookStartedAt is when the instance entered Pending:Wait (the event's
	// time): the hook's overall deadline counts from it.
	HookStartedAt time.Time `json:"hook_started_at,omitzero"`

	Timeline []Step `json:"timeline,omitempty"`
}

// HookRef names a lifecycle action. Held terminate actions also carry their
// hook's heartbeat timeout and when they were last kept alive.
type HookRef struct {
	Group    string `json:"group"`
	Hook     string `json:"hook"`
	Token    string `json:"token"`
	Instance string `json:"instance"`

	Timeout  time.Duration `json:"timeout,omitempty"`
	Since    time.Time     `json:"since,omitzero"`
	LastBeat time.Time     `json:"last_beat,omitzero"`
}

// Clone returns a deep copy, so callers can mutate without aliasing a
// backend's stored record.
func (m *Migration) Clone() *Migration {
	c := *m
	c.Resources = append([]Resource(nil), m.Resources...)
	c.Timeline = append([]Step(nil), m.Timeline...)
	c.TerminateHolds = append([]HookRef(nil), m.TerminateHolds...)
	c.Pool = append([]string(nil), m.Pool...)
	return &c
}

// Database is the ledger's truth about one database: which volume is
// authoritative and under which epoch (the fencing token).
type Database struct {
	ID       string `json:"id"`
	Volume   string `json:"volume,omitempty"` // authoritative volume; empty before first boot
	Zone     string `json:"zone,omitempty"`
	Instance string `json:"instance,omitempty"` // instance the volume was handed to
	Group    string `json:"group,omitempty"`    // Auto Scaling group the database lives in
	Epoch    int64  `json:"epoch"`
	// BaseSnapshot is the latest snapshot kept by policy as the base of the
	// next pre-copy.
	BaseSnapshot string `json:"base_snapshot,omitempty"`
	// SeedSnapshot is the snapshot the database's first boot creates its
	// volume from when the launch hook's metadata names none: one per
	// database, where a pool's hook has one for the whole pool (an
	// environment clone seeds each of DST's databases from its own
	// snapshot). Unused once the database has a volume.
	SeedSnapshot string `json:"seed_snapshot,omitempty"`
	// Claim is the id of the migration currently moving this database; only
	// the claimant may fence, commit or release. Empty when idle.
	Claim string `json:"claim,omitempty"`
	// TerminateHolds are terminate actions of the instance holding the
	// database, held until a replacement's migration claims it (and takes
	// them over) or Config.TerminateHoldMax runs out.
	TerminateHolds []HookRef `json:"terminate_holds,omitempty"`
	// ReplaceBy names the group update that wants this database off its
	// instance: the next pool migration may take it although its instance
	// is healthy. Gated: that migration must wait for the update's gates.
	// Both are cleared when a migration commits the database elsewhere.
	ReplaceBy string `json:"replace_by,omitempty"`
	Gated     bool   `json:"gated,omitempty"`
	// DroppedAt and DroppedBy record that an environment operation (its
	// id) dropped the database: its environment is deleted, or being
	// deleted. The core never claims, heals, pools or holds terminations
	// for a dropped database, the sweeper no longer counts its volume and
	// base snapshot as needed, and environment discovery skips it. The
	// record is kept: it says what became of the database.
	DroppedAt time.Time `json:"dropped_at,omitzero"`
	DroppedBy string    `json:"dropped_by,omitempty"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Dropped reports whether an environment operation dropped the database.
func (d *Database) Dropped() bool { return !d.DroppedAt.IsZero() }

// Clone returns a deep copy.
func (d *Database) Clone() *Database {
	c := *d
	c.TerminateHolds = append([]HookRef(nil), d.TerminateHolds...)
	return &c
}

// Lease is a named, expiring lock with a fencing token that increases on
// every change of holder.
type Lease struct {
	Name    string    `json:"name"`
	Holder  string    `json:"holder"`
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
}

// MigrationQuery filters ListMigrations. Zero fields match everything.
type MigrationQuery struct {
	Unfinished bool   // only non-terminal migrations
	Database   string // only this database
	Instance   string // only migrations whose new instance is this one
}

// Ledger is what every backend implements. All methods are safe for
// concurrent use by several goroutines and, for shared backends, several
// processes.
//
// Rules every backend keeps (ledgertest checks each):
//   - a record, event id or lease is expired once now >= its expiry;
//   - a duplicate MarkEvent does not extend the expiry;
//   - a failed create, update or put leaves the caller's Version unchanged;
//   - releasing a lease keeps its token, so the next holder still gets a
//     higher one; a holder re-acquiring its own expired lease that nobody
//     took in between keeps the token;
//   - AcquireLease refuses an empty holder or a ttl <= 0;
//   - times survive to at least the microsecond (SQL backends refuse years
//     outside 1–9999).
//
// SaveDatabase reports an existing record as ErrConflict (it is a
// compare-and-set from version 0), where CreateMigration reports ErrExists
// (an idempotent create keyed by the lifecycle token).
type Ledger interface {
	// CreateMigration stores m with Version 1 (and sets m.Version). It returns
	// ErrExists if a migration with that id is stored. Safe to repeat.
	CreateMigration(ctx context.Context, m *Migration) error
	// GetMigration returns a copy of the stored migration, or ErrNotFound.
	GetMigration(ctx context.Context, id string) (*Migration, error)
	// SaveMigration replaces the stored migration if its version equals
	// m.Version, then sets m.Version to the new version. It returns
	// ErrConflict on a version mismatch and ErrNotFound if absent.
	SaveMigration(ctx context.Context, m *Migration) error
	// ListMigrations returns copies of the matching migrations ordered by
	// CreatedAt, then ID.
	ListMigrations(ctx context.Context, q MigrationQuery) ([]*Migration, error)

	// GetDatabase returns a copy of the stored database, or ErrNotFound.
	GetDatabase(ctx context.Context, id string) (*Database, error)
	// SaveDatabase creates d when d.Version is 0 (ErrConflict if it exists),
	// otherwise replaces it if the stored version equals d.Version
	// (ErrConflict if not, ErrNotFound if absent). On success d.Version is
	// the new version.
	SaveDatabase(ctx context.Context, d *Database) error
	// ListDatabases returns copies of all databases ordered by ID.
	ListDatabases(ctx context.Context) ([]*Database, error)

	// EventSeen reports whether event id is recorded as processed and not
	// expired at now. It changes nothing.
	EventSeen(ctx context.Context, id string, now time.Time) (bool, error)
	// MarkEvent records event id as processed until expires. It returns true
	// if the id was not recorded (or its record had expired at now), false if
	// it is a duplicate. Safe to repeat.
	MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error)
	// PruneEvents deletes event records expired at now and returns how many.
	PruneEvents(ctx context.Context, now time.Time) (int, error)

	// AcquireLease grants the named lease to holder until now+ttl if it is
	// free, expired, or already held by holder (a renewal keeps the token; a
	// new holder gets token+1). Otherwise it returns ErrLeaseHeld and the
	// current lease.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease frees l if it is still held by l.Holder with l.Token. A
	// lease already taken over by another holder is left alone (nil error).
	ReleaseLease(ctx context.Context, l Lease) error
	// ListLeases returns the leases held at now (a holder, and now before
	// their expiry) ordered by name. Released and expired ones are left
	// out: they are nobody's.
	ListLeases(ctx context.Context, now time.Time) ([]Lease, error)

	// CreateUpdate stores u with Version 1 (and sets u.Version). It returns
	// ErrExists if an update with that id is stored.
	CreateUpdate(ctx context.Context, u *Update) error
	// GetUpdate returns a copy of the stored update, or ErrNotFound.
	GetUpdate(ctx context.Context, id string) (*Update, error)
	// SaveUpdate replaces the stored update if its version equals u.Version,
	// then sets u.Version to the new version. It returns ErrConflict on a
	// version mismatch and ErrNotFound if absent.
	SaveUpdate(ctx context.Context, u *Update) error
	// ListUpdates returns copies of the matching updates ordered by
	// CreatedAt, then ID.
	ListUpdates(ctx context.Context, q UpdateQuery) ([]*Update, error)

	// CreateEnvOp stores o with Version 1 (and sets o.Version). It returns
	// ErrExists if an operation with that id is stored.
	CreateEnvOp(ctx context.Context, o *EnvOp) error
	// GetEnvOp returns a copy of the stored operation, or ErrNotFound.
	GetEnvOp(ctx context.Context, id string) (*EnvOp, error)
	// SaveEnvOp replaces the stored operation if its version equals
	// o.Version, then sets o.Version to the new version. It returns
	// ErrConflict on a version mismatch and ErrNotFound if absent.
	SaveEnvOp(ctx context.Context, o *EnvOp) error
	// ListEnvOps returns copies of the matching operations ordered by
	// CreatedAt, then ID.
	ListEnvOps(ctx context.Context, q EnvOpQuery) ([]*EnvOp, error)
	// CreateRelease stores v with Version 1 (and sets v.Version). It
	// returns ErrExists if a release with that id is stored.
	CreateRelease(ctx context.Context, v *Release) error
	// GetRelease returns a copy of the stored release, or ErrNotFound.
	GetRelease(ctx context.Context, id string) (*Release, error)
	// SaveRelease replaces the stored release if its version equals
	// v.Version (ErrConflict if not, ErrNotFound if absent).
	SaveRelease(ctx context.Context, v *Release) error
	// ListReleases returns copies of a channel's releases (every channel's
	// when channel is empty) ordered by CreatedAt, then ID.
	ListReleases(ctx context.Context, channel string) ([]*Release, error)
	// GetChannel returns a copy of the stored channel, or ErrNotFound.
	GetChannel(ctx context.Context, id string) (*Channel, error)
	// SaveChannel creates c when c.Version is 0 (ErrConflict if it
	// exists), otherwise replaces it if the stored version equals
	// c.Version (ErrConflict if not, ErrNotFound if absent).
	SaveChannel(ctx context.Context, c *Channel) error
	// ListChannels returns copies of all channels ordered by ID.
	ListChannels(ctx context.Context) ([]*Channel, error)

	// Close releases the backend's resources.
	Close() error
}
