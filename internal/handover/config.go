package handover

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Config tunes the state machine. Start from DefaultConfig.
type Config struct {
	// Holder names this controller in leases; controllers sharing a ledger
	// must use distinct holders.
	Holder string
	// LeaseTTL bounds how long a crashed controller keeps a migration from
	// the others. A live controller renews the lease once half of it has
	// run out (see package lease), so it can be short; it must be, since nobody heartbeats the migration's
	// hook while a dead controller's lease runs (hooks may time out after
	// as little as 30 s).
	LeaseTTL time.Duration

	// HookPrefix, when set, limits handover to lifecycle hooks whose name
	// starts with it ("handover" matches "handover-launch" and
	// "handover-terminate"): actions of other hooks on the same groups
	// belong to someone else and are left alone. Empty means every hook.
	HookPrefix string

	// PreCopy takes an incremental snapshot while writes continue, so the
	// fenced snapshot carries only the delta.
	PreCopy bool
	// Device is the device name volumes are attached under.
	Device string
	// DefaultSizeGiB sizes a first-boot volume when the hook metadata names
	// none.
	DefaultSizeGiB int32

	// StepTimeout bounds each state; SnapshotTimeout replaces it for the
	// states that wait on snapshots and volumes.
	StepTimeout     time.Duration
	SnapshotTimeout time.Duration
	// MaxAttempts is how many consecutive failures one step may have before
	// the migration rolls back.
	MaxAttempts int
	// UnreachableAttempts is how many fence calls may fail to reach a
	// running source before it is stopped instead (the hard fence).
	UnreachableAttempts int
	// RetryBase and RetryMax bound the back-off between failed attempts.
	RetryBase time.Duration
	RetryMax  time.Duration
	// PollInterval is how soon a step that waits on the cloud looks again.
	PollInterval time.Duration
	// DefaultHeartbeatTimeout is used when a hook's timeout cannot be read.
	DefaultHeartbeatTimeout time.Duration
	// DeadlineMargin: a migration rolls back this long before the hook's
	// overall deadline rather than let the default result win.
	DeadlineMargin time.Duration

	// EventTTL is how long processed event ids are remembered.
	EventTTL time.Duration
	// SweepGrace protects resources of migrations the ledger does not know
	// (yet) from the sweeper.
	SweepGrace time.Duration
	// TerminateHoldMax bounds how long a terminate action of an instance
	// that still holds a database waits for a replacement to appear.
	TerminateHoldMax time.Duration

	// Cutover is how the old instance stops answering from its data
	// before the new one takes writes (CutoverAuto, CutoverRetire,
	// CutoverDrain, CutoverOverlap); a hook's metadata may choose another
	// for its databases ("cutover").
	Cutover string
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Holder:                  "controller",
		LeaseTTL:                20 * time.Second,
		PreCopy:                 true,
		Device:                  "/dev/sdf",
		DefaultSizeGiB:          8,
		StepTimeout:             10 * time.Minute,
		SnapshotTimeout:         2 * time.Hour,
		MaxAttempts:             8,
		UnreachableAttempts:     3,
		RetryBase:               2 * time.Second,
		RetryMax:                time.Minute,
		PollInterval:            5 * time.Second,
		DefaultHeartbeatTimeout: time.Hour,
		DeadlineMargin:          2 * time.Minute,
		EventTTL:                24 * time.Hour,
		SweepGrace:              30 * time.Minute,
		TerminateHoldMax:        10 * time.Minute,
		Cutover:                 CutoverAuto,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Holder == "" {
		errs = append(errs, errors.New("holder must not be empty"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"lease TTL", c.LeaseTTL}, {"step timeout", c.StepTimeout}, {"snapshot timeout", c.SnapshotTimeout},
		{"retry base", c.RetryBase}, {"retry max", c.RetryMax}, {"poll interval", c.PollInterval},
		{"default heartbeat timeout", c.DefaultHeartbeatTimeout}, {"event TTL", c.EventTTL},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts must be at least 1, got %d", c.MaxAttempts))
	}
	if c.UnreachableAttempts < 1 {
		errs = append(errs, fmt.Errorf("unreachable attempts must be at least 1, got %d", c.UnreachableAttempts))
	}
	if c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("retry max %s is below retry base %s", c.RetryMax, c.RetryBase))
	}
	if c.Device == "" {
		errs = append(errs, errors.New("device must not be empty"))
	}
	if err := ValidCutover(c.Cutover); err != nil {
		errs = append(errs, err)
	}
	if c.DefaultSizeGiB <= 0 {
		errs = append(errs, fmt.Errorf("default size must be at least 1 GiB, got %d", c.DefaultSizeGiB))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"sweep grace", c.SweepGrace}, {"deadline margin", c.DeadlineMargin}, {"terminate hold max", c.TerminateHoldMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

// timeout returns how long state s may last.
func (c Config) timeout(s ledger.State) time.Duration {
	switch s {
	case ledger.PreCopying, ledger.Snapshotting, ledger.CreatingVolume:
		return c.SnapshotTimeout
	}
	return c.StepTimeout
}

// Metadata is what a launch hook's NotificationMetadata tells handover. It
// is either a bare database id ("orders") or a JSON object. A group whose
// instances each hold their own database (one per tenant) names a pool
// instead: {"databases":["a","b"]}, or {"database":"t","count":3} for t-1,
// t-2 and t-3; each new instance then takes the pool's database that needs
// an instance (see Controller.pick).
type Metadata struct {
	Database     string   `json:"database,omitempty"`
	Databases    []string `json:"databases,omitempty"`
	Count        int      `json:"count,omitempty"`
	SeedSnapshot string   `json:"seed_snapshot,omitempty"`
	SizeGiB      int32    `json:"size_gib,omitempty"`
	// Cutover chooses the cutover for these databases (Config.Cutover
	// when empty): "auto", "retire", "drain" or "overlap".
	Cutover string `json:"cutover,omitempty"`
	// Channel joins the group to a release channel (S4, package
	// release): its instances get the channel's latest release on a
	// volume of their own. With no database, the launch is the release
	// controller's alone and no migration is started for it.
	Channel string `json:"channel,omitempty"`
}

// ReleaseOnly reports whether md names a release channel and no database:
// a stateless group whose launches are no migration's business.
func (md Metadata) ReleaseOnly() bool {
	return md.Channel != "" && md.Database == "" && len(md.Databases) == 0
}

// maxPool bounds a pool. AWS caps NotificationMetadata at 1023 characters;
// the count form can name more than fit, but every launch lists the pool's
// databases, so keep it to what one controller reads cheaply.
const maxPool = 1000

// Pool returns the databases a pool names, or nil for a single database.
func (md Metadata) Pool() []string {
	if md.Count > 0 {
		out := make([]string, md.Count)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%d", md.Database, i+1)
		}
		return out
	}
	return md.Databases
}

