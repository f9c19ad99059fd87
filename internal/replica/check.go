package replica

// Check proves the role read-only and complete. The write attempts run on
// the PRIMARY as the role: on a replica every write fails with 25006
// (read-only transaction) before any privilege is looked at, which would
// prove nothing about the grants. Each must fail with 42501
// (insufficient_privilege), with default_transaction_read_only turned off
// first, so that the guard rail cannot pass for the security.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Result states.
const (
	Pass = "pass"
	Fail = "fail"
	Warn = "warn"
)

// Result is one check.
type Result struct {
	Database string `json:"database,omitempty"`
	Check    string `json:"check"`
	Status   string `json:"status"`
	Detail   string `json:"detail,omitempty"`
}

// Report is what Check found.
type Report struct {
	Source  string   `json:"source"`
	Replica string   `json:"replica"`
	Role    string   `json:"role"`
	Passed  bool     `json:"passed"`
	Results []Result `json:"results"`
}

func (r *Report) add(db, check, status, detail string) {
	r.Results = append(r.Results, Result{Database: db, Check: check, Status: status, Detail: detail})
}

// CheckOptions says what to check.
type CheckOptions struct {
	Replica string
	Role    string
	// Password is the login's.
	Password  string
	Master    Login
	Databases []string
	// Schemas, when set, is what the role was limited to.
	Schemas []string
	// LagTimeout bounds the wait for the replica to replay the primary's
	// WAL (default 60s).
	LagTimeout time.Duration
}

// Check runs every check and reports them all; Report.Passed is false
// when any failed. The error is for checks that could not run at all.
func (t *Tool) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	rep := &Report{Replica: opts.Replica, Role: opts.Role}
	replica, primary, err := t.pair(ctx, opts.Replica)
	if err != nil {
		return nil, err
	}
	rep.Source = aws.ToString(primary.DBInstanceIdentifier)
	if opts.Master.User == "" {
		opts.Master.User = aws.ToString(primary.MasterUsername)
	}
	if len(opts.Databases) == 0 {
		return nil, errors.New("no database to check: name them with --database")
	}
	if opts.LagTimeout <= 0 {
		opts.LagTimeout = 60 * time.Second
	}
	names := RoleNames(opts.Role)
	login := Login{User: names.Login, Password: opts.Password}

	master, err := t.connect(ctx, primary, opts.Master, opts.Databases[0])
	if err != nil {
		return nil, err
	}
	defer master.Close(context.Background())
	t.say("checking the catalog")
	if err := checkCatalog(ctx, master, names, rep); err != nil {
		return nil, err
	}
	for _, db := range opts.Databases {
		t.say("checking database %s on the primary %s", db, rep.Source)
		if err := t.checkDatabase(ctx, primary, replica, opts, login, db, rep); err != nil {
			return nil, err
		}
	}
	t.say("checking the other databases are closed to %s", names.Login)
	if err := t.checkOtherDatabases(ctx, primary, master, opts, login, rep); err != nil {
		return nil, err
	}
	rep.Passed = !slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Status == Fail })
	return rep, nil
}

// pair returns the replica and its source, both available.
func (t *Tool) pair(ctx context.Context, replicaID string) (types.DBInstance, types.DBInstance, error) {
	replica, err := t.describe(ctx, replicaID)
	if err != nil {
		return replica, types.DBInstance{}, err
	}
	src := aws.ToString(replica.ReadReplicaSourceDBInstanceIdentifier)
	if src == "" {
		return replica, types.DBInstance{}, fmt.Errorf("DB instance %s is not a read replica (promoted, or never one)", replicaID)
	}
	primary, err := t.describe(ctx, src)
	if err != nil {
		return replica, primary, fmt.Errorf("the source of %s: %w", replicaID, err)
	}
	return replica, primary, nil
}

