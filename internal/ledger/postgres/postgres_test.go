package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *ledger.Records {
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

// TestUpgrade: a database written by an older handover gains the newer
// tables when opened, and keeps its records.
func TestUpgrade(t *testing.T) {
	for from := 1; from < len(postgres.Schema); from++ {
		t.Run(fmt.Sprintf("FromVersion%d", from), func(t *testing.T) {
			ctx := t.Context()
			dsn := pgtest.Start(t)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			// t.Context() is already cancelled when cleanups run.
			t.Cleanup(func() { conn.Close(context.Background()) })
			stmts := append([]string{`CREATE TABLE handover_schema (version INTEGER NOT NULL)`}, postgres.Schema[:from]...)
			stmts = append(stmts,
				fmt.Sprintf(`INSERT INTO handover_schema (version) VALUES (%d)`, from),
				// A released lease: the token must survive the upgrade.
				`INSERT INTO handover_leases (name, holder, token, expires) VALUES ('old', '', 7, '0001-01-01T00:00:00.000000000Z')`)
			for _, s := range stmts {
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("building a version %d ledger: %v", from, err)
				}
			}

			l := open(t, dsn)
			var have int
			if err := conn.QueryRow(ctx, `SELECT version FROM handover_schema`).Scan(&have); err != nil || have != len(postgres.Schema) {
				t.Fatalf("schema version after open = %d, %v; want %d", have, err, len(postgres.Schema))
			}
			lease, err := l.AcquireLease(ctx, "old", "A", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute)
			if err != nil || lease.Token != 8 {
				t.Errorf("lease from before the upgrade: %+v, %v; want token 8", lease, err)
			}
			u := &ledger.Update{ID: "upd-1", Group: "asg", State: ledger.UpdateRunning}
			if err := l.CreateUpdate(ctx, u); err != nil {
				t.Fatal(err)
			}
			list, err := l.ListUpdates(ctx, ledger.UpdateQuery{Unfinished: true, Group: "asg"})
			if err != nil || len(list) != 1 || list[0].ID != "upd-1" {
				t.Fatalf("ListUpdates after the upgrade = %v, %v; want upd-1", list, err)
			}
		})
	}
}
