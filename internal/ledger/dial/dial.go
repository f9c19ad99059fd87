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
//	dynamodb://TABLE?region=R&endpoint=URL
//	                              DynamoDB table TABLE; region and endpoint
//	                              (an emulator, the local cloud) are
//	                              optional, credentials come from the
//	                              standard AWS chain, never from the URL
//
// sqlite://ledger.db (two slashes, relative) is refused rather than guessed
// at: a URL parser reads "ledger.db" as a host name, and
// sqlite://dir/ledger.db would silently mean /ledger.db. Paths are
// percent-decoded. This package must never log or return a PostgreSQL
// password: errors and String redact it. A DynamoDB URL with user
// information (in itself or in its endpoint) is refused without quoting it.
package dial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/handover-dev/handover/internal/ledger"
	ddbledger "github.com/handover-dev/handover/internal/ledger/dynamodb"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/ledger/postgres"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
)

// Backends named by Target.Backend.
const (
	Memory   = "memory"
	SQLite   = "sqlite"
	Postgres = "postgres"
	DynamoDB = "dynamodb"
)

// Forms is the list of accepted URL forms, for error and help messages.
const Forms = "memory://, sqlite:///absolute/path.db, sqlite:relative/path.db, postgres://user:password@host:5432/dbname (or postgresql://), dynamodb://TABLE?region=REGION&endpoint=URL (both optional)"

// Target is a parsed ledger URL.
type Target struct {
	Backend string // Memory, SQLite, Postgres or DynamoDB
	Path    string // SQLite: the file path, absolute or relative
	DSN     string // Postgres: the URL as given, for pgx

	// DynamoDB: the table, and the region and endpoint URL if given (else
	// the AWS configuration's).
	Table    string
	Region   string
	Endpoint string
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
	case DynamoDB:
		s := "dynamodb://" + t.Table
		sep := "?"
		for _, kv := range [][2]string{{"region", t.Region}, {"endpoint", t.Endpoint}} {
			if kv[1] != "" {
				s += sep + kv[0] + "=" + queryEscape(kv[1])
				sep = "&"
			}
		}
		return s
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
	case "dynamodb":
		return parseDynamoDB(scheme, rest)
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

// DynamoDB's rules for table names; checking them here means a typo fails
// at startup, and a table name never needs escaping.
var tableName = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)

// regionName is loose on purpose: emulators accept any region, and new
// AWS regions keep appearing.
var regionName = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// parseDynamoDB parses dynamodb://TABLE?region=R&endpoint=URL. Its errors
// quote the table, option names and the region, never the whole URL or
// the endpoint: either may carry user information.
func parseDynamoDB(scheme, rest string) (Target, error) {
	const form = "dynamodb://TABLE?region=REGION&endpoint=URL"
	if !strings.HasPrefix(rest, "//") {
		return Target{}, fmt.Errorf("ledger URL %s:…: a DynamoDB URL is written %s", scheme, form)
	}
	u, err := url.Parse("dynamodb:" + rest)
	if err != nil {
		return Target{}, fmt.Errorf("ledger URL dynamodb://…: malformed (write %s)", form)
	}
	switch {
	case u.User != nil:
		return Target{}, fmt.Errorf("ledger URL dynamodb://…: takes no user or password: credentials come from the AWS environment, shared files or role")
	case u.Fragment != "" || strings.Contains(rest, "#"):
		return Target{}, fmt.Errorf("ledger URL dynamodb://…: takes no #fragment")
	case u.Path != "" && u.Path != "/":
		return Target{}, fmt.Errorf("ledger URL dynamodb://…: takes no path after the table name (write %s)", form)
	case !tableName.MatchString(u.Host):
		return Target{}, fmt.Errorf("ledger URL dynamodb://…: table name %q is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)", u.Host)
	}
	t := Target{Backend: DynamoDB, Table: u.Host}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Target{}, fmt.Errorf("ledger URL dynamodb://%s?…: malformed options", t.Table)
	}
	for k, vs := range q {
		if len(vs) != 1 || vs[0] == "" {
			return Target{}, fmt.Errorf("ledger URL dynamodb://%s?…: option %q must be given once, with a value", t.Table, k)
		}
		switch k {
		case "region":
			if !regionName.MatchString(vs[0]) {
				return Target{}, fmt.Errorf("ledger URL dynamodb://%s?…: region %q is not a region name", t.Table, vs[0])
			}
			t.Region = vs[0]
		case "endpoint":
			if err := checkEndpoint(vs[0]); err != nil {
				return Target{}, fmt.Errorf("ledger URL dynamodb://%s?…: endpoint: %w", t.Table, err)
			}
			t.Endpoint = vs[0]
		default:
			return Target{}, fmt.Errorf("ledger URL dynamodb://%s?…: unknown option %q (known: region, endpoint)", t.Table, k)
		}
	}
	return t, nil
}

func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.User != nil:
		return errors.New("takes no user or password")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("names no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "#\x00"):
		return errors.New("takes no ?query or #fragment")
	}
	return nil
}

// queryEscape escapes a query value, but leaves the ':' and '/' of an
// endpoint URL readable in logs: both are allowed in a query.
func queryEscape(s string) string {
	return strings.NewReplacer("%3A", ":", "%2F", "/").Replace(url.QueryEscape(s))
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
	case DynamoDB:
		return openDynamoDB(ctx, t, logger)
	default:
		l, err := postgres.Open(ctx, t.DSN, logger)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// openDynamoDB loads the AWS configuration the standard way (environment,
// shared files, instance or task role) and opens the table, which must
// exist.
func openDynamoDB(ctx context.Context, t Target, logger *slog.Logger) (ledger.Ledger, error) {
	var opts []func(*config.LoadOptions) error
	if t.Region != "" {
		opts = append(opts, config.WithRegion(t.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: loading the AWS configuration: %w", t, err)
	}
	if cfg.Region == "" {
		if t.Endpoint == "" {
			return nil, fmt.Errorf("opening ledger %s: no AWS region: add ?region= to the URL or set AWS_REGION", t)
		}
		// Emulators ignore the region, but the SDK must sign with one.
		cfg.Region = "us-east-1"
	}
	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
	})
	l, err := ddbledger.Open(ctx, client, t.Table, logger)
	if err != nil {
		return nil, err
	}
	return l, nil
}
