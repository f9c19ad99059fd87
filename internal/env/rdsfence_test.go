package env

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pgLocator is RDSLocator for one pgtest database.
type pgLocator struct{ endpoint, user, database string }

func (l pgLocator) DBInstanceState(context.Context, string) (string, string, error) {
	return "available", l.endpoint, nil
}

func (l pgLocator) DBLogin(context.Context, string) (string, string, error) {
	return l.user, l.database, nil
}

// TestPGFence against a real PostgreSQL: fenced, the database refuses an
// INSERT from a session opened after the fence (25006) and the session
// open before it is ended (its INSERT fails, unacknowledged); a second
// fence converges; the lift restores writes, twice over.
func TestPGFence(t *testing.T) {
	dsn := pgtest.Start(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	ctx := t.Context()
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeConn(c) })
		return c
	}
	old := connect()
	if _, err := old.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	f := PGFence{Locate: pgLocator{u.Host, u.User.Username(), db}, SSLMode: "disable"}
	dbs, unfenceable, err := f.RDSFenceTargets(ctx, "pg")
	if err != nil || len(unfenceable) != 0 {
		t.Fatalf("fence targets: %v, unfenceable %v (the superuser owns them all)", err, unfenceable)
	}
	if !slices.Contains(dbs, db) || slices.Contains(dbs, "template1") {
		t.Fatalf("fence targets %v: want %s and no template", dbs, db)
	}
	// The shared server's other databases are fenced too: lift them
	// whatever happens.
	t.Cleanup(func() {
		if err := f.UnfenceRDS(context.Background(), "pg", dbs); err != nil {
			t.Errorf("lifting in cleanup: %v", err)
		}
	})
	ended, err := f.FenceRDS(ctx, "pg", dbs)
	if err != nil {
		t.Fatal(err)
	}
	if ended < 1 {
		t.Errorf("the fence ended %d sessions, want at least the one open before it", ended)
	}
	if _, err := old.Exec(ctx, "INSERT INTO w VALUES (1)"); err == nil {
		t.Errorf("an INSERT on a session open before the fence was acknowledged")
	}
	refused := func(c *pgx.Conn, id int) {
		t.Helper()
		_, err := c.Exec(ctx, "INSERT INTO w VALUES ($1)", id)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25006" {
			t.Errorf("INSERT on a session opened after the fence: %v, want SQLSTATE 25006 read_only_sql_transaction", err)
		}
	}
	refused(connect(), 2)
	if again, _, err := f.RDSFenceTargets(ctx, "pg"); err != nil || slices.Contains(again, db) {
		t.Errorf("fence targets once fenced: %v, %v: want %s left out (read-only already)", again, err, db)
	}
	if _, err := f.FenceRDS(ctx, "pg", dbs); err != nil {
		t.Errorf("fencing again: %v", err)
	}
	refused(connect(), 3)

	for range 2 {
		if err := f.UnfenceRDS(ctx, "pg", dbs); err != nil {
			t.Fatal(err)
		}
		if _, err := connect().Exec(ctx, "INSERT INTO w VALUES (4) ON CONFLICT DO NOTHING"); err != nil {
			t.Errorf("INSERT after the lift: %v", err)
		}
	}
	var n int
	if err := connect().QueryRow(ctx, "SELECT count(*) FROM w").Scan(&n); err != nil || n != 1 {
		t.Errorf("rows in w: %d, %v; want the one written after the lift", n, err)
	}
}
