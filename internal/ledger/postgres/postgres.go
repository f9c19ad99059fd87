// Package postgres is the ledger backend for several controllers sharing
// one PostgreSQL database, on the SQL store that SQLite shares
// (internal/ledger/sqlstore), through pgx's database/sql adapter over a pgx
// pool. This package holds only what is PostgreSQL's own: the connection,
// the schema history with its advisory lock, and which errors are passing
// faults.
//
// Correctness across processes rests on the SQL store's rule: every
// decision is made inside a single statement, so PostgreSQL's row locks,
// not the caller's reads, decide each race.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/sqlstore"
)

// Dialect is PostgreSQL's part of the SQL store.
var Dialect = &sqlstore.Dialect{
	Name:       "postgres",
	Numbered:   true,
	Begin:      "BEGIN",
	NotDone:    "NOT done",
	Schema:     schema,
	LockSchema: "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(schemaLock, 10) + ")",
	Transient:  transient,
}

// transient: this transaction lost a deadlock or a serialization check, or
// could not get a lock; run again, it may pass.
func transient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40P01", "40001", "55P03":
		return true
	}
	return false
}

// Open connects to the database at dsn (a postgres:// URL or a key=value
// string, with pgxpool's pool_* parameters) and brings the schema up to
// date. A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*ledger.Records, error) {
	s, err := OpenStore(ctx, dsn, logger)
	if err != nil {
		return nil, err
	}
	return ledger.New(s), nil
}

// OpenStore is Open without the typed ledger on top.
func OpenStore(ctx context.Context, dsn string, logger *slog.Logger) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password; the DSN itself is not
		// repeated here for the same reason.
		return nil, fmt.Errorf("opening postgres ledger: %w", err)
	}
	where := cfg.ConnConfig.Host + ":" + strconv.Itoa(int(cfg.ConnConfig.Port)) + "/" + cfg.ConnConfig.Database
	// pgxpool's parser takes the pool_* parameters out of the connection
	// settings; database/sql's pool honours the ones it has.
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(int(cfg.MaxConns))
	db.SetMaxIdleConns(int(cfg.MaxConns))
	db.SetConnMaxLifetime(cfg.MaxConnLifetime)
	db.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	s, err := sqlstore.Open(ctx, db, Dialect, where, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
