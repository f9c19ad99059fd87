package dial

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
	"github.com/handover-dev/handover/internal/testenv/dynalitetest"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

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
		{in: "dynamodb://handover-ledger", want: Target{Backend: DynamoDB, Table: "handover-ledger"}},
		{in: "DynamoDB://Ledger_1.x/", want: Target{Backend: DynamoDB, Table: "Ledger_1.x"}},
		{in: "dynamodb://ledger?region=eu-west-1", want: Target{Backend: DynamoDB, Table: "ledger", Region: "eu-west-1"}},
		{in: "dynamodb://ledger?endpoint=http://127.0.0.1:4566&region=us-east-1",
			want: Target{Backend: DynamoDB, Table: "ledger", Region: "us-east-1", Endpoint: "http://127.0.0.1:4566"}},
		{in: "dynamodb://ledger?endpoint=https%3A%2F%2Fddb.example%2Fprefix", want: Target{Backend: DynamoDB, Table: "ledger", Endpoint: "https://ddb.example/prefix"}},
		{in: "dynamodb:ledger", errHas: "written dynamodb://TABLE"},
		{in: "dynamodb://", errHas: "not a DynamoDB table name"},
		{in: "dynamodb://ab", errHas: "not a DynamoDB table name"},
		{in: "dynamodb://led ger", errHas: "malformed"},
		{in: "dynamodb://ledger:8000", errHas: "not a DynamoDB table name"},
		{in: "dynamodb://ledger/x", errHas: "no path"},
		{in: "dynamodb://ledger#f", errHas: "no #fragment"},
		{in: "dynamodb://AKIA:secret@ledger", errHas: "no user or password", noLeaks: "secret"},
		{in: "dynamodb://ledger?region=eu-west-1&region=us-east-1", errHas: `option "region" must be given once`},
		{in: "dynamodb://ledger?region=", errHas: `option "region" must be given once, with a value`},
		{in: "dynamodb://ledger?region=EU_WEST", errHas: "not a region name"},
		{in: "dynamodb://ledger?profile=prod", errHas: `unknown option "profile"`},
		{in: "dynamodb://ledger?region=a;b", errHas: "malformed options"},
		{in: "dynamodb://ledger?endpoint=ftp://h", errHas: "http:// or https://"},
		{in: "dynamodb://ledger?endpoint=localhost:8000", errHas: "http:// or https://"},
		{in: "dynamodb://ledger?endpoint=http://", errHas: "names no host"},
		{in: "dynamodb://ledger?endpoint=http://u:secret@h", errHas: "no user or password", noLeaks: "secret"},
		{in: "dynamodb://ledger?endpoint=http://h/%3Fx%3Dsecret", errHas: "no ?query", noLeaks: "secret"},
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

// TestDynamoDBString: String gives back a URL that parses to the same
// target, readable in logs.
func TestDynamoDBString(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Backend: DynamoDB, Table: "ledger"}, "dynamodb://ledger"},
		{Target{Backend: DynamoDB, Table: "ledger", Region: "eu-west-1"}, "dynamodb://ledger?region=eu-west-1"},
		{Target{Backend: DynamoDB, Table: "ledger", Region: "us-east-1", Endpoint: "http://127.0.0.1:4566"},
			"dynamodb://ledger?region=us-east-1&endpoint=http://127.0.0.1:4566"},
		{Target{Backend: DynamoDB, Table: "ledger", Endpoint: "http://h/a b&c"}, "dynamodb://ledger?endpoint=http://h/a+b%26c"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		again, err := Parse(tc.t.String())
		if err != nil || again != tc.t {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.t.String(), again, err, tc.t)
		}
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

// TestOpenDynamoDB opens a table on the emulator through its URL, with
// credentials from the environment as the standard chain reads them, and
// checks the errors for a missing table and a missing region.
func TestOpenDynamoDB(t *testing.T) {
	ctx := t.Context()
	endpoint := dynalitetest.Start(t)
	table := dynalitetest.Table(t)
	if err := ddbledger.CreateTable(ctx, dynalitetest.Client(t), table, nil); err != nil {
		t.Fatal(err)
	}
	// The standard chain, kept away from this machine's own AWS files and
	// from the instance metadata service.
	home := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           dynalitetest.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       dynalitetest.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_CONFIG_FILE":             filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}

	l, err := Open(ctx, "dynamodb://"+table+"?endpoint="+endpoint, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	d := &ledger.Database{ID: "orders"}
	if err := l.SaveDatabase(ctx, d); err != nil {
		t.Fatalf("ledger unusable: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}

	missing := dynalitetest.Table(t)
	l, err = Open(ctx, "dynamodb://"+missing+"?region=eu-west-1&endpoint="+endpoint, nil)
	if !errors.Is(err, ddbledger.ErrTableNotFound) || l != nil {
		t.Errorf("Open of a missing table = %v, %v; want a nil ledger and ErrTableNotFound", l, err)
	}

	// Without a region (URL or environment) nothing is sent anywhere.
	_, err = Open(ctx, "dynamodb://"+table, nil)
	if err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("Open without a region: %v, want an error asking for one", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"memory://", "sqlite:///var/lib/ledger.db", "sqlite:ledger.db", "sqlite:a%20b",
		"sqlite://host/x", "postgres://u:p@h:5432/db?sslmode=disable", "postgresql://h/db",
		"sqlite:////double", "sqlite:a:b", "x:", ":", "",
		"dynamodb://ledger", "dynamodb://ledger?region=eu-west-1&endpoint=http://127.0.0.1:4566",
		"dynamodb://ledger?endpoint=https%3A%2F%2Fh%2Fp%2520q", "dynamodb://u:p@ledger", "dynamodb://l%41bc/",
		"dynamodb://ledger?endpoint=http://h/a+b%26c", "dynamodb:ledger", "dynamodb://ledger?x=1",
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
		case DynamoDB:
			// String must give back a URL naming the same table, region
			// and endpoint.
			again, err := Parse(tg.String())
			if err != nil || again != tg {
				t.Fatalf("round trip of %q via %q: %+v, %v; want %+v", raw, tg.String(), again, err, tg)
			}
		default:
			t.Fatalf("Parse(%q) returned backend %q", raw, tg.Backend)
		}
	})
}
