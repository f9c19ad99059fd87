package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaLock is the advisory lock key that serialises schema upgrades
// between controllers starting at the same time ("handover" in ASCII).
const schemaLock = 0x68616e646f766572

// schema holds one entry per schema version: schema[i] upgrades version i to
// i+1. Entries are append-only — never edit a shipped one; add the next.
//
// Records are stored whole as json (body) next to the queried columns, so a
// new record field needs no entry here. The body is json, not jsonb: json
// keeps the text exactly as written and accepts \u0000, which jsonb refuses
// (an error message with a NUL byte must not make a migration unwritable).
// Keys and times used for ordering are COLLATE "C" so they sort bytewise,
// like Go strings, whatever the database's locale; times are fixed-width
// UTC text with nanoseconds (see timeKey), exact and ordered, where a
// timestamptz would keep only microseconds.
var schema = []string{
	// Version 1.
	`
CREATE TABLE handover_migrations (
	id          TEXT COLLATE "C" PRIMARY KEY,
	database_id TEXT COLLATE "C" NOT NULL,
	instance_id TEXT COLLATE "C" NOT NULL,
	state       TEXT NOT NULL,
	terminal    BOOLEAN NOT NULL,
	version     BIGINT NOT NULL,
	created_at  TEXT COLLATE "C" NOT NULL,
	body        JSON NOT NULL
);
CREATE INDEX handover_migrations_order ON handover_migrations (created_at, id);
CREATE INDEX handover_migrations_unfinished ON handover_migrations (created_at, id) WHERE NOT terminal;
CREATE INDEX handover_migrations_database ON handover_migrations (database_id, created_at, id);
CREATE INDEX handover_migrations_instance ON handover_migrations (instance_id, created_at, id);

CREATE TABLE handover_databases (
	id         TEXT COLLATE "C" PRIMARY KEY,
	version    BIGINT NOT NULL,
	updated_at TEXT COLLATE "C" NOT NULL,
	body       JSON NOT NULL
);

CREATE TABLE handover_events (
	id      TEXT COLLATE "C" PRIMARY KEY,
	expires TEXT COLLATE "C" NOT NULL
);
CREATE INDEX handover_events_expires ON handover_events (expires);

CREATE TABLE handover_leases (
	name    TEXT COLLATE "C" PRIMARY KEY,
	holder  TEXT COLLATE "C" NOT NULL, -- empty once released; the row stays to keep the token
	token   BIGINT NOT NULL,
	expires TEXT COLLATE "C" NOT NULL
);
`,
	// Version 2: group updates. group_name because GROUP is a keyword.
	`
CREATE TABLE handover_updates (
	id         TEXT COLLATE "C" PRIMARY KEY,
	group_name TEXT COLLATE "C" NOT NULL,
	terminal   BOOLEAN NOT NULL,
	version    BIGINT NOT NULL,
	created_at TEXT COLLATE "C" NOT NULL,
	body       JSON NOT NULL
);
CREATE INDEX handover_updates_order ON handover_updates (created_at, id);
CREATE INDEX handover_updates_unfinished ON handover_updates (created_at, id) WHERE NOT terminal;
CREATE INDEX handover_updates_group ON handover_updates (group_name, created_at, id);
`,
}

// migrate brings the schema up to date inside one transaction holding an
// advisory lock, so controllers starting together upgrade it once.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return fmt.Errorf("locking the schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS handover_schema (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var have *int32
		if err := tx.QueryRow(ctx, `SELECT MAX(version) FROM handover_schema`).Scan(&have); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading the schema version: %w", err)
		}
		v := 0
		if have != nil {
			v = int(*have)
		}
		if v > len(schema) {
			return fmt.Errorf("the ledger has schema version %d but this handover knows only up to %d: upgrade handover", v, len(schema))
		}
		for ; v < len(schema); v++ {
			if _, err := tx.Exec(ctx, schema[v]); err != nil {
				return fmt.Errorf("upgrading the schema to version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM handover_schema`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO handover_schema (version) VALUES ($1)`, v+1); err != nil {
				return err
			}
			logger.Info("ledger schema upgraded", "schema-version", v+1)
		}
		return nil
	})
}
