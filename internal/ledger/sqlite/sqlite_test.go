package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
)

func open(t *testing.T, path string) *ledger.Records {
	t.Helper()
	l, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		return open(t, filepath.Join(t.TempDir(), "ledger.db"))
	})
}

// TestSharedFile stands in for two processes sharing one file: two
// separately opened ledgers, each with its own connection, so their writes
// contend on SQLite's file lock and busy_timeout.
func TestSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ledgertest.RunShared(t, open(t, path), open(t, path))
}

func TestReopenKeepsRecords(t *testing.T) {
	// A '?' and a '#' in the path must not be read as URI syntax.
	path := filepath.Join(t.TempDir(), "dir?x#y", "ledger.db")
	l, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &ledger.Migration{ID: "tok-1", State: ledger.Launching}
	if err := l.CreateMigration(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ledger not at the path given: %v", err)
	}
	l = open(t, path)
	got, err := l.GetMigration(t.Context(), "tok-1")
	if err != nil || got.Version != 1 {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := db.Exec(`UPDATE handover_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), path, nil)
	if err == nil || !strings.Contains(err.Error(), "upgrade handover") {
		t.Fatalf("opening a ledger with a newer schema: %v, want an error saying to upgrade", err)
	}
}

// TestUpgrade: a file written by an older handover gains the newer tables
// when opened, and keeps its records.
func TestUpgrade(t *testing.T) {
	for from := 1; from < len(sqlite.Schema); from++ {
		t.Run(fmt.Sprintf("FromVersion%d", from), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "ledger.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			stmts := append([]string{`CREATE TABLE handover_schema (version INTEGER NOT NULL)`}, sqlite.Schema[:from]...)
			stmts = append(stmts,
				fmt.Sprintf(`INSERT INTO handover_schema (version) VALUES (%d)`, from),
				// A released lease: the token must survive the upgrade.
				`INSERT INTO handover_leases (name, holder, token, expires) VALUES ('old', '', 7, '0001-01-01T00:00:00.000000000Z')`)
			for _, s := range stmts {
				if _, err := db.ExecContext(ctx, s); err != nil {
					t.Fatalf("building a version %d ledger: %v", from, err)
				}
			}

			l := open(t, path)
			var have int
			if err := db.QueryRowContext(ctx, `SELECT version FROM handover_schema`).Scan(&have); err != nil || have != len(sqlite.Schema) {
				t.Fatalf("schema version after open = %d, %v; want %d", have, err, len(sqlite.Schema))
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
