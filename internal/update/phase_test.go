package update

import (
	"encoding/json"
	"strings"
	"testing"
)

// The stored names: ledgers written by earlier releases hold exactly
// these, so changing one strands every update stored under it.
var storedPhaseNames = map[Phase]string{
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

func TestPhaseRoundTrip(t *testing.T) {
	if got, want := len(Phases()), len(storedPhaseNames); got != want {
		t.Errorf("Phases() lists %d phases, the stored names %d", got, want)
	}
	for _, p := range Phases() {
		t.Run(p.String(), func(t *testing.T) {
			if want := storedPhaseNames[p]; p.String() != want {
				t.Errorf("Phase(%d).String() = %q, stored as %q", int(p), p.String(), want)
			}
			got, err := ParsePhase(p.String())
			if err != nil || got != p {
				t.Errorf("ParsePhase(%q) = %v, %v; want %v", p.String(), got, err, p)
			}
			b, err := json.Marshal(PlanStep{Phase: p})
			if err != nil || !strings.Contains(string(b), `"phase":"`+p.String()+`"`) {
				t.Fatalf("json.Marshal = %s, %v", b, err)
			}
			var back PlanStep
			if err := json.Unmarshal(b, &back); err != nil || back.Phase != p {
				t.Errorf("json round trip = %v, %v; want %v", back.Phase, err, p)
			}
		})
	}
}

func TestParsePhaseUnknown(t *testing.T) {
	for _, name := range []string{"", "Batch", "blue-green", " batch", "Phase(2)"} {
		t.Run(name, func(t *testing.T) {
			p, err := ParsePhase(name)
			if err == nil {
				t.Fatalf("ParsePhase(%q) = %v, want an error", name, p)
			}
			errContains(t, err, "unknown update phase", `"`+name+`"`, "known: migration-group, batch,", "done")
		})
	}
	if _, err := Phase(0).MarshalText(); err == nil {
		t.Error("the zero Phase marshals")
	}
	if s := Phase(99).String(); s != "Phase(99)" {
		t.Errorf("Phase(99).String() = %q", s)
	}
}

// An update stored in a phase this build does not know does not step: it
// fails like any step, with an error naming the phase, and nothing is
// changed in the cloud.
func TestAdvanceUnknownPhase(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	u.Phase = "blue-green"
	if err := e.led.SaveUpdate(e.ctx, u); err != nil {
		t.Fatal(err)
	}
	calls := len(e.cloud.calls())
	err := e.r.Advance(e.ctx, u.ID)
	errContains(t, err, "update "+u.ID, `unknown update phase "blue-green"`)
	if got := e.upd(u.ID); got.Attempts != 1 || got.Phase != "blue-green" {
		t.Errorf("after a failed step: attempts %d, phase %q", got.Attempts, got.Phase)
	}
	if got := e.cloud.calls()[calls:]; len(got) != 0 {
		t.Errorf("cloud calls %v", got)
	}
}
