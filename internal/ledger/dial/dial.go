// Package dial opens a ledger backend named by a URL, the one form of ledger
// configuration that flags, environment variables and config files share.
//
// Accepted forms:
//
//	memory://                     in-memory; lost on exit (tests, demos)
//	sqlite:///var/lib/handover.db SQLite file at an absolute path
//	sqlite:ledger.db              SQLite file relative to the working directory
//	                              (sqlite3: is accepted for sqlite:)
//	postgres://user:pw@host/db    PostgreSQL (postgresql:// too); the whole
//	                              URL, query included, goes to pgx
//
// sqlite://ledger.db (two slashes, relative) is refused rather than guessed
// at: a URL parser reads "ledger.db" as a host name, and
// sqlite://dir/ledger.db would silently mean /ledger.db. Paths are
// percent-decoded. This package must never log or return a PostgreSQL
// password: errors and String redact it.
package dial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
)

// Backends named by Target.Backend.
const (
	Memory   = "memory"
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Forms is the list of accepted URL forms, for error and help messages.
const Forms = "memory://, sqlite:///absolute/path.db, sqlite:relative/path.db, postgres://user:password@host:5432/dbname (or postgresql://)"

// Target is a parsed ledger URL.
type Target struct {
	Backend string // Memory, SQLite or Postgres
	Path    string // SQLite: the file path, absolute or relative
	DSN     string // Postgres: the URL as given, for pgx
}

// String returns the target as a URL, with any password redacted, for logs.
func (t Target) String() string {
	switch t.Backend {
	case Memory:
		return "memory://"
	case SQLite:
		esc := (&url.URL{Path: t.Path}).EscapedPath()
		if strings.HasPrefix(t.Path, "/") {
			return "sqlite://" + esc
		}
		return "sqlite:" + esc
	case Postgres:
		if u, err := url.Parse(t.DSN); err == nil {
			return u.Redacted()
		}
		return "postgres://(unparsable)"
	}
	return "(invalid ledger target)"
}

// Parse parses a ledger URL without opening anything, so configuration can
// be validated early. Its errors list the accepted forms.
func Parse(raw string) (Target, error) {
	t, err := parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("%w (accepted: %s)", err, Forms)
	}
	return t, nil
}

func parse(raw string) (Target, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" {
		return Target{}, fmt.Errorf("ledger URL %q has no scheme", raw)
	}
	switch strings.ToLower(scheme) {
	case "memory":
		if rest != "" && rest != "//" {
			return Target{}, fmt.Errorf("ledger URL %q: memory:// takes no path or options", raw)
		}
		return Target{Backend: Memory}, nil
	case "sqlite", "sqlite3":
		return parseSQLite(raw)
	case "postgres", "postgresql":
		// Not parsed here: pgx owns the syntax (and redacts its errors),
		// and url.Parse errors would quote the password.
		if !strings.HasPrefix(rest, "//") {
			return Target{}, fmt.Errorf("ledger URL %s:…: a PostgreSQL URL starts with %s://", scheme, scheme)
		}
		return Target{Backend: Postgres, DSN: raw}, nil
	}
	// Only the scheme is quoted: the rest may hold a password.
	return Target{}, fmt.Errorf("ledger URL scheme %q is not supported", scheme)
}

func parseSQLite(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("ledger URL %q: %w", raw, errors.Unwrap(err))
	}
	switch {
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return Target{}, fmt.Errorf("ledger URL %q: sqlite URLs take no ?options or #fragment (a '?' or '#' in a path is written %%3F or %%23)", raw)
	case u.User != nil || u.Host != "":
		return Target{}, fmt.Errorf("ledger URL %q: sqlite://name is ambiguous; write sqlite:///absolute/path.db (three slashes) or sqlite:relative/path.db", raw)
	}
	path := u.Path
	if u.Opaque != "" {
		// sqlite:relative.db — url.Parse leaves the opaque part encoded.
		if path, err = url.PathUnescape(u.Opaque); err != nil {
			return Target{}, fmt.Errorf("ledger URL %q: %w", raw, err)
		}
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return Target{}, fmt.Errorf("ledger URL %q names no file: write sqlite:///absolute/path.db or sqlite:relative/path.db", raw)
	}
	if strings.ContainsRune(path, 0) {
		return Target{}, fmt.Errorf("ledger URL %q: the path contains a NUL byte", raw)
	}
	return Target{Backend: SQLite, Path: path}, nil
}

// Open parses rawURL and opens the ledger it names. A nil logger discards.
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (ledger.Ledger, error) {
	t, err := Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch t.Backend {
	case Memory:
		return memory.New(), nil
	case SQLite:
		// Not returned directly: a nil *sqlite.Ledger in a ledger.Ledger
		// would not compare equal to nil.
		l, err := sqlite.Open(ctx, t.Path, logger)
		if err != nil {
			return nil, err
		}
		return l, nil
	default:
		l, err := postgres.Open(ctx, t.DSN, logger)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}
