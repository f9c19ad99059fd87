package ledger

import (
	"fmt"
	"maps"
	"time"
)

// UpdateState is where a group update (S2 in docs/design.md) stands. States are
// stored by name.
type UpdateState string

// Update states. Succeeded, Failed and Aborted are terminal: Failed means the
// update rolled back after a failure, Aborted that it rolled back because an
// operator asked it to.
const (
	UpdateRunning     UpdateState = "Running"
	UpdateRollingBack UpdateState = "RollingBack"
	UpdateSucceeded   UpdateState = "Succeeded"
	UpdateFailed      UpdateState = "Failed"
	UpdateAborted     UpdateState = "Aborted"
)

// Terminal reports whether no further step follows s.
func (s UpdateState) Terminal() bool {
	return s == UpdateSucceeded || s == UpdateFailed || s == UpdateAborted
}

// ParseUpdateState checks a stored or user-given state name.
func ParseUpdateState(name string) (UpdateState, error) {
	switch s := UpdateState(name); s {
	case UpdateRunning, UpdateRollingBack, UpdateSucceeded, UpdateFailed, UpdateAborted:
		return s, nil
	}
	return "", fmt.Errorf("unknown update state %q (want Running, RollingBack, Succeeded, Failed or Aborted)", name)
}

// TemplateRef names a launch template version.
type TemplateRef struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// UpdateSpec is what the operator asked for; it does not change once the
// update is stored.
type UpdateSpec struct {
	Strategy string `json:"strategy"` // rolling or replace-all
	// Template is the launch template version to roll out, resolved to a
	// number when the update starts.
	Template          TemplateRef   `json:"template"`
	BatchSize         int32         `json:"batch_size,omitempty"`
	MinHealthyPercent int32         `json:"min_healthy_percent,omitempty"`
	Pause             time.Duration `json:"pause,omitempty"`
	Bake              time.Duration `json:"bake,omitempty"`
	SignalTimeout     time.Duration `json:"signal_timeout,omitempty"`
	// MigrationGroup is updated first and must signal within
	// MigrationTimeout; it is scaled to 0 once the main group is done.
	MigrationGroup   string        `json:"migration_group,omitempty"`
	MigrationTimeout time.Duration `json:"migration_timeout,omitempty"`
}

// Replacement is one old instance an update replaces and what replaced it.
type Replacement struct {
	Batch     int    `json:"batch"`
	Rollback  bool   `json:"rollback,omitempty"` // part of the rollback's reverse pass
	Old       string `json:"old"`
	Database  string `json:"database,omitempty"`
	New       string `json:"new,omitempty"`
	Migration string `json:"migration,omitempty"`
	// State is the migration's state as last seen by the update.
	State      string    `json:"state,omitempty"`
	Terminated bool      `json:"terminated,omitempty"` // old instance terminated by the update
	Done       time.Time `json:"done,omitzero"`
}

// UpdateStep is one entry of an update's timeline.
type UpdateStep struct {
	Phase string    `json:"phase"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	Note  string    `json:"note,omitempty"`
}

// Update is one run of `handover update` over a group, kept in the ledger so
// a controller restart resumes it (or rolls it back) where it stood.
// Backends store it whole as JSON next to ID, Group, whether it is terminal,
// CreatedAt and Version, so a new field needs no schema change.
type Update struct {
	ID      string      `json:"id"`
	Group   string      `json:"group"`
	State   UpdateState `json:"state"`
	Version int64       `json:"version"` // compare-and-set version; 0 = not stored
	Spec    UpdateSpec  `json:"spec"`
	// Phase is the step the runner is in, e.g. "migration-group",
	// "batch", "signals", "cutover", "cleanup", "rollback".
	Phase string `json:"phase"`

	// What the group looked like when the update started, so a rollback
	// restores it and replace-all knows N.
	OldTemplate TemplateRef `json:"old_template"`
	// OldGroupVersion is the version as the group named it ("$Latest",
	// "$Default" or a number), restored when the update succeeds.
	OldGroupVersion string `json:"old_group_version,omitempty"`
	// TemplateSet records that the update pointed the group at another
	// version, so a rollback knows to point it back.
	TemplateSet bool `json:"template_set,omitempty"`
	// NewGroupDeleting records that the rollback asked for the new group's
	// deletion, so it is asked once.
	NewGroupDeleting bool  `json:"new_group_deleting,omitempty"`
	OldMin           int32 `json:"old_min"`
	OldMax           int32 `json:"old_max"`
	OldDesired       int32 `json:"old_desired"`

	// Rolling: the old instances in replacement order, grouped in batches,
	// and the batch under way.
	Batches      [][]string    `json:"batches,omitempty"`
	Batch        int           `json:"batch"`
	BatchAt      time.Time     `json:"batch_at,omitzero"` // when the current batch (or its pause/bake) began
	Replacements []Replacement `json:"replacements,omitempty"`

	// Replace-all: the new group and the signals its instances sent.
	NewGroup string            `json:"new_group,omitempty"`
	Signals  map[string]string `json:"signals,omitempty"` // instance → SUCCESS or FAILURE
	// GatesOpen lets the new group's migrations complete their hooks: set
	// once every signal arrived, the point of no return of a replace-all.
	GatesOpen bool `json:"gates_open,omitempty"`
	// SignalDeadline ends the wait for signals (of the new group, or of the
	// migration group while Phase is "migration-group").
	SignalDeadline time.Time `json:"signal_deadline,omitzero"`
	// MigrationInstance is the migration group's instance that must signal.
	MigrationInstance string   `json:"migration_instance,omitempty"`
	MigrationOld      []string `json:"migration_old,omitempty"` // its instances before
	// The migration group before the update, and the version it rolls to.
	MigrationOldTemplate TemplateRef `json:"migration_old_template,omitzero"`
	MigrationTemplate    TemplateRef `json:"migration_template,omitzero"`
	MigrationOldMin      int32       `json:"migration_old_min,omitempty"`
	MigrationOldMax      int32       `json:"migration_old_max,omitempty"`
	MigrationOldDesired  int32       `json:"migration_old_desired,omitempty"`

	AbortRequested bool   `json:"abort_requested,omitempty"`
	Error          string `json:"error,omitempty"` // why it failed or was aborted
	Attempts       int    `json:"attempts,omitempty"`

	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	EndedAt   time.Time    `json:"ended_at,omitzero"`
	Timeline  []UpdateStep `json:"timeline,omitempty"`
}

// Clone returns a deep copy.
func (u *Update) Clone() *Update {
	c := *u
	c.Batches = make([][]string, len(u.Batches))
	for i, b := range u.Batches {
		c.Batches[i] = append([]string(nil), b...)
	}
	if u.Batches == nil {
		c.Batches = nil
	}
	c.Replacements = append([]Replacement(nil), u.Replacements...)
	c.Signals = maps.Clone(u.Signals)
	c.MigrationOld = append([]string(nil), u.MigrationOld...)
	c.Timeline = append([]UpdateStep(nil), u.Timeline...)
	return &c
}

// UpdateQuery filters ListUpdates. Zero fields match everything.
type UpdateQuery struct {
	Unfinished bool   // only non-terminal updates
	Group      string // only updates of this group
}
