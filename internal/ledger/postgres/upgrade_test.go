package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // reads the fixture

	"github.com/handover-dev/handover/internal/ledger/ledgertest"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

// TestUpgradeFromSchema2 builds a PostgreSQL ledger as handover left it at
// schema version 2 (commit d211f14: one table per record kind) — its
// schema, with the rows of the SQLite fixture that release wrote, which had
// the same tables and columns — and checks that opening it keeps every
// record and that they stay writable.
func TestUpgradeFromSchema2(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Start(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	stmts := append([]string{`CREATE TABLE handover_schema (version INTEGER NOT NULL)`}, postgres.Schema[:2]...)
	stmts = append(stmts, `INSERT INTO handover_schema (version) VALUES (2)`)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("building a version 2 ledger: %v", err)
		}
	}

	fx, err := sql.Open("sqlite", "file:"+filepath.Join("..", "sqlite", "testdata", "ledger-schema2.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer fx.Close()
	tables := []struct {
		name, cols string
		bools      map[int]bool // columns that are INTEGER in SQLite and BOOLEAN here
	}{
		{"handover_migrations", "id, database_id, instance_id, state, terminal, version, created_at, body", map[int]bool{4: true}},
		{"handover_databases", "id, version, updated_at, body", nil},
		{"handover_updates", "id, group_name, terminal, version, created_at, body", map[int]bool{2: true}},
		{"handover_events", "id, expires", nil},
		{"handover_leases", "name, holder, token, expires", nil},
	}
	copied := 0
	for _, tb := range tables {
		rows, err := fx.QueryContext(ctx, "SELECT "+tb.cols+" FROM "+tb.name)
		if err != nil {
			t.Fatalf("reading the fixture's %s: %v", tb.name, err)
		}
		n := len(strings.Split(tb.cols, ","))
		marks := make([]string, n)
		for i := range marks {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		insert := "INSERT INTO " + tb.name + " (" + tb.cols + ") VALUES (" + strings.Join(marks, ", ") + ")"
		for rows.Next() {
			vals := make([]any, n)
			ptrs := make([]any, n)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				switch x := v.(type) {
				case int64:
					if tb.bools[i] {
						vals[i] = x != 0
					}
				case []byte:
					vals[i] = string(x)
				}
			}
			if _, err := conn.Exec(ctx, insert, vals...); err != nil {
				t.Fatalf("copying a row of %s: %v", tb.name, err)
			}
			copied++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if copied < 6 {
		t.Fatalf("copied %d rows from the fixture, want at least 6", copied)
	}

	l := open(t, dsn)
	if v, err := l.Store().SchemaVersion(ctx); err != nil || v != len(postgres.Schema) {
		t.Fatalf("schema version after open = %d, %v; want %d", v, err, len(postgres.Schema))
	}
	ledgertest.CheckFixture(t, l)
}
