package update

import (
	"fmt"
	"strings"
)

// Phase is the step an update is in. The ledger stores it by name
// (ledger.Update.Phase, and each timeline entry), so the names must never
// change: an update written by an older handover resumes by them.
type Phase int

// The phases. Done is the only terminal one; the update's State then says
// how it ended.
const (
	phaseUnknown        Phase = iota
	PhaseMigrationGroup       // the migration group's instance signals first
	PhaseBatch                // rolling: launch, hand over, terminate
	PhaseBake                 // rolling: watch the batch's new instances
	PhasePause                // rolling: wait before the next batch
	PhaseLaunch               // replace-all: create the new group
	PhaseSignals              // replace-all: collect N signals
	PhaseCutover              // replace-all: gates open, hooks complete
	PhaseDeleteOld            // replace-all: delete the old group
	PhaseCleanup              // capacity back, migration group to 0
	PhaseRollback             // undo what the forward pass did
	PhaseRollbackBatch        // rolling rollback: one reverse batch
	PhaseRestore              // capacity and migration group as they were
	PhaseDone
)

var phaseNames = [...]string{
	phaseUnknown:        "",
	PhaseMigrationGroup: "migration-group",
	PhaseBatch:          "batch",
	PhaseBake:           "bake",
	PhasePause:          "pause",
	PhaseLaunch:         "launch",
	PhaseSignals:        "signals",
	PhaseCutover:        "cutover",
	PhaseDeleteOld:      "delete-old",
	PhaseCleanup:        "cleanup",
	PhaseRollback:       "rollback",
	PhaseRollbackBatch:  "rollback-batch",
	PhaseRestore:        "restore",
	PhaseDone:           "done",
}

// Phases lists every phase in the order an update may meet them.
func Phases() []Phase {
	out := make([]Phase, 0, len(phaseNames)-1)
	for p := PhaseMigrationGroup; p <= PhaseDone; p++ {
		out = append(out, p)
	}
	return out
}

// String returns the phase's stored name.
func (p Phase) String() string {
	if p <= phaseUnknown || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// ParsePhase is the inverse of String. An unknown name (a ledger written by
// a newer handover, or a damaged record) is an error naming the known ones.
func ParsePhase(name string) (Phase, error) {
	for i, n := range phaseNames {
		if n == name && Phase(i) != phaseUnknown {
			return Phase(i), nil
		}
	}
	return phaseUnknown, fmt.Errorf("unknown update phase %q (known: %s)", name, strings.Join(phaseNames[1:], ", "))
}

// MarshalText writes the phase by name, as plans carry it in JSON.
func (p Phase) MarshalText() ([]byte, error) {
	if p <= phaseUnknown || int(p) >= len(phaseNames) {
		return nil, fmt.Errorf("marshalling update phase: %s is not a phase", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses a phase name.
func (p *Phase) UnmarshalText(b []byte) error {
	v, err := ParsePhase(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
