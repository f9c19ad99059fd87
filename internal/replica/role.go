package replica

// The read-only role, made on the primary as the master user. Every
// privilege is an item with a check and the statements that make it true:
// a first run makes them all, a later run only what drifted, and says so.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/handover-dev/handover/internal/pgpass"
)

// Item states.
const (
	StateMade  = "made"  // first made by this run
	StateOK    = "ok"    // already so
	StateFixed = "fixed" // had drifted from what an earlier run made; made so again
)

// Change is one privilege or setting and what this run did about it.
type Change struct {
	Database string `json:"database,omitempty"`
	What     string `json:"what"`
	State    string `json:"state"`
}

// RoleOptions says what role to make.
type RoleOptions struct {
	Role string
	// Databases to give CONNECT and SELECT in (required).
	Databases []string
	// Schemas limits the grants to these schemas; empty means every
	// schema but the system ones, present and future.
	Schemas []string
	// Password for the login; empty generates one when the login is new
	// and leaves an existing login's alone.
	Password   string
	LockPublic bool
	// StatementTimeout and IdleTimeout are set on the login as guard
	// rails (zero: 15m and 5m).
	StatementTimeout, IdleTimeout time.Duration
}

// RoleResult is what EnsureRole did.
type RoleResult struct {
	Login string `json:"login"`
	Group string `json:"group"`
	// Generated is a password this run generated; the caller shows it
	// once or writes it to a file. Never logged.
	Generated string `json:"-"`
	// PasswordSet says the login's password was set by this run.
	PasswordSet bool                `json:"password_set"`
	Creators    map[string][]string `json:"creators"`
	Changes     []Change            `json:"changes"`
	Warnings    []string            `json:"warnings,omitempty"`
}

// Drift counts the items that had drifted.
func (r *RoleResult) Drift() int {
	n := 0
	for _, c := range r.Changes {
		if c.State == StateFixed {
			n++
		}
	}
	return n
}

const userSchemaCond = `n.nspname NOT IN ` + `('pg_catalog', 'information_schema', 'pg_toast')` + ` AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'`

// ErrRoleTaken matches the error returned when the role name belongs to a
// role this package did not make (it is bad input too). Not worth
// retrying with the same name.
var ErrRoleTaken = errors.New("role name taken")

// checkRoleName refuses a name held by a role this package did not make:
// a superuser above all, but any other role too, since making it
// read-only would change what its owner relies on.
func checkRoleName(ctx context.Context, c *pgx.Conn, name string) error {
	var super, ours bool
	var attrs string
	err := c.QueryRow(ctx, `SELECT rolsuper, coalesce(shobj_description(oid, 'pg_authid'), '') = $2,
		concat_ws(' ', CASE WHEN rolsuper THEN 'SUPERUSER' END, CASE WHEN rolcreaterole THEN 'CREATEROLE' END,
		          CASE WHEN rolcreatedb THEN 'CREATEDB' END, CASE WHEN rolreplication THEN 'REPLICATION' END,
		          CASE WHEN rolbypassrls THEN 'BYPASSRLS' END)
		FROM pg_roles WHERE rolname = $1`, name, comment).Scan(&super, &ours, &attrs)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("looking up role %s: %w", name, err)
	case super:
		return roleTaken("role %s exists and is a superuser: choose another --role", name)
	case !ours:
		if attrs != "" {
			attrs = " (" + attrs + ")"
		}
		return roleTaken("role %s exists%s and is not one of the read-only roles handover makes; it is left alone: choose another --role", name, attrs)
	}
	return nil
}

// roleConn is the master user's connection to one database of the
// primary, with what the items of that database need.
type roleConn struct {
	c        *pgx.Conn
	db       string
	master   string
	names    Names
	res      *RoleResult
	rerun    bool
	creators []string
	schemas  []string
}

// ensure runs check (a query returning one boolean) and, when false, the
// statements, then checks again: an item that stays false is an error.
// On a run after the one that made the role, an item found false had
// drifted.
func (rc *roleConn) ensure(ctx context.Context, what string, check string, args []any, stmts ...string) error {
	ok, err := rc.check(ctx, check, args...)
	if err != nil {
		return fmt.Errorf("checking %s in %s: %w", what, rc.db, err)
	}
	if ok {
		rc.res.Changes = append(rc.res.Changes, Change{Database: rc.db, What: what, State: StateOK})
		return nil
	}
	for _, s := range stmts {
		if _, err := rc.c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s in %s: %s: %w", what, rc.db, redact(s), err)
		}
	}
	if ok, err = rc.check(ctx, check, args...); err != nil || !ok {
		return fmt.Errorf("%s in %s: still not so after %s (%v); the master user may lack the privilege to grant it", what, rc.db, redact(strings.Join(stmts, "; ")), err)
	}
	state := StateMade
	if rc.rerun {
		state = StateFixed
	}
	rc.res.Changes = append(rc.res.Changes, Change{Database: rc.db, What: what, State: state})
	return nil
}