// TagGroupChannel on an Auto Scaling group joins it to a release channel
// (its value), as "channel" in its launch hook's metadata does. Where both
// are set the metadata's wins: it is the hook's own, the more specific.
const TagGroupChannel = "handover:channel"

// ParseMetadata reads a hook's NotificationMetadata.
func ParseMetadata(s string) (Metadata, error) { return ParseLaunchMetadata(s, "") }

// ParseLaunchMetadata reads a launch hook's NotificationMetadata for a
// group whose TagGroupChannel tag is groupChannel ("" for none): the tag
// gives the channel when the metadata names none, and a tagged group's
// hook may then have no metadata at all (a release-only group).
func ParseLaunchMetadata(s, groupChannel string) (Metadata, error) {
	tagChannel := func() error {
		if err := ledger.ValidReleaseName("tag "+TagGroupChannel, groupChannel); err != nil {
			return fmt.Errorf("the group's %w", err)
		}
		return nil
	}
	s = strings.TrimSpace(s)
	if s == "" && groupChannel != "" {
		if err := tagChannel(); err != nil {
			return Metadata{}, err
		}
		return Metadata{Channel: groupChannel}, nil
	}
	if s == "" {
		return Metadata{}, errors.New(`hook NotificationMetadata is empty: set it to the database id, e.g. {"database":"orders"}`)
	}
	var md Metadata
	if strings.HasPrefix(s, "{") {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&md); err != nil {
			return Metadata{}, fmt.Errorf(`parsing hook NotificationMetadata %q: %w (expected {"database":"ID","seed_snapshot":"snap-…","size_gib":N,"cutover":"auto|retire|drain|overlap","channel":"C"}, {"databases":["ID",…]} or {"database":"PREFIX","count":N})`, s, err)
		}
	} else {
		md.Database = s
	}
	if md.Channel == "" && groupChannel != "" {
		if err := tagChannel(); err != nil {
			return Metadata{}, err
		}
		md.Channel = groupChannel
	}
	switch {
	case len(md.Databases) > 0 && (md.Database != "" || md.Count != 0):
		return Metadata{}, fmt.Errorf(`hook NotificationMetadata %q sets both "databases" and "database"/"count": use one form`, s)
	case md.Count < 0 || md.Count > maxPool:
		return Metadata{}, fmt.Errorf(`"count" %d in hook NotificationMetadata must be between 1 and %d`, md.Count, maxPool)
	case len(md.Databases) > maxPool:
		return Metadata{}, fmt.Errorf(`hook NotificationMetadata names %d databases; at most %d`, len(md.Databases), maxPool)
	case md.Database == "" && len(md.Databases) == 0 && md.Channel == "":
		return Metadata{}, fmt.Errorf(`hook NotificationMetadata %q names no database: set "database" (or "channel", or the group's %s tag, for a group that only runs releases)`, s, TagGroupChannel)
	case md.Database == "" && len(md.Databases) == 0 && (md.Count != 0 || md.SeedSnapshot != "" || md.SizeGiB != 0 || md.Cutover != ""):
		return Metadata{}, fmt.Errorf(`hook NotificationMetadata %q sets state settings but names no database: set "database"`, s)
	}
	if md.Channel != "" {
		if err := ledger.ValidReleaseName(`"channel"`, md.Channel); err != nil {
			return Metadata{}, fmt.Errorf("hook NotificationMetadata: %w", err)
		}
	}
	seen := make(map[string]bool)
	for _, id := range append([]string{md.Database}, md.Pool()...) {
		if id == "" && (len(md.Databases) > 0 || md.ReleaseOnly()) {
			continue
		}
		if id == "" || strings.ContainsAny(id, " \t\n/") || len(id) > 128 {
			return Metadata{}, fmt.Errorf("database id %q in hook NotificationMetadata must be 1 to 128 characters without spaces or slashes", id)
		}
		if seen[id] && id != md.Database {
			return Metadata{}, fmt.Errorf("database id %q appears twice in hook NotificationMetadata", id)
		}
		seen[id] = true
	}
	if md.SeedSnapshot != "" && !strings.HasPrefix(md.SeedSnapshot, "snap-") {
		return Metadata{}, fmt.Errorf("seed_snapshot %q in hook NotificationMetadata is not a snapshot id (snap-…)", md.SeedSnapshot)
	}
	if md.SizeGiB < 0 {
		return Metadata{}, fmt.Errorf("size_gib %d in hook NotificationMetadata must be positive", md.SizeGiB)
	}
	if md.Cutover != "" {
		if err := ValidCutover(md.Cutover); err != nil {
			return Metadata{}, fmt.Errorf("hook NotificationMetadata: %w", err)
		}
	}
	return md, nil
}
