package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/replica"
)

const replicaLong = `replica makes an RDS read replica of a PostgreSQL database and one login that
can read everything and change nothing, the same on AWS and on the local cloud.

The role is made on the PRIMARY, as the master user, in each --database: a
replica refuses every write, even the master user's, and replicates the grants
made on its source. It is a NOLOGIN group NAME_group holding the privileges
and a LOGIN member NAME: CONNECT on the named databases, USAGE on the schemas,
SELECT on all tables and sequences, and ALTER DEFAULT PRIVILEGES for every role
that creates objects there (owners of schemas, tables and functions, holders of
CREATE, the database owner, the master user), so that tables created later,
by any of them and in new schemas, are readable too. --lock-public revokes
what PUBLIC has by default: CONNECT and TEMP on the database (creators get
CONNECT of their own first), CREATE on the schemas, EXECUTE on functions.
default_transaction_read_only and statement/idle timeouts are set on the
login as guard rails; they are not the security, the grants are.

Running create again changes only what drifted, and reports it. Passwords
are never logged: a generated one is shown once, or written to
--password-file. The master user's password comes from --master-password-file
or HANDOVER_MASTER_PASSWORD.

check proves the role read-only from the primary (see its --help); status
reports the lag; promote and delete finish a replica's life.`

// replicaFlags are what every replica subcommand shares.
type replicaFlags struct {
	endpoint, region, logLevel, sslmode string
	replicaID, masterUser, masterFile   string
	out                                 output
	poll, timeout                       time.Duration
}

func (f *replicaFlags) register(cmd *cobra.Command) {
	f.out = "text"
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint-url", envOr("HANDOVER_ENDPOINT_URL", ""), "AWS endpoint URL (the local cloud's address); empty for AWS")
	fl.StringVar(&f.region, "region", envOr("HANDOVER_REGION", ""), "AWS region (default: the AWS environment's)")
	fl.StringVar(&f.replicaID, "replica", "", "the read replica's DB instance identifier (required)")
	fl.Var(&f.out, "output", "text or json")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error, off")
	fl.DurationVar(&f.poll, "poll", 5*time.Second, "how often to ask RDS while waiting")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Minute, "how long to wait for RDS")
}

func (f *replicaFlags) registerMaster(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.masterUser, "master-user", "", "the master user (default: the source's MasterUsername)")
	fl.StringVar(&f.masterFile, "master-password-file", "", "file holding the master user's password (or HANDOVER_MASTER_PASSWORD)")
	fl.StringVar(&f.sslmode, "sslmode", "prefer", "libpq sslmode for the connections to the servers (RDS offers TLS; the local cloud does not)")
}

func (f *replicaFlags) tool(ctx context.Context, stderr io.Writer) (*replica.Tool, error) {
	if f.replicaID == "" {
		return nil, &exitError{code: 2, err: errors.New("--replica is required: the read replica's DB instance identifier")}
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	cfg, err := awsConfig(ctx, f.endpoint, f.region, logger)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	p := newProgressFor(stderr, "replica")
	return &replica.Tool{RDS: rds.NewFromConfig(cfg), Log: logger, Progress: p.say, PollInterval: f.poll, WaitTimeout: f.timeout, SSLMode: f.sslmode}, nil
}

// master reads the master user's password.
func (f *replicaFlags) master() (replica.Login, error) {
	l := replica.Login{User: f.masterUser}
	switch {
	case f.masterFile != "":
		pw, err := readSecret(f.masterFile)
		if err != nil {
			return l, &exitError{code: 2, err: fmt.Errorf("--master-password-file: %w", err)}
		}
		if pw == "" {
			return l, &exitError{code: 2, err: fmt.Errorf("--master-password-file %s is empty", f.masterFile)}
		}
		l.Password = pw
	case os.Getenv("HANDOVER_MASTER_PASSWORD") != "":
		l.Password = os.Getenv("HANDOVER_MASTER_PASSWORD")
	default:
		return l, &exitError{code: 2, err: errors.New("the master user's password is needed to work on the primary: pass --master-password-file FILE or set HANDOVER_MASTER_PASSWORD")}
	}
	return l, nil
}

// readSecret reads a one-line secret file; "" when it does not exist.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// replicaErr gives bad input exit code 2 and anything else 1.
func replicaErr(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, replica.ErrBadInput) || errors.Is(err, replica.ErrRoleTaken) || replica.IsNotFound(err) {
		return &exitError{code: 2, err: err}
	}
	return &exitError{code: 1, err: err}
}

