package sim

import (
	"context"
	"log/slog"
	"time"

	"github.com/handover-dev/handover/internal/clock"

	"github.com/handover-dev/handover/internal/ledger"
)

// crashLedger can kill the controller just before or just after any ledger
// write, so a crash can land between any two of the controller's actions.
type crashLedger struct {
	ledger.Ledger
	w *world
}

func (l *crashLedger) around(fn func() error) error {
	l.w.maybeCrash()
	err := fn()
	l.w.maybeCrash()
	return err
}

func (l *crashLedger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	return l.around(func() error { return l.Ledger.CreateMigration(ctx, m) })
}

func (l *crashLedger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	return l.around(func() error { return l.Ledger.SaveMigration(ctx, m) })
}

func (l *crashLedger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	return l.around(func() error { return l.Ledger.SaveDatabase(ctx, d) })
}

func (l *crashLedger) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	var fresh bool
	err := l.around(func() (err error) { fresh, err = l.Ledger.MarkEvent(ctx, id, now, expires); return err })
	return fresh, err
}

// simTime stamps log records with simulated time, so a replayed seed's log
// reads like the run it describes.
type simTime struct {
	slog.Handler
	clk *clock.Fake
}

func (h simTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = h.clk.Now()
	return h.Handler.Handle(ctx, r)
}

func (h simTime) WithAttrs(as []slog.Attr) slog.Handler {
	return simTime{h.Handler.WithAttrs(as), h.clk}
}

func (h simTime) WithGroup(name string) slog.Handler {
	return simTime{h.Handler.WithGroup(name), h.clk}
}
