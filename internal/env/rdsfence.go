package env

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// RDSFencer makes an RDS instance's databases refuse writes and lifts
// that again: PGFence. A migration puts it on SRC's instances before their
// snapshots, so a write SRC acknowledges is either in the snapshot (DST's
// data) or never acknowledged.
type RDSFencer interface {
	// RDSFenceTargets lists the databases of instance a fence would make
	// read-only: every database that takes connections and is not a
	// template, rdsadmin, or read-only by its own setting already (a lift
	// must leave that one as it was). It changes nothing.
	// The databases the login may not alter (another role owns them, as
	// the hidden admin owns postgres on RDS) come back in unfenceable.
	RDSFenceTargets(ctx context.Context, instance string) (dbs, unfenceable []string, err error)
	// FenceRDS sets default_transaction_read_only on each of dbs, then
	// ends every other session in them, and returns how many it ended.
	// Safe to repeat.
	FenceRDS(ctx context.Context, instance string, dbs []string) (ended int, err error)
	// UnfenceRDS resets default_transaction_read_only on each of dbs.
	// Safe to repeat; an instance that is gone answers handover.ErrNotFound.
	UnfenceRDS(ctx context.Context, instance string, dbs []string) error
}

// RDSLocator finds where, and as whom, to log in to an RDS instance:
// awscloud's CloneBuilder (the endpoint) with its Verifier (the master
// user).
type RDSLocator interface {
	DBInstanceState(ctx context.Context, name string) (status, endpoint string, err error)
	DBLogin(ctx context.Context, instance string) (user, database string, err error)
}

// PGFence is RDSFencer over PostgreSQL, logging in as the instance's
// master user with Password (what verify logs in with).
//
// RDS gives its master user no superuser, but lets it set a database's
// defaults and end the sessions of roles that are not superusers
// (pg_terminate_backend), which is all the fence needs. What it does not
// stop: a session that sets default_transaction_read_only off itself (or
// begins READ WRITE), and a superuser's sessions on RDS (rdsadmin's),
// which the master user cannot end.
type PGFence struct {
	Locate   RDSLocator
	Password string
	// SSLMode is libpq's sslmode; "" is prefer.
	SSLMode string
}

var _ RDSFencer = PGFence{}

// fenceTargetsQuery lists the databases a fence makes read-only.
const fenceTargetsQuery = `
SELECT d.datname, pg_has_role(d.datdba, 'MEMBER') FROM pg_database d
WHERE d.datallowconn AND NOT d.datistemplate AND d.datname <> 'rdsadmin'
  AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting s
                  WHERE s.setdatabase = d.oid AND s.setrole = 0
                    AND 'default_transaction_read_only=on' = ANY(s.setconfig))
ORDER BY 1`

// sessionsQuery lists the other client sessions in the databases $1 that
// this login may end: not a superuser's, unless it is one itself.
const sessionsQuery = `
SELECT a.pid FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
  AND a.datname = ANY($1)
  AND (NOT coalesce(r.rolsuper, false) OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))`

// endWait is how long the fence waits for each ended session to be gone
// (PostgreSQL 14 and later wait in pg_terminate_backend itself): a write
// of a session still ending could commit after the snapshot started.
const endWait = 10 * time.Second

func (p PGFence) connect(ctx context.Context, instance string) (*pgx.Conn, string, error) {
	_, endpoint, err := p.Locate.DBInstanceState(ctx, instance)
	if err != nil {
		return nil, "", fmt.Errorf("reading RDS instance %s: %w", instance, err)
	}
	user, database, err := p.Locate.DBLogin(ctx, instance)
	if err != nil {
		return nil, "", fmt.Errorf("reading the master user of RDS instance %s: %w", instance, err)
	}
	conn, err := pgConnect(ctx, endpoint, user, p.Password, p.SSLMode, database)
	if err != nil {
		return nil, "", err
	}
	// This session logs in to a database the fence may have made
	// read-only (a fence again, a lift): it writes the defaults itself.
	if _, err := conn.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
		closeConn(conn)
		return nil, "", fmt.Errorf("opening a read-write session on %s: %w", endpoint, err)
	}
	return conn, endpoint, nil
}

