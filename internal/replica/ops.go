package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
)

// CreateOptions says what replica and role to make.
type CreateOptions struct {
	Source, Replica string
	// Master logs in to the primary; User defaults to the source's
	// MasterUsername.
	Master Login
	Role   RoleOptions
	// Class is the replica's instance class (default: the source's).
	Class string
	Tags  map[string]string
}

// CreateResult is what Create did.
type CreateResult struct {
	Source  string `json:"source"`
	Replica string `json:"replica"`
	// ReplicaCreated is false when the replica already existed (a rerun).
	ReplicaCreated bool        `json:"replica_created"`
	Endpoint       string      `json:"endpoint"`
	Role           *RoleResult `json:"role"`
}

// ErrBadInput matches the errors of requests that cannot succeed as given
// (unknown source, taken id, another engine, a taken role name). Not
// worth retrying.
var ErrBadInput = errors.New("bad input")

// Create makes the replica (or finds the one an earlier run made), waits
// for it, and makes the role on the primary. Everything that can refuse
// the request is checked before anything is made. Safe to repeat: a rerun
// changes only what drifted and reports it.
func (t *Tool) Create(ctx context.Context, opts CreateOptions) (*CreateResult, error) {
	src, err := t.describe(ctx, opts.Source)
	if IsNotFound(err) {
		return nil, badInput("source DB instance %s not found: check --source, and --region or --endpoint-url", opts.Source)
	}
	if err != nil {
		return nil, err
	}
	if e := aws.ToString(src.Engine); e != "postgres" {
		return nil, badInput("source %s runs %s; handover replica makes PostgreSQL replicas only (engine postgres)", opts.Source, e)
	}
	if s := aws.ToString(src.ReadReplicaSourceDBInstanceIdentifier); s != "" {
		return nil, badInput("source %s is itself a replica of %s: make the replica of %s, where the role must be made anyway", opts.Source, s, s)
	}
	if st := aws.ToString(src.DBInstanceStatus); st != "available" {
		return nil, fmt.Errorf("source %s is %s; try again when it is available", opts.Source, st)
	}
	if opts.Master.User == "" {
		opts.Master.User = aws.ToString(src.MasterUsername)
	}
	if len(opts.Role.Databases) == 0 {
		if db := aws.ToString(src.DBName); db != "" {
			opts.Role.Databases = []string{db}
		} else {
			return nil, badInput("source %s has no initial database: name the databases with --database", opts.Source)
		}
	}

	// The replica id: free, or the replica of this source an earlier run
	// made.
	existing, err := t.describe(ctx, opts.Replica)
	switch {
	case IsNotFound(err):
	case err != nil:
		return nil, err
	case aws.ToString(existing.ReadReplicaSourceDBInstanceIdentifier) != opts.Source:
		return nil, badInput("DB instance %s already exists and is not a read replica of %s: choose another --replica", opts.Replica, opts.Source)
	}
	created := IsNotFound(err)

	// The role's guard rails on the primary, before the replica is made.
	connect := func(ctx context.Context, db string) (*pgx.Conn, error) { return t.connect(ctx, src, opts.Master, db) }
	c, err := connect(ctx, opts.Role.Databases[0])
	if err != nil {
		return nil, err
	}
	names := RoleNames(opts.Role.Role)
	for _, n := range []string{names.Login, names.Group} {
		if err = checkRoleName(ctx, c, n); err != nil {
			break
		}
	}
	c.Close(context.Background())
	if err != nil {
		return nil, err // a taken name is bad input already (ErrRoleTaken)
	}

	if created {
		in := &rds.CreateDBInstanceReadReplicaInput{
			DBInstanceIdentifier: aws.String(opts.Replica), SourceDBInstanceIdentifier: aws.String(opts.Source),
			Tags: []types.Tag{{Key: aws.String("handover:replica-of"), Value: aws.String(opts.Source)}},
		}
		if opts.Class != "" {
			in.DBInstanceClass = aws.String(opts.Class)
		}
		for k, v := range opts.Tags {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		t.say("creating read replica %s of %s", opts.Replica, opts.Source)
		if _, err := t.RDS.CreateDBInstanceReadReplica(ctx, in); err != nil {
			if apiCode(err) == "DBInstanceAlreadyExists" {
				return nil, badInput("DB instance %s already exists: choose another --replica", opts.Replica)
			}
			return nil, fmt.Errorf("creating read replica %s of %s: %w", opts.Replica, opts.Source, err)
		}
		t.log().Info("read replica requested", "replica", opts.Replica, "source", opts.Source)
	} else {
		t.say("read replica %s of %s exists", opts.Replica, opts.Source)
	}
	rep, err := t.waitAvailable(ctx, opts.Replica)
	if err != nil {
		return nil, err
	}
	t.say("making role %s on the primary %s", opts.Role.Role, opts.Source)
	role, err := EnsureRole(ctx, connect, opts.Master.User, opts.Role)
	res := &CreateResult{Source: opts.Source, Replica: opts.Replica, ReplicaCreated: created, Role: role,
		Endpoint: fmt.Sprintf("%s:%d", aws.ToString(rep.Endpoint.Address), aws.ToInt32(rep.Endpoint.Port))}
	if err != nil {
		return res, fmt.Errorf("making role %s on %s: %w", opts.Role.Role, opts.Source, err)
	}
	t.log().Info("read-only role ready", "replica", opts.Replica, "role", opts.Role.Role, "drift", role.Drift())
	return res, nil
}

// Promote makes the replica a standalone instance and waits for it.
func (t *Tool) Promote(ctx context.Context, id string) (types.DBInstance, error) {
	inst, err := t.describe(ctx, id)
	if err != nil {
		return inst, err
	}
	if aws.ToString(inst.ReadReplicaSourceDBInstanceIdentifier) == "" {
		return inst, badInput("DB instance %s is not a read replica: nothing to promote", id)
	}
	t.say("promoting %s (replica of %s)", id, aws.ToString(inst.ReadReplicaSourceDBInstanceIdentifier))
	if _, err := t.RDS.PromoteReadReplica(ctx, &rds.PromoteReadReplicaInput{DBInstanceIdentifier: aws.String(id)}); err != nil {
		return inst, fmt.Errorf("promoting %s: %w", id, err)
	}
	// The status reads available until RDS starts the promotion; wait
	// for the source id to go before waiting for available.
	if _, err := t.waitFor(ctx, id, "promoted", func(in types.DBInstance, err error) (bool, error) {
		return err == nil && in.ReadReplicaSourceDBInstanceIdentifier == nil, err
	}); err != nil {
		return inst, err
	}
	return t.waitAvailable(ctx, id)
}

// Delete deletes a read replica (only a replica: a primary's deletion
// needs a final-snapshot decision this command does not make) and waits.
func (t *Tool) Delete(ctx context.Context, id string) error {
	inst, err := t.describe(ctx, id)
	if err != nil {
		return err
	}
	if aws.ToString(inst.ReadReplicaSourceDBInstanceIdentifier) == "" {
		return badInput("DB instance %s is not a read replica; handover replica delete deletes replicas only (use the RDS API, with its final-snapshot choice, for a primary)", id)
	}
	t.say("deleting read replica %s", id)
	if _, err := t.RDS.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	_, err = t.waitFor(ctx, id, "deleted", func(_ types.DBInstance, err error) (bool, error) {
		if IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	return err
}

// Status is a replica's state and lag.
type Status struct {
	Replica     string  `json:"replica"`
	Source      string  `json:"source"`
	State       string  `json:"state"`
	Replication string  `json:"replication"` // RDS's StatusInfos: replicating, error, …
	PrimaryLSN  string  `json:"primary_lsn"`
	ReplayLSN   string  `json:"replay_lsn"`
	LagBytes    int64   `json:"lag_bytes"`
	LagSeconds  float64 `json:"lag_seconds"`
	// From the primary's pg_stat_replication, when it shows the replica.
	SenderState string    `json:"sender_state,omitempty"`
	ReplayLag   *float64  `json:"replay_lag_seconds,omitempty"`
	CheckedAt   time.Time `json:"checked_at"`
}

// Status reads the replica's lag: bytes from the primary's current WAL
// position and the replica's replay position, seconds from the last
// replayed transaction's commit time (zero when caught up), and the
// primary's own view of the connection.
func (t *Tool) Status(ctx context.Context, id string, master Login, database string) (*Status, error) {
	replica, primary, err := t.pair(ctx, id)
	if err != nil {
		return nil, err
	}
	if master.User == "" {
		master.User = aws.ToString(primary.MasterUsername)
	}
	if database == "" {
		database = aws.ToString(primary.DBName)
	}
	if database == "" {
		database = "postgres"
	}
	st := &Status{Replica: id, Source: aws.ToString(primary.DBInstanceIdentifier), State: aws.ToString(replica.DBInstanceStatus), CheckedAt: time.Now().UTC()}
	for _, si := range replica.StatusInfos {
		if aws.ToString(si.StatusType) == "read replication" {
			st.Replication = aws.ToString(si.Status)
		}
	}
	p, err := t.connect(ctx, primary, master, database)
	if err != nil {
		return nil, err
	}
	defer p.Close(context.Background())
	r, err := t.connect(ctx, replica, master, database)
	if err != nil {
		return nil, err
	}
	defer r.Close(context.Background())
	// The replica first: its replay position can only be behind the
	// primary's position read after it.
	var replay *string
	var lagSec float64
	if err := r.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text,
		CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
		     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END`).Scan(&replay, &lagSec); err != nil {
		return nil, fmt.Errorf("reading the replica's replay position: %w", err)
	}
	if replay == nil {
		return nil, fmt.Errorf("DB instance %s is not in recovery: it is no longer a replica", id)
	}
	st.ReplayLSN, st.LagSeconds = *replay, lagSec
	if err := p.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint`, *replay).Scan(&st.PrimaryLSN, &st.LagBytes); err != nil {
		return nil, fmt.Errorf("reading the primary's WAL position: %w", err)
	}
	if st.LagBytes == 0 {
		st.LagSeconds = 0
	}
	// pg_stat_replication: the row whose application name is the
	// replica's (the local cloud's cluster_name), else the only row.
	rows, err := p.Query(ctx, `SELECT application_name, state, extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication`)
	if err == nil {
		type row struct {
			app, state string
			lag        *float64
		}
		var all []row
		for rows.Next() {
			var x row
			if rows.Scan(&x.app, &x.state, &x.lag) == nil {
				all = append(all, x)
			}
		}
		rows.Close()
		for _, x := range all {
			if x.app == id || len(all) == 1 {
				st.SenderState, st.ReplayLag = x.state, x.lag
			}
		}
	}
	return st, nil
}
