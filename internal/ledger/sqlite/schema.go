package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
)

// schema holds one entry per schema version: schema[i] upgrades version i to
// i+1. Entries are append-only — never edit a shipped one; add the next.
//
// Records are stored whole as JSON (body) next to the columns that are
// queried, so adding a field to a record needs no entry here. Times used
// for ordering and expiry are fixed-width UTC text with nanoseconds (see
// timeKey), which sorts bytewise in time order.
var schema = []string{
	// Version 1.
	`
CREATE TABLE handover_migrations (
	id          TEXT PRIMARY KEY,
	database_id TEXT NOT NULL,
	instance_id TEXT NOT NULL,
	state       TEXT NOT NULL,
	terminal    INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	created_at  TEXT NOT NULL,
	body        TEXT NOT NULL
);
CREATE INDEX handover_migrations_order ON handover_migrations (created_at, id);
CREATE INDEX handover_migrations_unfinished ON handover_migrations (created_at, id) WHERE terminal = 0;
CREATE INDEX handover_migrations_database ON handover_migrations (database_id, created_at, id);
CREATE INDEX handover_migrations_instance ON handover_migrations (instance_id, created_at, id);

CREATE TABLE handover_databases (
	id         TEXT PRIMARY KEY,
	version    INTEGER NOT NULL,
	updated_at TEXT NOT NULL,
	body       TEXT NOT NULL
);

CREATE TABLE handover_events (
	id      TEXT PRIMARY KEY,
	expires TEXT NOT NULL
);
CREATE INDEX handover_events_expires ON handover_events (expires);

CREATE TABLE handover_leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL, -- empty once released; the row stays to keep the token
	token   INTEGER NOT NULL,
	expires TEXT NOT NULL
);
`,
	// Version 2: group updates. group_name because GROUP is a keyword.
	`
CREATE TABLE handover_updates (
	id         TEXT PRIMARY KEY,
	group_name TEXT NOT NULL,
	terminal   INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	body       TEXT NOT NULL
);
CREATE INDEX handover_updates_order ON handover_updates (created_at, id);
CREATE INDEX handover_updates_unfinished ON handover_updates (created_at, id) WHERE terminal = 0;
CREATE INDEX handover_updates_group ON handover_updates (group_name, created_at, id);
`,
}

// migrate brings the schema up to date. BEGIN IMMEDIATE takes the write lock
// before reading the version, so two processes opening a new file at once
// cannot both create the tables.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("locking the database: %w", err)
	}
	defer func() {
		if err != nil {
			// Use a fresh context: a cancelled ctx must not leave the
			// connection inside a transaction.
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS handover_schema (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var have sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version) FROM handover_schema`).Scan(&have); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	v := int(have.Int64)
	if v > len(schema) {
		return fmt.Errorf("the ledger has schema version %d but this handover knows only up to %d: upgrade handover", v, len(schema))
	}
	for ; v < len(schema); v++ {
		if _, err := conn.ExecContext(ctx, schema[v]); err != nil {
			return fmt.Errorf("upgrading the schema to version %d: %w", v+1, err)
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM handover_schema`); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO handover_schema (version) VALUES (?)`, v+1); err != nil {
			return err
		}
		logger.Info("ledger schema upgraded", "schema-version", v+1)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("committing the schema: %w", err)
	}
	return nil
}
