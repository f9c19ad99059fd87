package dial

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Target
		errHas  string // substring of the error; empty means success
		noLeaks string // must not appear in the error
	}{
		{in: "memory://", want: Target{Backend: Memory}},
		{in: "memory:", want: Target{Backend: Memory}},
		{in: "MEMORY://", want: Target{Backend: Memory}},
		{in: "memory://x", errHas: "takes no path"},
		{in: "sqlite:///var/lib/handover/ledger.db", want: Target{Backend: SQLite, Path: "/var/lib/handover/ledger.db"}},
		{in: "sqlite:/var/lib/ledger.db", want: Target{Backend: SQLite, Path: "/var/lib/ledger.db"}},
		{in: "sqlite3:///x.db", want: Target{Backend: SQLite, Path: "/x.db"}},
		{in: "sqlite:ledger.db", want: Target{Backend: SQLite, Path: "ledger.db"}},
		{in: "sqlite:state/ledger.db", want: Target{Backend: SQLite, Path: "state/ledger.db"}},
		{in: "sqlite:///tmp/a%20b%3F.db", want: Target{Backend: SQLite, Path: "/tmp/a b?.db"}},
		{in: "sqlite:a%23b.db", want: Target{Backend: SQLite, Path: "a#b.db"}},
		{in: "sqlite://ledger.db", errHas: "ambiguous"},
		{in: "sqlite://dir/ledger.db", errHas: "three slashes"},
		{in: "sqlite:///x.db?mode=ro", errHas: "no ?options"},
		{in: "sqlite:///x.db#frag", errHas: "no ?options"},
		{in: "sqlite://", errHas: "names no file"},
		{in: "sqlite:", errHas: "names no file"},
		{in: "sqlite:///var/lib/", errHas: "names no file"},
		{in: "sqlite:///x%zz.db", errHas: "invalid URL escape"},
		{in: "postgres://u:secret@db.internal:5432/handover?sslmode=require", want: Target{Backend: Postgres, DSN: "postgres://u:secret@db.internal:5432/handover?sslmode=require"}},
		{in: "postgresql://db/handover", want: Target{Backend: Postgres, DSN: "postgresql://db/handover"}},
		{in: "postgres:db", errHas: "starts with postgres://"},
		{in: "mysql://u:secret@h/db", errHas: `scheme "mysql" is not supported`, noLeaks: "secret"},
		{in: "/var/lib/ledger.db", errHas: "has no scheme"},
		{in: "", errHas: "has no scheme"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.errHas != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error containing %q", tc.in, got, tc.errHas)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not contain %q", err, tc.errHas)
				}
				if tc.noLeaks != "" && strings.Contains(err.Error(), tc.noLeaks) {
					t.Errorf("error %q leaks %q", err, tc.noLeaks)
				}
				if !strings.Contains(err.Error(), "sqlite") {
					t.Errorf("error %q does not say which forms are accepted", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestStringRedacts(t *testing.T) {
	tg, err := Parse("postgres://u:secret@h/db")
	if err != nil {
		t.Fatal(err)
	}
	if s := tg.String(); strings.Contains(s, "secret") || !strings.Contains(s, "u:xxxxx@h/db") {
		t.Errorf("String() = %q, want the password redacted", s)
	}
}

// TestOpen opens each local backend through its URL; the PostgreSQL path is
// covered by the postgres package's own tests.
func TestOpen(t *testing.T) {
	for _, raw := range []string{"memory://", "sqlite://" + filepath.Join(t.TempDir(), "ledger.db")} {
		l, err := Open(t.Context(), raw, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		if _, err := l.ListDatabases(t.Context()); err != nil {
			t.Errorf("Open(%q): ledger unusable: %v", raw, err)
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}
	l, err := Open(t.Context(), "sqlite:///nonexistent-dir-\x00/ledger.db", nil)
	if err == nil || l != nil {
		t.Errorf("Open of a bad sqlite path = %v, %v; want a nil ledger and an error", l, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"memory://", "sqlite:///var/lib/ledger.db", "sqlite:ledger.db", "sqlite:a%20b",
		"sqlite://host/x", "postgres://u:p@h:5432/db?sslmode=disable", "postgresql://h/db",
		"sqlite:////double", "sqlite:a:b", "x:", ":", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := Parse(raw)
		if err != nil {
			if tg != (Target{}) {
				t.Fatalf("Parse(%q) failed but returned %+v", raw, tg)
			}
			return
		}
		switch tg.Backend {
		case Memory:
		case Postgres:
			if tg.DSN != raw {
				t.Fatalf("Parse(%q) changed the DSN to %q", raw, tg.DSN)
			}
		case SQLite:
			if tg.Path == "" {
				t.Fatalf("Parse(%q) returned an empty path", raw)
			}
			// String must give back a URL naming the same file.
			again, err := Parse(tg.String())
			if err != nil {
				t.Fatalf("Parse(%q).String() = %q does not parse: %v", raw, tg.String(), err)
			}
			if filepath.Clean(again.Path) != filepath.Clean(tg.Path) {
				t.Fatalf("round trip of %q: path %q became %q via %q", raw, tg.Path, again.Path, tg.String())
			}
		default:
			t.Fatalf("Parse(%q) returned backend %q", raw, tg.Backend)
		}
	})
}
