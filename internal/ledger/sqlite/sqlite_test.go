package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
)

func open(t *testing.T, path string) *sqlite.Ledger {
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
