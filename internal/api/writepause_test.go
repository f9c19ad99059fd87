package api

import (
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

func TestWritePause(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := func(ss ...any) []ledger.Step {
		var out []ledger.Step
		for i := 0; i < len(ss); i += 2 {
			out = append(out, ledger.Step{State: ss[i].(ledger.State), Start: at(ss[i+1].(float64))})
		}
		return out
	}
	now := at(100)
	tests := []struct {
		name  string
		steps []ledger.Step
		want  time.Duration
	}{
		{"committed", steps(ledger.Launching, 0.0, ledger.PreCopying, 1.0, ledger.Fencing, 3.0, ledger.Snapshotting, 3.5, ledger.Committed, 4.25), 1250 * time.Millisecond},
		{"first boot never fences", steps(ledger.Launching, 0.0, ledger.CreatingVolume, 1.0, ledger.Committed, 2.0), 0},
		{"aborted after the fence", steps(ledger.Launching, 0.0, ledger.Fencing, 1.0, ledger.RollingBack, 2.0, ledger.Aborted, 5.0), 4 * time.Second},
		{"still fenced: until now", steps(ledger.Launching, 0.0, ledger.Fencing, 90.0, ledger.Snapshotting, 91.0), 10 * time.Second},
		{"fenced twice: from the first", steps(ledger.Fencing, 1.0, ledger.Snapshotting, 2.0, ledger.Fencing, 3.0, ledger.Committed, 4.0), 3 * time.Second},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WritePause(tt.steps, now); got != tt.want {
				t.Errorf("WritePause = %s, want %s", got, tt.want)
			}
		})
	}
}
