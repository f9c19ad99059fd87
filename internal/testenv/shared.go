// Package testenv holds what the test helpers that start real servers
// (pgtest: PostgreSQL; dynalitetest: a DynamoDB emulator) share: one
// server per test binary, started on first use and stopped when the
// package's tests end.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a running test server.
type Server interface{ Stop() error }

// Shared is one server of type S per test binary. The zero value is not
// usable; fill in Name, SkipEnv and Start.
type Shared[S Server] struct {
	// Name is the helper package ("pgtest"), for messages.
	Name string
	// What is what the server is ("PostgreSQL"), for messages.
	What string
	// SkipEnv, set to 1, skips the tests that need the server.
	SkipEnv string
	// Start starts the server; it runs at most once.
	Start func() (S, error)

	mainRunning atomic.Bool
	once        sync.Once
	started     bool
	srv         S
	err         error
}

// Main runs the package's tests, then stops the server if one was started.
// Call it from TestMain; it does not return.
func (s *Shared[S]) Main(m *testing.M) {
	s.mainRunning.Store(true)
	code := m.Run()
	if s.started {
		if err := s.srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		}
	}
	os.Exit(code)
}

// Get returns the server, starting it on first use. It skips t when
// SkipEnv is 1 and fails it when the package's TestMain does not call
// Main (which stops the server). Safe for parallel tests.
func (s *Shared[S]) Get(t testing.TB) S {
	t.Helper()
	if os.Getenv(s.SkipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs %s", s.SkipEnv, s.What)
	}
	if !s.mainRunning.Load() {
		t.Fatalf("%[1]s.Start needs the package's TestMain to call %[1]s.Main, which stops the shared server:\n\tfunc TestMain(m *testing.M) { %[1]s.Main(m) }", s.Name)
	}
	s.once.Do(func() {
		s.srv, s.err = s.Start()
		s.started = s.err == nil
	})
	if s.err != nil {
		t.Fatalf("starting %s: %v", s.What, s.err)
	}
	return s.srv
}

// FreePort returns a TCP port on 127.0.0.1 nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogTail returns the last 4,000 bytes of a server's log, for error
// messages.
func LogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
