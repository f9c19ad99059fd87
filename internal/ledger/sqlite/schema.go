package sqlite

// schema holds one entry per schema version: schema[i] upgrades version i to
// i+1. Entries are append-only — never edit a shipped one; add the next.
//
// Since version 3 every record kind shares handover_records: a record is
// stored whole as JSON (body) next to its kind's indexed keys, so neither a
// new field nor a new kind needs an entry here. Expiry times are
// fixed-width UTC text with nanoseconds, which sorts bytewise in time
// order.
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
	// Version 3: one table for every record kind (see ledger.Kind), so a
	// new kind needs no schema change. The rows of the three tables move
	// over as they are: their bodies are the records.
	`
CREATE TABLE handover_records (
	kind    TEXT NOT NULL,
	id      TEXT NOT NULL,
	version INTEGER NOT NULL,
	done    INTEGER NOT NULL,
	key1    TEXT NOT NULL DEFAULT '',
	key2    TEXT NOT NULL DEFAULT '',
	key3    TEXT NOT NULL DEFAULT '',
	body    TEXT NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE INDEX handover_records_unfinished ON handover_records (kind, id) WHERE done = 0;
CREATE INDEX handover_records_key1 ON handover_records (kind, key1, id);
CREATE INDEX handover_records_key2 ON handover_records (kind, key2, id);
CREATE INDEX handover_records_key3 ON handover_records (kind, key3, id);

INSERT INTO handover_records (kind, id, version, done, key1, key2, body)
	SELECT 'migration', id, version, terminal, database_id, instance_id, body FROM handover_migrations;
INSERT INTO handover_records (kind, id, version, done, body)
	SELECT 'database', id, version, 0, body FROM handover_databases;
INSERT INTO handover_records (kind, id, version, done, key1, body)
	SELECT 'update', id, version, terminal, group_name, body FROM handover_updates;
DROP TABLE handover_migrations;
DROP TABLE handover_databases;
DROP TABLE handover_updates;
`,
}
