// Package sqlite is the embedded ledger backend, the default for a single
// controller: one file, the pure-Go modernc.org/sqlite driver (no cgo), WAL
// mode, on the SQL store that PostgreSQL shares (internal/ledger/sqlstore).
// This package holds only what is SQLite's own: the connection settings,
// the schema history and which errors are passing faults.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/sqlstore"
	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a statement waits for another process's write
// lock before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// readers is how many connections serve reads beside the one writer: in
// WAL mode they read the last commit while the writer writes the next.
const readers = 4

// Dialect is SQLite's part of the SQL store.
var Dialect = &sqlstore.Dialect{
	Name:      "sqlite",
	Begin:     "BEGIN IMMEDIATE",
	NotDone:   "done = 0",
	Schema:    schema,
	Transient: transient,
}

// transient: the database was locked by another process for longer than
// busy_timeout.
func transient(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// Open opens (creating if absent) the ledger file at path and brings its
// schema up to date. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger) (*ledger.Records, error) {
	s, err := OpenStore(ctx, path, logger)
	if err != nil {
		return nil, err
	}
	return ledger.New(s), nil
}

// OpenStore is Open without the typed ledger on top.
func OpenStore(ctx context.Context, path string, logger *slog.Logger) (*sqlstore.Store, error) {
	if path == "" {
		return nil, errors.New("opening sqlite ledger: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", abs, err)
	}
	// synchronous(FULL): in WAL mode NORMAL may lose the last commits on a
	// power cut, and handover acknowledges events and lifecycle actions
	// right after a commit, so a lost commit would be a lost step. Group
	// commit (sqlstore) is what keeps the fsyncs few.
	params := url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(FULL)",
	}}
	// A file: URI with an escaped path, so a '?' or '#' in the path cannot
	// be read as the start of the parameters.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: params.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite ledger %s: %w", abs, err)
	}
	db.SetMaxOpenConns(1 + readers)
	db.SetMaxIdleConns(1 + readers)
	s, err := sqlstore.Open(ctx, db, Dialect, abs, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
