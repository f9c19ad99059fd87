package postgres_test

import (
	"sync"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *postgres.Ledger {
	t.Helper()
	l, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger { return open(t, pgtest.Start(t)) })
}

// TestSharedDatabase stands in for several controllers: separate pools on
// one database, so racing writes meet only in PostgreSQL.
func TestSharedDatabase(t *testing.T) {
	dsn := pgtest.Start(t)
	ledgertest.RunShared(t, open(t, dsn), open(t, dsn), open(t, dsn))
}

// TestConcurrentOpen: controllers starting together on an empty database
// must create the schema once, not fail on each other's tables.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			l, err := postgres.Open(t.Context(), dsn, nil)
			if err == nil {
				l.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
