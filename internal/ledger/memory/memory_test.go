package memory_test

import (
	"fmt"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		l := memory.New()
		t.Cleanup(func() { l.Close() })
		return l
	})
}

// The simulator runs a ledger per seed; these keep the per-operation cost
// visible: go test -bench . ./internal/ledger/memory
func BenchmarkGetUpdate(b *testing.B) {
	l, ctx := memory.New(), b.Context()
	m := &ledger.Migration{ID: "tok", State: ledger.Launching, Timeline: make([]ledger.Step, 8)}
	for i := range m.Timeline {
		m.Timeline[i].State = ledger.PreCopying
	}
	if err := l.CreateMigration(ctx, m); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m, err := l.GetMigration(ctx, "tok")
		if err != nil {
			b.Fatal(err)
		}
		m.Attempts++
		if err := l.SaveMigration(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListUnfinished(b *testing.B) {
	l, ctx := memory.New(), b.Context()
	for i := range 50 {
		m := &ledger.Migration{ID: fmt.Sprintf("tok-%02d", i), State: ledger.State(1 + i%12)}
		if err := l.CreateMigration(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := l.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true}); err != nil {
			b.Fatal(err)
		}
	}
}