func (rc *roleConn) check(ctx context.Context, q string, args ...any) (bool, error) {
	var ok bool
	err := rc.c.QueryRow(ctx, q, args...).Scan(&ok)
	return ok, err
}

// redact hides a PASSWORD clause from an error or log line.
func redact(s string) string {
	if i := strings.Index(strings.ToUpper(s), " PASSWORD "); i >= 0 {
		return s[:i] + " PASSWORD ********"
	}
	return s
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// EnsureRole makes (or brings back) the read-only role on the primary:
// connect is how to log in to one of its databases as the master user.
func EnsureRole(ctx context.Context, connect func(ctx context.Context, db string) (*pgx.Conn, error), master string, opts RoleOptions) (*RoleResult, error) {
	if len(opts.Databases) == 0 {
		return nil, errors.New("no database to grant in: name one with --database")
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 15 * time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	names := RoleNames(opts.Role)
	res := &RoleResult{Login: names.Login, Group: names.Group, Creators: map[string][]string{}}

	// Guard rails first, on every database, before anything changes.
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for _, db := range opts.Databases {
		c, err := connect(ctx, db)
		if err != nil {
			return nil, err
		}
		conns[db] = c
	}
	first := conns[opts.Databases[0]]
	for _, n := range []string{names.Login, names.Group} {
		if err := checkRoleName(ctx, first, n); err != nil {
			return nil, err
		}
	}
	if strings.EqualFold(opts.Role, master) {
		return nil, roleTaken("--role %s is the master user: choose another name", opts.Role)
	}
	var loginExists bool
	if err := first.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, names.Login).Scan(&loginExists); err != nil {
		return nil, fmt.Errorf("looking up role %s: %w", names.Login, err)
	}

	rc := &roleConn{c: first, db: "", master: master, names: names, res: res, rerun: loginExists}
	if err := rc.ensureRoles(ctx, opts, loginExists); err != nil {
		return res, err
	}
	for _, db := range opts.Databases {
		rc := &roleConn{c: conns[db], db: db, master: master, names: names, res: res, rerun: loginExists}
		if err := rc.ensureDatabase(ctx, opts); err != nil {
			return res, err
		}
		res.Creators[db] = rc.creators
	}
	return res, nil
}

func (rc *roleConn) ensureRoles(ctx context.Context, opts RoleOptions, loginExists bool) error {
	n := rc.names
	exists := `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`
	if err := rc.ensure(ctx, "group role "+n.Group+" (NOLOGIN)", exists, []any{n.Group},
		"CREATE ROLE "+ident(n.Group)+" NOLOGIN", "COMMENT ON ROLE "+ident(n.Group)+" IS "+literal(comment)); err != nil {
		return err
	}
	if !loginExists {
		pw := opts.Password
		if pw == "" {
			var err error
			if pw, err = generatePassword(); err != nil {
				return err
			}
			rc.res.Generated = pw
		}
		lit, err := pgpass.Literal(pw)
		if err != nil {
			return err
		}
		if err := rc.ensure(ctx, "login role "+n.Login, exists, []any{n.Login},
			"CREATE ROLE "+ident(n.Login)+" LOGIN PASSWORD "+lit, "COMMENT ON ROLE "+ident(n.Login)+" IS "+literal(comment)); err != nil {
			return err
		}
		rc.res.PasswordSet = true
	} else {
		rc.res.Changes = append(rc.res.Changes, Change{What: "login role " + n.Login, State: StateOK})
		if opts.Password != "" {
			if err := rc.ensurePassword(ctx, opts.Password); err != nil {
				return err
			}
		}
	}
	if err := rc.ensure(ctx, "login "+n.Login+" has no SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS",
		`SELECT NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls) AND rolinherit AND rolcanlogin FROM pg_roles WHERE rolname = $1`, []any{n.Login},
		"ALTER ROLE "+ident(n.Login)+" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT LOGIN"); err != nil {
		return err
	}
	if err := rc.ensure(ctx, n.Login+" is a member of "+n.Group, `SELECT pg_has_role($1, $2, 'MEMBER')`, []any{n.Login, n.Group},
		"GRANT "+ident(n.Group)+" TO "+ident(n.Login)); err != nil {
		return err
	}
	// A member of any other role would have that role's privileges.
	for _, r := range []string{n.Login, n.Group} {
		var others []string
		if err := rc.c.QueryRow(ctx, `SELECT coalesce(array_agg(g.rolname ORDER BY g.rolname), '{}') FROM pg_auth_members m
			JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 AND g.rolname <> $2`, r, n.Group).Scan(&others); err != nil {
			return fmt.Errorf("reading the memberships of %s: %w", r, err)
		}
		for _, o := range others {
			if _, err := rc.c.Exec(ctx, "REVOKE "+ident(o)+" FROM "+ident(r)); err != nil {
				return fmt.Errorf("revoking %s from %s: %w", o, r, err)
			}
			rc.res.Changes = append(rc.res.Changes, Change{What: r + " is a member of no role but " + n.Group + " (was in " + o + ")", State: StateFixed})
		}
	}
	settings := map[string]string{
		"default_transaction_read_only":       "on",
		"statement_timeout":                   fmt.Sprint(opts.StatementTimeout.Milliseconds()),
		"idle_in_transaction_session_timeout": fmt.Sprint(opts.IdleTimeout.Milliseconds()),
	}
	for _, k := range []string{"default_transaction_read_only", "statement_timeout", "idle_in_transaction_session_timeout"} {
		v := settings[k]
		if err := rc.ensure(ctx, fmt.Sprintf("%s set %s = %s (a guard rail, not the security)", n.Login, k, v),
			`SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
				WHERE r.rolname = $1 AND s.setdatabase = 0 AND $2 = ANY (s.setconfig))`, []any{n.Login, k + "=" + v},
			"ALTER ROLE "+ident(n.Login)+" SET "+k+" = "+literal(v)); err != nil {
			return err
		}
	}
	return nil
}

// ensurePassword sets the login's password unless it is already that:
// the stored verifier is salted, so the way to compare is to log in.
func (rc *roleConn) ensurePassword(ctx context.Context, password string) error {
	cfg := rc.c.Config().Copy()
	cfg.User, cfg.Password = rc.names.Login, password
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		rc.res.Changes = append(rc.res.Changes, Change{What: "password of " + rc.names.Login, State: StateOK})
		return nil
	}
	lit, err := pgpass.Literal(password)
	if err != nil {
		return err
	}
	if _, err := rc.c.Exec(ctx, "ALTER ROLE "+ident(rc.names.Login)+" PASSWORD "+lit); err != nil {
		return fmt.Errorf("setting the password of %s: %w", rc.names.Login, err)
	}
	rc.res.PasswordSet = true
	rc.res.Changes = append(rc.res.Changes, Change{What: "password of " + rc.names.Login + " (set from --password-file)", State: StateFixed})
	return nil
}

