// Package pgtest runs a real, throwaway PostgreSQL server for tests and
// hands each test a fresh, empty database on it.
//
// One server is shared by the whole test binary (starting one takes about a
// second; creating a database takes milliseconds). It lives in a temporary
// directory with fsync off, listens on a free loopback port only, and is
// stopped and deleted by Main when the tests end — so a package that calls
// Start must run its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// If the server binaries are missing the tests fail, saying to run
// `make deps`; HANDOVER_SKIP_POSTGRES=1 skips them instead. This package
// must never be imported outside tests, and never touches a server it did
// not start.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/testenv"

	"github.com/jackc/pgx/v5"
)

// SkipEnv names the environment variable that, set to 1, skips every test
// that needs PostgreSQL.
const SkipEnv = "HANDOVER_SKIP_POSTGRES"

// shared is the one server of this test binary.
var shared = &testenv.Shared[*server]{Name: "pgtest", What: "PostgreSQL", SkipEnv: SkipEnv, Start: startServer}

// Main runs the package's tests, then stops the shared server if one was
// started. Call it from TestMain; it does not return.
func Main(m *testing.M) { shared.Main(m) }

// Start returns the DSN of a new, empty database on the shared server,
// starting the server on first use. The database is dropped when t ends;
// close its connections in a t.Cleanup registered after Start (which runs
// first). Safe for parallel tests.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	srv := shared.Get(t)
	return srv.createDatabase(t)
}

// createDatabase creates a database with a random name and schedules its
// removal. One admin connection, behind a mutex, serves every test.
func (s *server) createDatabase(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.admin(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections the test left open; the database is
		// dropped only to keep a long run's disk use flat.
		if err := s.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping test database %s: %v", name, err)
		}
	})
	return s.dsn(name)
}

func (s *server) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

func (s *server) admin(ctx context.Context, sql string) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.adminConn == nil || s.adminConn.IsClosed() {
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err != nil {
			return err
		}
		s.adminConn = c
	}
	if _, err := s.adminConn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}