func newReplica(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replica",
		Short: "Make an RDS read replica with a read-only role, and prove the role read-only",
		Long:  replicaLong,
		Example: `  # a replica of orders-db and a read-only login for the analysts
  HANDOVER_MASTER_PASSWORD=… handover replica create --source orders-db --replica orders-rr \
      --role analyst --database orders --lock-public --password-file analyst.pw

  # prove it read-only and complete; exit 1 on any failure
  handover replica check --replica orders-rr --role analyst --database orders --password-file analyst.pw

  # lag, promotion, deletion
  handover replica status --replica orders-rr --output json
  handover replica promote --replica orders-rr`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newReplicaCreate(stdout, stderr), newReplicaCheck(stdout, stderr), newReplicaStatus(stdout, stderr),
		newReplicaPromote(stdout, stderr), newReplicaDelete(stdout, stderr))
	return cmd
}

func newReplicaCreate(stdout, stderr io.Writer) *cobra.Command {
	var f replicaFlags
	var source, role, passwordFile, class string
	var databases, schemas []string
	var lock bool
	var stmtTimeout, idleTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the read replica (or find it) and make the read-only role on the primary",
		Long: `create makes the read replica through the RDS API, shows its progress and waits
for it, then makes the read-only role on the primary (see handover replica
--help for what the role holds). Everything that can refuse the request is
checked before anything is made: an unknown source, a non-PostgreSQL engine, a
replica id taken by another instance, a role name held by a superuser or by
any role handover did not make.

Running it again is a no-op that reports drift: each privilege and setting is
checked, and only what is missing is made again (state "fixed").

--password-file FILE: when FILE holds a password, the login gets it (on a
rerun, only if it differs); when FILE is missing or empty, a generated
password is written there (mode 0600). Without it a generated password is
printed once. An existing login's password is otherwise left alone.`,
		Example: `  HANDOVER_MASTER_PASSWORD=… handover replica create --source orders-db --replica orders-rr --role analyst --database orders

  # on the local cloud, two databases, only schema public, PUBLIC locked out
  handover replica create --endpoint-url http://127.0.0.1:4566 --source app-db --replica app-rr \
      --role bi --database app --database billing --schemas public --lock-public \
      --master-password-file master.pw --password-file bi.pw --sslmode disable`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" || role == "" {
				return &exitError{code: 2, err: errors.New("--source and --role are required (and --replica)")}
			}
			tool, err := f.tool(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			master, err := f.master()
			if err != nil {
				return err
			}
			var password string
			if passwordFile != "" {
				if password, err = readSecret(passwordFile); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--password-file: %w", err)}
				}
				if password != "" && len(password) < 12 {
					return &exitError{code: 2, err: fmt.Errorf("--password-file %s holds a password of %d characters; use at least 12, or empty the file to have one generated", passwordFile, len(password))}
				}
			}
			res, err := tool.Create(cmd.Context(), replica.CreateOptions{Source: source, Replica: f.replicaID, Master: master, Class: class,
				Role: replica.RoleOptions{Role: role, Databases: databases, Schemas: schemas, Password: password, LockPublic: lock,
					StatementTimeout: stmtTimeout, IdleTimeout: idleTimeout}})
			if res != nil && res.Role != nil && res.Role.Generated != "" && passwordFile != "" {
				if werr := writeSecret(passwordFile, res.Role.Generated); werr != nil {
					return &exitError{code: 1, err: fmt.Errorf("the login %s was made with a generated password, but writing it to %s failed (%v): run create again with a password in that file", role, passwordFile, werr)}
				}
				res.Role.Generated = ""
				fmt.Fprintf(stderr, "replica: generated password written to %s\n", passwordFile)
			}
			if res != nil {
				if perr := printCreate(stdout, f.out, res); perr != nil {
					return perr
				}
			}
			return replicaErr(err)
		},
	}
	f.register(cmd)
	f.registerMaster(cmd)
	fl := cmd.Flags()
	fl.StringVar(&source, "source", "", "the primary's DB instance identifier (required)")
	fl.StringVar(&role, "role", "", "the login to make; its privileges are held by ROLE_group (required)")
	fl.StringArrayVar(&databases, "database", nil, "a database to grant in (repeat; default: the source's DBName)")
	fl.StringSliceVar(&schemas, "schemas", nil, "only these schemas (comma-separated; default: every schema, including future ones)")
	fl.StringVar(&passwordFile, "password-file", "", "the login's password: read from FILE, or generated into it")
	fl.BoolVar(&lock, "lock-public", false, "revoke PUBLIC's CONNECT and TEMP on the databases, CREATE on the schemas, EXECUTE on functions")
	fl.StringVar(&class, "class", "", "the replica's instance class (default: the source's)")
	fl.DurationVar(&stmtTimeout, "statement-timeout", 15*time.Minute, "statement_timeout set on the login")
	fl.DurationVar(&idleTimeout, "idle-timeout", 5*time.Minute, "idle_in_transaction_session_timeout set on the login")
	return cmd
}