// findCreators lists the roles that create objects in the database: the
// owners of its schemas, relations and functions, the roles that may
// create in a schema or the database, its owner and the master user.
// Superusers are left out (a non-superuser cannot set their default
// privileges) with a warning, as is PUBLIC holding CREATE.
func (rc *roleConn) findCreators(ctx context.Context) error {
	rows, err := rc.c.Query(ctx, `
		WITH owners AS (
			SELECT n.nspowner AS r FROM pg_namespace n WHERE `+userSchemaCond+`
			UNION SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE `+userSchemaCond+`
			UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE `+userSchemaCond+`
			UNION SELECT a.grantee FROM pg_namespace n, aclexplode(n.nspacl) a WHERE `+userSchemaCond+` AND a.privilege_type = 'CREATE'
			UNION SELECT a.grantee FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.privilege_type = 'CREATE'
			UNION SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()
			UNION SELECT oid FROM pg_roles WHERE rolname = $1
		)
		SELECT coalesce(r.rolname, 'PUBLIC'), coalesce(r.rolsuper, false) FROM owners o LEFT JOIN pg_roles r ON r.oid = o.r
		WHERE r.rolname IS NULL OR (r.rolname NOT LIKE 'pg\_%' AND r.rolname NOT IN ($2, $3))
		ORDER BY 1`, rc.master, rc.names.Login, rc.names.Group)
	if err != nil {
		return fmt.Errorf("listing the roles that create objects in %s: %w", rc.db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var super bool
		if err := rows.Scan(&name, &super); err != nil {
			return err
		}
		switch {
		case name == "PUBLIC":
			rc.res.Warnings = append(rc.res.Warnings, fmt.Sprintf("%s: PUBLIC may create objects (CREATE on a schema or the database); what roles not listed here create will not be readable until the next run: use --lock-public, or revoke CREATE from PUBLIC", rc.db))
		case super:
			rc.res.Warnings = append(rc.res.Warnings, fmt.Sprintf("%s: superuser %s owns objects here; its future objects are not covered (only a superuser can set its default privileges)", rc.db, name))
		default:
			rc.creators = append(rc.creators, name)
		}
	}
	return rows.Err()
}

func (rc *roleConn) findSchemas(ctx context.Context, want []string) error {
	rows, err := rc.c.Query(ctx, `SELECT n.nspname FROM pg_namespace n WHERE `+userSchemaCond+` ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("listing the schemas of %s: %w", rc.db, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the schemas of %s: %w", rc.db, err)
	}
	if len(want) == 0 {
		rc.schemas = have
		return nil
	}
	for _, s := range want {
		if !slices.Contains(have, s) {
			return fmt.Errorf("schema %s does not exist in database %s (it has %s): check --schemas", s, rc.db, strings.Join(have, ", "))
		}
	}
	rc.schemas = want
	return nil
}

func (rc *roleConn) ensureDatabase(ctx context.Context, opts RoleOptions) error {
	if err := rc.findSchemas(ctx, opts.Schemas); err != nil {
		return err
	}
	if err := rc.findCreators(ctx); err != nil {
		return err
	}
	g := rc.names.Group
	aclHas := `SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee
		WHERE d.datname = current_database() AND r.rolname = $1 AND a.privilege_type = 'CONNECT')`
	// A database the role has no CONNECT in yet is new to it: what is
	// missing there is being made, not drift.
	if had, err := rc.check(ctx, aclHas, g); err != nil {
		return fmt.Errorf("checking CONNECT on %s: %w", rc.db, err)
	} else if !had {
		rc.rerun = false
	}
	// Default privileges can only be set for a role one is a member of,
	// and grants on its objects made only by it or its members.
	for _, cr := range rc.creators {
		if cr == rc.master {
			continue
		}
		if err := rc.ensure(ctx, "master user "+rc.master+" is a member of creator "+cr+" (to grant on its objects)",
			`SELECT pg_has_role($1, $2, 'MEMBER')`, []any{rc.master, cr}, "GRANT "+ident(cr)+" TO "+ident(rc.master)); err != nil {
			return err
		}
	}
	if err := rc.ensure(ctx, "CONNECT on database "+rc.db+" to "+g, aclHas, []any{g},
		"GRANT CONNECT ON DATABASE "+ident(rc.db)+" TO "+ident(g)); err != nil {
		return err
	}
	if opts.LockPublic {
		if err := rc.lockPublicDatabase(ctx, aclHas); err != nil {
			return err
		}
	}
	for _, s := range rc.schemas {
		if err := rc.ensureSchema(ctx, s, opts.LockPublic); err != nil {
			return err
		}
	}
	for _, cr := range rc.creators {
		if err := rc.ensureDefaults(ctx, cr, opts); err != nil {
			return err
		}
	}
	return nil
}

// lockPublicDatabase revokes PUBLIC's CONNECT and TEMP; every creator
// gets CONNECT of its own first, so the applications keep working.
func (rc *roleConn) lockPublicDatabase(ctx context.Context, aclHas string) error {
	for _, cr := range rc.creators {
		var owner bool
		if err := rc.c.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) = $1 FROM pg_database WHERE datname = current_database()`, cr).Scan(&owner); err != nil {
			return err
		}
		if owner {
			continue
		}
		if err := rc.ensure(ctx, "CONNECT on database "+rc.db+" to creator "+cr+" (before PUBLIC's is revoked)", aclHas, []any{cr},
			"GRANT CONNECT ON DATABASE "+ident(rc.db)+" TO "+ident(cr)); err != nil {
			return err
		}
	}
	return rc.ensure(ctx, "PUBLIC has no CONNECT or TEMP on database "+rc.db,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
			WHERE d.datname = current_database() AND a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY'))`, nil,
		"REVOKE CONNECT, TEMPORARY ON DATABASE "+ident(rc.db)+" FROM PUBLIC")
}