// pgConnect logs in to endpoint (host:port) as user, to database
// (postgres if empty).
func pgConnect(ctx context.Context, endpoint, user, password, sslMode, database string) (*pgx.Conn, error) {
	if database == "" {
		database = "postgres"
	}
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return nil, fmt.Errorf("connecting to %q: want host:port: %w", endpoint, err)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: endpoint, Path: "/" + database}
	q := url.Values{"connect_timeout": {"10"}}
	if sslMode != "" {
		q.Set("sslmode", sslMode)
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s as %s (database %s): %w", endpoint, user, database, err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// RDSFenceTargets implements RDSFencer.
func (p PGFence) RDSFenceTargets(ctx context.Context, instance string) (dbs, unfenceable []string, err error) {
	conn, endpoint, err := p.connect(ctx, instance)
	if err != nil {
		return nil, nil, err
	}
	defer closeConn(conn)
	rows, err := conn.Query(ctx, fenceTargetsQuery)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the databases of %s (%s): %w", instance, endpoint, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var owns bool
		if err := rows.Scan(&name, &owns); err != nil {
			return nil, nil, fmt.Errorf("listing the databases of %s (%s): %w", instance, endpoint, err)
		}
		if owns {
			dbs = append(dbs, name)
		} else {
			unfenceable = append(unfenceable, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("listing the databases of %s (%s): %w", instance, endpoint, err)
	}
	return dbs, unfenceable, nil
}

// FenceRDS implements RDSFencer. The defaults come first: a session that
// starts after them is read-only, so once every older one is ended no
// session of the fenced databases can write (but as PGFence says).
func (p PGFence) FenceRDS(ctx context.Context, instance string, dbs []string) (int, error) {
	if len(dbs) == 0 {
		return 0, nil
	}
	conn, endpoint, err := p.connect(ctx, instance)
	if err != nil {
		return 0, err
	}
	defer closeConn(conn)
	for _, db := range dbs {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET default_transaction_read_only = on"); err != nil {
			return 0, fmt.Errorf("making database %s of %s (%s) read-only: %w", db, instance, endpoint, err)
		}
	}
	rows, err := conn.Query(ctx, sessionsQuery, dbs)
	if err != nil {
		return 0, fmt.Errorf("listing the sessions of %s (%s): %w", instance, endpoint, err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, fmt.Errorf("listing the sessions of %s (%s): %w", instance, endpoint, err)
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return 0, fmt.Errorf("reading the version of %s (%s): %w", instance, endpoint, err)
	}
	for _, pid := range pids {
		var gone bool
		if version >= 140000 {
			err = conn.QueryRow(ctx, "SELECT pg_terminate_backend($1, $2)", pid, endWait.Milliseconds()).Scan(&gone)
		} else {
			err = conn.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&gone)
		}
		if err != nil {
			return 0, fmt.Errorf("ending session %d on %s (%s): %w", pid, instance, endpoint, err)
		}
		if !gone && version >= 140000 {
			// false is also a session that ended by itself meanwhile.
			var still bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&still); err != nil {
				return 0, fmt.Errorf("reading session %d on %s (%s): %w", pid, instance, endpoint, err)
			}
			if still {
				return 0, fmt.Errorf("session %d on %s (%s) was not gone %s after it was ended: fencing again ends it again", pid, instance, endpoint, endWait)
			}
		}
	}
	return len(pids), nil
}

// UnfenceRDS implements RDSFencer.
func (p PGFence) UnfenceRDS(ctx context.Context, instance string, dbs []string) error {
	if len(dbs) == 0 {
		return nil
	}
	conn, endpoint, err := p.connect(ctx, instance)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	// A database dropped since the fence took its setting with it.
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY 1", dbs)
	if err != nil {
		return fmt.Errorf("listing the databases of %s (%s): %w", instance, endpoint, err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the databases of %s (%s): %w", instance, endpoint, err)
	}
	for _, db := range left {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" RESET default_transaction_read_only"); err != nil {
			return fmt.Errorf("making database %s of %s (%s) writable again: %w", db, instance, endpoint, err)
		}
	}
	return nil
}