// writeSecret creates path (0600) with the secret; it refuses to replace
// a file that appeared meanwhile with something in it.
func writeSecret(path, secret string) error {
	if old, err := readSecret(path); err == nil && old != "" {
		return fmt.Errorf("%s is no longer empty", path)
	}
	return os.WriteFile(path, []byte(secret+"\n"), 0o600)
}

type createOut struct {
	*replica.CreateResult
	Password string `json:"generated_password,omitempty"`
	Drift    int    `json:"drift"`
}

func printCreate(w io.Writer, out output, res *replica.CreateResult) error {
	o := createOut{CreateResult: res}
	if res.Role != nil {
		o.Password, o.Drift = res.Role.Generated, res.Role.Drift()
	}
	if out == "json" {
		return printJSON(w, o)
	}
	made := "found (made by an earlier run)"
	if res.ReplicaCreated {
		made = "created"
	}
	fmt.Fprintf(w, "replica %s of %s: %s, available at %s\n", res.Replica, res.Source, made, res.Endpoint)
	if res.Role == nil {
		return nil
	}
	fmt.Fprintf(w, "role %s (privileges held by %s), made on the primary %s:\n", res.Role.Login, res.Role.Group, res.Source)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STATE\tDATABASE\tWHAT")
	for _, c := range res.Role.Changes {
		db := c.Database
		if db == "" {
			db = "(cluster)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.State, db, c.What)
	}
	tw.Flush()
	for db, cr := range res.Role.Creators {
		fmt.Fprintf(w, "roles that create objects in %s (default privileges set for each): %s\n", db, strings.Join(cr, ", "))
	}
	for _, warn := range res.Role.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "drift: %d item(s) had changed since the last run and were made so again\n", o.Drift)
	if o.Password != "" {
		fmt.Fprintf(w, "password of %s (shown once, store it now): %s\n", res.Role.Login, o.Password)
	}
	return nil
}