func (rc *roleConn) ensureSchema(ctx context.Context, s string, lock bool) error {
	g, si := rc.names.Group, ident(s)
	if err := rc.ensure(ctx, "USAGE on schema "+s+" to "+g, `SELECT has_schema_privilege($1, $2, 'USAGE')`, []any{g, s},
		"GRANT USAGE ON SCHEMA "+si+" TO "+ident(g)); err != nil {
		return err
	}
	if err := rc.ensure(ctx, "SELECT on every table and view in "+s+" to "+g,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT has_table_privilege($1, c.oid, 'SELECT'))`, []any{g, s},
		"GRANT SELECT ON ALL TABLES IN SCHEMA "+si+" TO "+ident(g)); err != nil {
		return err
	}
	if err := rc.ensure(ctx, "SELECT on every sequence in "+s+" to "+g,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $2 AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege($1, c.oid, 'SELECT') ELSE false END)`, []any{g, s},
		"GRANT SELECT ON ALL SEQUENCES IN SCHEMA "+si+" TO "+ident(g)); err != nil {
		return err
	}
	if err := rc.ensure(ctx, g+" holds no write privilege on the tables and sequences in "+s,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $2 AND CASE WHEN c.relkind IN ('r', 'p', 'v', 'm', 'f') THEN has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
			                            WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, 'USAGE, UPDATE') ELSE false END)
		  AND NOT has_schema_privilege($1, $2, 'CREATE')`, []any{g, s},
		"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA "+si+" FROM "+ident(g),
		"REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA "+si+" FROM "+ident(g),
		"REVOKE CREATE ON SCHEMA "+si+" FROM "+ident(g)); err != nil {
		return err
	}
	if !lock {
		return nil
	}
	if err := rc.ensure(ctx, "PUBLIC has no CREATE on schema "+s,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
			WHERE n.nspname = $1 AND a.grantee = 0 AND a.privilege_type = 'CREATE')`, []any{s},
		"REVOKE CREATE ON SCHEMA "+si+" FROM PUBLIC"); err != nil {
		return err
	}
	return rc.ensure(ctx, "PUBLIC has no EXECUTE on the functions in "+s,
		`SELECT NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
			aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE n.nspname = $1 AND a.grantee = 0 AND a.privilege_type = 'EXECUTE')`, []any{s},
		"REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA "+si+" FROM PUBLIC")
}

