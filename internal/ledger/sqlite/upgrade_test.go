package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
)

// TestUpgradeFromSchema2 opens a ledger file written by handover at commit
// d211f14 (schema version 2: one table per record kind) and checks that every
// record is still there and writable.
func TestUpgradeFromSchema2(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "ledger-schema2.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("opening the schema-2 ledger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if v, err := l.Store().SchemaVersion(t.Context()); err != nil || v != len(sqlite.Schema) {
		t.Fatalf("schema version after open = %d, %v; want %d", v, err, len(sqlite.Schema))
	}
	ledgertest.CheckFixture(t, l)
}