func checkCatalog(ctx context.Context, c *pgx.Conn, n Names, rep *Report) error {
	for _, r := range []string{n.Login, n.Group} {
		var attrs []string
		err := c.QueryRow(ctx, `SELECT array_remove(ARRAY[CASE WHEN rolsuper THEN 'superuser' END, CASE WHEN rolcreaterole THEN 'createrole' END,
			CASE WHEN rolcreatedb THEN 'createdb' END, CASE WHEN rolreplication THEN 'replication' END,
			CASE WHEN rolbypassrls THEN 'bypassrls' END], NULL) FROM pg_roles WHERE rolname = $1`, r).Scan(&attrs)
		if errors.Is(err, pgx.ErrNoRows) {
			rep.add("", "role "+r+" exists", Fail, "run handover replica create")
			continue
		}
		if err != nil {
			return fmt.Errorf("reading role %s: %w", r, err)
		}
		if len(attrs) > 0 {
			rep.add("", "role "+r+" has no super, createrole, createdb, replication or bypassrls", Fail, "it has "+strings.Join(attrs, ", "))
		} else {
			rep.add("", "role "+r+" has no super, createrole, createdb, replication or bypassrls", Pass, "")
		}
	}
	var others []string
	if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(r.rolname ORDER BY r.rolname), '{}') FROM pg_roles r
		WHERE r.rolname NOT IN ($1, $2) AND EXISTS (SELECT 1 FROM pg_roles l WHERE l.rolname = $1) AND pg_has_role($1, r.oid, 'MEMBER')`, n.Login, n.Group).Scan(&others); err != nil {
		return fmt.Errorf("reading the memberships of %s: %w", n.Login, err)
	}
	if len(others) > 0 {
		rep.add("", n.Login+" is a member of no role but "+n.Group, Fail, "also of "+strings.Join(others, ", "))
	} else {
		rep.add("", n.Login+" is a member of no role but "+n.Group, Pass, "")
	}
	return nil
}

// probe is a table made for the check, dropped at its end.
type probe struct {
	schema, table, creator string
	newSchema              bool
}

func (p probe) name() string { return ident(p.schema) + "." + ident(p.table) }

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (t *Tool) checkDatabase(ctx context.Context, primary, replica types.DBInstance, opts CheckOptions, login Login, db string, rep *Report) error {
	m, err := t.connect(ctx, primary, opts.Master, db)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	rc := &roleConn{c: m, db: db, master: opts.Master.User, names: RoleNames(opts.Role), res: &RoleResult{}}
	if err := rc.findSchemas(ctx, opts.Schemas); err != nil {
		return err
	}
	if err := rc.findCreators(ctx); err != nil {
		return err
	}
	if len(rc.schemas) == 0 {
		rep.add(db, "a schema to check in", Fail, "the database has no schema outside the system ones")
		return nil
	}

	// Tables made now, after the grants, by each creator, and one in a
	// new schema: the role must read them all.
	var probes []probe
	defer func() {
		for i := len(probes) - 1; i >= 0; i-- {
			p := probes[i]
			q := "DROP TABLE IF EXISTS " + p.name()
			if p.newSchema {
				q = "DROP SCHEMA IF EXISTS " + ident(p.schema) + " CASCADE"
			}
			if _, err := m.Exec(context.Background(), "SET ROLE "+ident(p.creator)+"; "+q+"; RESET ROLE"); err != nil {
				t.log().Warn("dropping a check table failed", "database", db, "table", p.name(), "error", err)
			}
		}
	}()
	sfx := suffix()
	schema := rc.schemas[0]
	for _, cr := range rc.creators {
		p := probe{schema: schema, table: "handover_check_" + sfx + "_" + strings.ToLower(cr), creator: cr}
		_, err := m.Exec(ctx, "SET ROLE "+ident(cr)+"; CREATE TABLE "+p.name()+" (id bigserial PRIMARY KEY, v text); RESET ROLE")
		if err != nil {
			_, _ = m.Exec(ctx, "RESET ROLE")
			rep.add(db, "a table "+cr+" creates later is readable", Warn, fmt.Sprintf("%s cannot create tables in %s (%v), so nothing to check", cr, schema, err))
			continue
		}
		probes = append(probes, p)
	}
	if len(opts.Schemas) == 0 {
		var owner string
		if err := m.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`).Scan(&owner); err != nil {
			return err
		}
		if !slices.Contains(rc.creators, owner) {
			owner = opts.Master.User
		}
		p := probe{schema: "handover_check_" + sfx, table: "t", creator: owner, newSchema: true}
		if _, err := m.Exec(ctx, "SET ROLE "+ident(owner)+"; CREATE SCHEMA "+ident(p.schema)+"; CREATE TABLE "+p.name()+" (id bigserial PRIMARY KEY, v text); RESET ROLE"); err != nil {
			_, _ = m.Exec(ctx, "RESET ROLE")
			rep.add(db, "a table in a new schema is readable", Warn, fmt.Sprintf("%s cannot create a schema (%v)", owner, err))
		} else {
			probes = append(probes, p)
		}
	}

	r, err := t.connect(ctx, primary, login, db)
	if err != nil {
		rep.add(db, "the role can connect", Fail, err.Error())
		return nil
	}
	defer r.Close(context.Background())
	var ro string
	if err := r.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&ro); err != nil {
		return err
	}
	if ro == "on" {
		rep.add(db, "default_transaction_read_only is on at login (guard rail)", Pass, "")
	} else {
		rep.add(db, "default_transaction_read_only is on at login (guard rail)", Fail, "it is "+ro+": run handover replica create again")
	}
	// From here on the guard rail is off: what refuses the writes below
	// must be the privileges.
	if _, err := r.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
		return fmt.Errorf("turning the guard rail off for the check: %w", err)
	}
	for _, p := range probes {
		what := "a table " + p.creator + " created after the grant is readable (" + p.name() + ")"
		if p.newSchema {
			what = "a table in a new schema is readable (" + p.name() + ")"
		}
		if _, err := r.Exec(ctx, "SELECT count(*) FROM "+p.name()); err != nil {
			rep.add(db, what, Fail, err.Error())
		} else {
			rep.add(db, what, Pass, "")
		}
	}

	// The write attempts: on the table each creator made just now, and
	// on the first table the application made, if any.
	var targets []string
	for _, p := range probes {
		if !p.newSchema {
			targets = append(targets, p.name())
		}
	}
	var app string
	err = m.QueryRow(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+userSchemaCond+` AND c.relkind = 'r' AND c.relname NOT LIKE 'handover\_check\_%' AND n.nspname NOT LIKE 'handover\_check\_%'
		AND n.nspname = ANY ($1) ORDER BY n.nspname, c.relname LIMIT 1`, rc.schemas).Scan(&app)
	if err == nil {
		targets = append(targets, app)
	}
	var tempAllowed bool
	if err := m.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'TEMPORARY')`, rc.names.Login).Scan(&tempAllowed); err != nil {
		return err
	}
	for _, tbl := range targets {
		if err := t.attack(ctx, r, m, db, tbl, rep); err != nil {
			return err
		}
	}
	for _, s := range rc.schemas {
		expect42501(ctx, r, rep, db, "CREATE TABLE in schema "+s, "CREATE TABLE "+ident(s)+".handover_probe_"+sfx+" (x int)")
		expect42501(ctx, r, rep, db, "CREATE FUNCTION in schema "+s, "CREATE FUNCTION "+ident(s)+".handover_probe_"+sfx+"() RETURNS int LANGUAGE sql AS 'SELECT 1'")
	}
	expect42501(ctx, r, rep, db, "CREATE SCHEMA", "CREATE SCHEMA handover_probe_"+sfx)
	if tempAllowed {
		rep.add(db, "CREATE TEMP TABLE", Warn, "allowed: PUBLIC has TEMP on this database (handover replica create --lock-public revokes it)")
	} else {
		expect42501(ctx, r, rep, db, "CREATE TEMP TABLE", "CREATE TEMP TABLE handover_probe_"+sfx+" (x int)")
	}
	expect42501(ctx, r, rep, db, "lo_import (a server file into a large object)", "SELECT lo_import('/etc/hostname')")
	expect42501(ctx, r, rep, db, "pg_read_file", "SELECT pg_read_file('/etc/hostname')")

	// On the replica: the probes replicate and the role reads them there.
	return t.checkReplica(ctx, primary, replica, opts, login, db, m, probes, rep)
}

// attack tries every write on tbl as the role; each must fail with 42501.
func (t *Tool) attack(ctx context.Context, r, m *pgx.Conn, db, tbl string, rep *Report) error {
	var col, owner string
	var seq *string
	err := m.QueryRow(ctx, `SELECT quote_ident(a.attname), pg_get_userbyid(c.relowner),
		(SELECT pg_get_serial_sequence($1::text, a2.attname) FROM pg_attribute a2 WHERE a2.attrelid = c.oid AND a2.attnum > 0
		   AND NOT a2.attisdropped AND pg_get_serial_sequence($1::text, a2.attname) IS NOT NULL LIMIT 1)
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.oid = $1::text::regclass ORDER BY a.attnum LIMIT 1`, tbl).Scan(&col, &owner, &seq)
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", tbl, err)
	}
	if _, err := r.Exec(ctx, "SELECT * FROM "+tbl+" LIMIT 1"); err != nil {
		rep.add(db, "SELECT on "+tbl, Fail, err.Error())
	} else {
		rep.add(db, "SELECT on "+tbl, Pass, "")
	}
	for _, a := range []struct{ what, sql string }{
		// INSERT … SELECT … LIMIT 0 needs the INSERT privilege and
		// nothing else: a DEFAULT VALUES insert could be refused for
		// want of USAGE on a serial's sequence while INSERT is granted.
		{"INSERT into " + tbl, "INSERT INTO " + tbl + " SELECT * FROM " + tbl + " LIMIT 0"},
		{"UPDATE " + tbl, "UPDATE " + tbl + " SET " + col + " = " + col},
		{"DELETE from " + tbl, "DELETE FROM " + tbl},
		{"TRUNCATE " + tbl, "TRUNCATE " + tbl},
		{"SELECT … FOR UPDATE on " + tbl, "SELECT * FROM " + tbl + " FOR UPDATE"},
		{"COPY " + tbl + " FROM PROGRAM", "COPY " + tbl + " FROM PROGRAM 'true'"},
		{"SET ROLE to the owner " + owner, "SET ROLE " + ident(owner)},
		{"SET default_transaction_read_only = off, then INSERT into " + tbl, "SET default_transaction_read_only = off; INSERT INTO " + tbl + " SELECT * FROM " + tbl + " LIMIT 0"},
	} {
		expect42501(ctx, r, rep, db, a.what, a.sql)
	}
	// COPY FROM STDIN goes through the copy protocol: the privilege
	// check comes before any data.
	_, err = r.PgConn().CopyFrom(ctx, strings.NewReader(""), "COPY "+tbl+" FROM STDIN")
	judge(rep, db, "COPY "+tbl+" FROM STDIN", err)
	if seq != nil {
		expect42501(ctx, r, rep, db, "nextval on "+*seq, "SELECT nextval("+literal(*seq)+")")
		expect42501(ctx, r, rep, db, "setval on "+*seq, "SELECT setval("+literal(*seq)+", 1)")
	}
	return nil
}

// expect42501 runs sql in a transaction that is rolled back whatever
// happens, and records whether it was refused for want of privilege.
func expect42501(ctx context.Context, c *pgx.Conn, rep *Report, db, what, sql string) {
	tx, err := c.Begin(ctx)
	if err != nil {
		rep.add(db, what, Fail, "cannot start a transaction: "+err.Error())
		return
	}
	_, err = tx.Exec(ctx, sql)
	_ = tx.Rollback(context.Background())
	judge(rep, db, what, err)
}

func judge(rep *Report, db, what string, err error) {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		rep.add(db, what+" is refused", Fail, "it was ALLOWED (rolled back)")
	case errors.As(err, &pe) && pe.Code == "42501":
		rep.add(db, what+" is refused", Pass, "42501 "+pe.Message)
	case errors.As(err, &pe):
		rep.add(db, what+" is refused", Fail, fmt.Sprintf("refused with %s (%s), not 42501: something other than the grants stopped it", pe.Code, pe.Message))
	default:
		rep.add(db, what+" is refused", Fail, err.Error())
	}
}

func (t *Tool) checkReplica(ctx context.Context, primary, replica types.DBInstance, opts CheckOptions, login Login, db string, m *pgx.Conn, probes []probe, rep *Report) error {
	var target string
	if err := m.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		return fmt.Errorf("reading the primary's WAL position: %w", err)
	}
	rm, err := t.connect(ctx, replica, opts.Master, db)
	if err != nil {
		rep.add(db, "the replica is reachable", Fail, err.Error())
		return nil
	}
	defer rm.Close(context.Background())
	start := time.Now()
	deadline := start.Add(opts.LagTimeout)
	for {
		var caught bool
		err := rm.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), $1::pg_lsn) >= 0", target).Scan(&caught)
		if err != nil {
			rep.add(db, "replica lag converges", Fail, err.Error())
			return nil
		}
		if caught {
			rep.add(db, "replica lag converges", Pass, fmt.Sprintf("replayed the primary's %s within %s", target, time.Since(start).Round(time.Millisecond)))
			break
		}
		if time.Now().After(deadline) {
			rep.add(db, "replica lag converges", Fail, fmt.Sprintf("the replica had not replayed %s after %s", target, opts.LagTimeout))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	rr, err := t.connect(ctx, replica, login, db)
	if err != nil {
		rep.add(db, "the role can connect to the replica", Fail, err.Error())
		return nil
	}
	defer rr.Close(context.Background())
	rep.add(db, "the role can connect to the replica", Pass, "")
	for _, p := range probes {
		if _, err := rr.Exec(ctx, "SELECT count(*) FROM "+p.name()); err != nil {
			rep.add(db, "reads on the replica ("+p.name()+")", Fail, err.Error())
		} else {
			rep.add(db, "reads on the replica ("+p.name()+")", Pass, "")
		}
	}
	return nil
}

// checkOtherDatabases tries every other database: the role must not get
// in. One it can enter that holds nothing it can read, and that the
// master user cannot close (RDS's postgres database belongs to rdsadmin),
// is a warning.
func (t *Tool) checkOtherDatabases(ctx context.Context, primary types.DBInstance, master *pgx.Conn, opts CheckOptions, login Login, rep *Report) error {
	rows, err := master.Query(ctx, `SELECT datname, pg_get_userbyid(datdba), has_database_privilege(datname, 'CREATE') FROM pg_database
		WHERE datallowconn AND NOT datistemplate AND datname <> ALL ($1) AND datname <> 'rdsadmin' ORDER BY 1`, opts.Databases)
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	type other struct {
		name, owner string
		masterOwns  bool
	}
	var others []other
	for rows.Next() {
		var o other
		if err := rows.Scan(&o.name, &o.owner, &o.masterOwns); err != nil {
			return err
		}
		o.masterOwns = o.owner == opts.Master.User
		others = append(others, o)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, o := range others {
		what := "cannot connect to database " + o.name
		c, err := t.connect(ctx, primary, login, o.name)
		var pe *pgconn.PgError
		switch {
		case err != nil && errors.As(err, &pe) && pe.Code == "42501":
			rep.add("", what, Pass, "42501 "+pe.Message)
		case err != nil:
			rep.add("", what, Fail, err.Error())
		default:
			var readable int
			qerr := c.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE `+userSchemaCond+` AND c.relkind IN ('r', 'p', 'v', 'm') AND has_table_privilege(c.oid, 'SELECT')`).Scan(&readable)
			c.Close(context.Background())
			hint := fmt.Sprintf("PUBLIC has CONNECT on %s: REVOKE CONNECT ON DATABASE %s FROM PUBLIC as its owner %s", o.name, ident(o.name), o.owner)
			if qerr == nil && readable == 0 && !o.masterOwns {
				rep.add("", what, Warn, "it can, but reads nothing there; "+hint)
			} else {
				rep.add("", what, Fail, fmt.Sprintf("it can, and reads %d tables; %s", readable, hint))
			}
		}
	}
	return nil
}