func newReplicaCheck(stdout, stderr io.Writer) *cobra.Command {
	var f replicaFlags
	var role, passwordFile string
	var databases, schemas []string
	var lagTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Prove the read-only role read-only and complete; exit 1 on any failure",
		Long: `check logs in to the PRIMARY as the role and tries every kind of write, each in
a transaction that is rolled back; each must be refused with SQLSTATE 42501
(insufficient privilege). It runs them on the primary because on a replica
every write fails first with 25006 (read-only transaction), which proves
nothing about the grants, and it turns default_transaction_read_only off
first, so the guard rail cannot pass for the security:

  INSERT, UPDATE, DELETE, TRUNCATE, SELECT … FOR UPDATE, COPY FROM STDIN and
  FROM PROGRAM, CREATE TABLE / SCHEMA / FUNCTION, CREATE TEMP TABLE (when
  PUBLIC's TEMP is revoked), nextval / setval, lo_import, pg_read_file, SET
  ROLE to the owner, SET default_transaction_read_only = off then INSERT.

It also makes a table as each role that creates objects, and one in a new
schema (dropped at the end), and reads them as the role on the primary and on
the replica; waits for the replica to replay the primary's WAL position;
tries every other database (none may let the role in); and reads the catalog
(no super, createrole, createdb, replication or bypassrls; no membership but
the group). The master user's password is needed to make those tables.`,
		Example: `  handover replica check --replica orders-rr --role analyst --database orders --password-file analyst.pw
  handover replica check --replica orders-rr --role analyst --database orders --password-file analyst.pw --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role == "" || passwordFile == "" {
				return &exitError{code: 2, err: errors.New("--role and --password-file (the role's password) are required")}
			}
			password, err := readSecret(passwordFile)
			if err != nil || password == "" {
				return &exitError{code: 2, err: fmt.Errorf("--password-file %s: no password in it (%v)", passwordFile, err)}
			}
			tool, err := f.tool(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			master, err := f.master()
			if err != nil {
				return err
			}
			if len(databases) == 0 {
				return &exitError{code: 2, err: errors.New("--database is required (repeat it for each database the role was made in)")}
			}
			rep, err := tool.Check(cmd.Context(), replica.CheckOptions{Replica: f.replicaID, Role: role, Password: password, Master: master,
				Databases: databases, Schemas: schemas, LagTimeout: lagTimeout})
			if err != nil {
				return replicaErr(err)
			}
			if err := printCheck(stdout, f.out, rep); err != nil {
				return err
			}
			if !rep.Passed {
				return &exitError{code: 1, err: fmt.Errorf("role %s is not read-only and complete: see the failed checks above", role)}
			}
			return nil
		},
	}
	f.register(cmd)
	f.registerMaster(cmd)
	fl := cmd.Flags()
	fl.StringVar(&role, "role", "", "the login to check (required)")
	fl.StringVar(&passwordFile, "password-file", "", "file holding the role's password (required)")
	fl.StringArrayVar(&databases, "database", nil, "a database the role was made in (repeat; required)")
	fl.StringSliceVar(&schemas, "schemas", nil, "the schemas the role was limited to, if it was")
	fl.DurationVar(&lagTimeout, "lag-timeout", 60*time.Second, "how long the replica may take to replay the primary's position")
	return cmd
}

func printCheck(w io.Writer, out output, rep *replica.Report) error {
	if out == "json" {
		return printJSON(w, rep)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tDATABASE\tCHECK\tDETAIL")
	counts := map[string]int{}
	for _, r := range rep.Results {
		counts[r.Status]++
		db := r.Database
		if db == "" {
			db = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(r.Status), db, r.Check, r.Detail)
	}
	tw.Flush()
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\n%s: role %s on %s (replica %s): %d passed, %d warnings, %d failed\n", verdict, rep.Role, rep.Source, rep.Replica,
		counts[replica.Pass], counts[replica.Warn], counts[replica.Fail])
	return nil
}

func newReplicaStatus(stdout, stderr io.Writer) *cobra.Command {
	var f replicaFlags
	var database string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a replica's state and lag in bytes and seconds",
		Long: `status reads RDS's view of the replica (its status and replication state) and
its lag: bytes from the primary's current WAL position to the replica's replay
position, seconds since the last replayed transaction's commit (0 when caught
up), and the primary's pg_stat_replication (state, replay_lag).`,
		Example: `  handover replica status --replica orders-rr
  handover replica status --replica orders-rr --output json --master-password-file master.pw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tool, err := f.tool(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			master, err := f.master()
			if err != nil {
				return err
			}
			st, err := tool.Status(cmd.Context(), f.replicaID, master, database)
			if err != nil {
				return replicaErr(err)
			}
			if f.out == "json" {
				return printJSON(stdout, st)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "replica\t%s (of %s)\n", st.Replica, st.Source)
			fmt.Fprintf(tw, "status\t%s, replication %s\n", st.State, orDash(st.Replication))
			fmt.Fprintf(tw, "lag\t%d bytes, %.3f s\n", st.LagBytes, st.LagSeconds)
			fmt.Fprintf(tw, "positions\tprimary %s, replayed %s\n", st.PrimaryLSN, st.ReplayLSN)
			if st.SenderState != "" {
				lag := "-"
				if st.ReplayLag != nil {
					lag = fmt.Sprintf("%.3f s", *st.ReplayLag)
				}
				fmt.Fprintf(tw, "primary's view\t%s, replay_lag %s\n", st.SenderState, lag)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	f.registerMaster(cmd)
	cmd.Flags().StringVar(&database, "database", "", "database to connect to (default: the source's DBName)")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newReplicaPromote(stdout, stderr io.Writer) *cobra.Command {
	var f replicaFlags
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Promote the replica to a standalone instance and wait for it",
		Long: `promote calls PromoteReadReplica and waits until the instance is available and
no longer a replica. The read-only role stays as it was; writes by other
roles become possible on the promoted instance.`,
		Example: `  handover replica promote --replica orders-rr`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tool, err := f.tool(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			inst, err := tool.Promote(cmd.Context(), f.replicaID)
			if err != nil {
				return replicaErr(err)
			}
			if f.out == "json" {
				return printJSON(stdout, map[string]any{"replica": f.replicaID, "status": aws.ToString(inst.DBInstanceStatus), "promoted": true})
			}
			fmt.Fprintf(stdout, "%s promoted: a standalone instance, %s\n", f.replicaID, aws.ToString(inst.DBInstanceStatus))
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newReplicaDelete(stdout, stderr io.Writer) *cobra.Command {
	var f replicaFlags
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a read replica and wait until it is gone",
		Long: `delete deletes a read replica (replicas take no final snapshot) and waits until
RDS no longer knows it. It refuses an instance that is not a replica: deleting
a primary needs a final-snapshot decision this command does not make. The role
lives on the primary and stays.`,
		Example: `  handover replica delete --replica orders-rr`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tool, err := f.tool(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			if err := tool.Delete(cmd.Context(), f.replicaID); err != nil {
				return replicaErr(err)
			}
			if f.out == "json" {
				return printJSON(stdout, map[string]any{"replica": f.replicaID, "deleted": true})
			}
			fmt.Fprintf(stdout, "%s deleted\n", f.replicaID)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