// ensureDefaults sets creator's default privileges, so that what it
// creates later is readable: tables, sequences and (when every schema is
// covered) schemas. With --schemas they are set per schema.
func (rc *roleConn) ensureDefaults(ctx context.Context, creator string, opts RoleOptions) error {
	g := rc.names.Group
	has := `SELECT EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a
		WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1)
		  AND d.defaclnamespace = CASE WHEN $2 = '' THEN 0 ELSE (SELECT oid FROM pg_namespace WHERE nspname = $2) END
		  AND d.defaclobjtype = $3 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $4) AND a.privilege_type = $5)`
	scopes := []string{""}
	if len(opts.Schemas) > 0 {
		scopes = rc.schemas
	}
	for _, sc := range scopes {
		in, where := "", ""
		if sc != "" {
			in, where = " IN SCHEMA "+ident(sc), " in schema "+sc
		}
		alter := "ALTER DEFAULT PRIVILEGES FOR ROLE " + ident(creator) + in
		for _, k := range []struct{ objtype, priv, objects string }{{"r", "SELECT", "TABLES"}, {"S", "SELECT", "SEQUENCES"}} {
			if err := rc.ensure(ctx, fmt.Sprintf("default privileges: %s on %s %s creates%s", k.priv, strings.ToLower(k.objects), creator, where),
				has, []any{creator, sc, k.objtype, g, k.priv}, alter+" GRANT "+k.priv+" ON "+k.objects+" TO "+ident(g)); err != nil {
				return err
			}
		}
	}
	alter := "ALTER DEFAULT PRIVILEGES FOR ROLE " + ident(creator)
	if len(opts.Schemas) == 0 {
		if err := rc.ensure(ctx, "default privileges: USAGE on schemas "+creator+" creates",
			has, []any{creator, "", "n", g, "USAGE"}, alter+" GRANT USAGE ON SCHEMAS TO "+ident(g)); err != nil {
			return err
		}
	}
	if opts.LockPublic {
		if err := rc.ensure(ctx, "default privileges: no EXECUTE for PUBLIC on functions "+creator+" creates",
			`SELECT EXISTS (SELECT 1 FROM pg_default_acl d WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1)
				AND d.defaclnamespace = 0 AND d.defaclobjtype = 'f'
				AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))`, []any{creator},
			alter+" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"); err != nil {
			return err
		}
	}
	return nil
}

const passwordChars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// generatePassword returns 32 random characters (about 187 bits).
func generatePassword() (string, error) {
	var b strings.Builder
	for range 32 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(passwordChars))))
		if err != nil {
			return "", fmt.Errorf("generating a password: %w", err)
		}
		b.WriteByte(passwordChars[n.Int64()])
	}
	return b.String(), nil
}
