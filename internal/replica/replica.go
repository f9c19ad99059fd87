// Package replica is S5: an RDS read replica of a PostgreSQL database and a
// least-privilege read-only role for it, the same on AWS and on the local
// cloud. The replica is made through the RDS API; the role is made on the
// primary (a replica refuses every write, even the master user's), in
// each database, with default privileges for every role that creates
// objects there, so that tables created later are readable too. Check
// proves the role read-only by trying every kind of write on the primary,
// where only the grants can refuse them.
//
// It must never log or return a password it did not generate, and never
// weaken a role it did not make.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5"
)

// RDS is the part of the RDS API this package calls.
type RDS interface {
	// DescribeDBInstances returns DBInstanceNotFound for an unknown id.
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	// CreateDBInstanceReadReplica is not safe to repeat: a second call
	// gets DBInstanceAlreadyExists.
	CreateDBInstanceReadReplica(ctx context.Context, in *rds.CreateDBInstanceReadReplicaInput, opts ...func(*rds.Options)) (*rds.CreateDBInstanceReadReplicaOutput, error)
	PromoteReadReplica(ctx context.Context, in *rds.PromoteReadReplicaInput, opts ...func(*rds.Options)) (*rds.PromoteReadReplicaOutput, error)
	DeleteDBInstance(ctx context.Context, in *rds.DeleteDBInstanceInput, opts ...func(*rds.Options)) (*rds.DeleteDBInstanceOutput, error)
}

var _ RDS = (*rds.Client)(nil)

// Progress receives one line per step of a long operation.
type Progress func(msg string)

// Tool runs the replica operations.
type Tool struct {
	RDS RDS
	Log *slog.Logger
	// Progress may be nil.
	Progress Progress
	// PollInterval is how often the waits ask RDS (default 5s; the local
	// cloud answers in well under a second).
	PollInterval time.Duration
	// WaitTimeout bounds each wait (default 60m, RDS's replicas of big
	// databases take long).
	WaitTimeout time.Duration
	// SSLMode is used for every connection (default "prefer": TLS where
	// the server offers it, as RDS does).
	SSLMode string
}

func (t *Tool) say(format string, args ...any) {
	if t.Progress != nil {
		t.Progress(fmt.Sprintf(format, args...))
	}
}

func (t *Tool) log() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}

func (t *Tool) poll() time.Duration {
	if t.PollInterval <= 0 {
		return 5 * time.Second
	}
	return t.PollInterval
}

// inputError is a refusal of the request as given: its message says what
// to change, and errors.Is matches ErrBadInput (and, for a role name,
// ErrRoleTaken) without their text being appended.
type inputError struct {
	msg  string
	role bool
}

func (e *inputError) Error() string { return e.msg }

func (e *inputError) Is(target error) bool {
	return target == ErrBadInput || e.role && target == ErrRoleTaken
}

func badInput(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

func roleTaken(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...), role: true}
}

// ErrNotFound is returned, wrapped, when a DB instance does not exist.
var ErrNotFound = errors.New("DB instance not found")

// IsNotFound reports whether err says a DB instance does not exist. Not
// worth retrying.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// describe returns one DB instance.
func (t *Tool) describe(ctx context.Context, id string) (types.DBInstance, error) {
	out, err := t.RDS.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if apiCode(err) == "DBInstanceNotFound" {
		return types.DBInstance{}, fmt.Errorf("DB instance %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return types.DBInstance{}, fmt.Errorf("describing DB instance %s: %w", id, err)
	}
	if len(out.DBInstances) != 1 {
		return types.DBInstance{}, fmt.Errorf("describing DB instance %s: %d answers", id, len(out.DBInstances))
	}
	return out.DBInstances[0], nil
}

// waitFor polls id until done says so, reporting each new status.
func (t *Tool) waitFor(ctx context.Context, id, what string, done func(types.DBInstance, error) (bool, error)) (types.DBInstance, error) {
	timeout := t.WaitTimeout
	if timeout <= 0 {
		timeout = 60 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, last := time.Now(), ""
	for {
		inst, err := t.describe(ctx, id)
		ok, derr := done(inst, err)
		if derr != nil {
			return inst, derr
		}
		if ok {
			return inst, nil
		}
		if st := aws.ToString(inst.DBInstanceStatus); st != last && err == nil {
			t.say("%s is %s (%s)", id, st, time.Since(start).Round(time.Second))
			last = st
		}
		select {
		case <-ctx.Done():
			return inst, fmt.Errorf("waiting for %s to be %s: %w (last status %q)", id, what, ctx.Err(), last)
		case <-time.After(t.poll()):
		}
	}
}

func (t *Tool) waitAvailable(ctx context.Context, id string) (types.DBInstance, error) {
	return t.waitFor(ctx, id, "available", func(inst types.DBInstance, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		switch st := aws.ToString(inst.DBInstanceStatus); st {
		case "available":
			return inst.Endpoint != nil, nil
		case "failed", "deleting", "incompatible-restore", "incompatible-parameters", "storage-full":
			return false, fmt.Errorf("DB instance %s is %s", id, st)
		}
		return false, nil
	})
}

// Login is how to log in to a database server.
type Login struct {
	User, Password string
}

// dsn builds a connection string for inst's endpoint. The password goes
// in the URL only in memory; it is never logged.
func (t *Tool) dsn(inst types.DBInstance, login Login, database string) (string, error) {
	if inst.Endpoint == nil {
		return "", fmt.Errorf("DB instance %s has no endpoint yet (status %s)", aws.ToString(inst.DBInstanceIdentifier), aws.ToString(inst.DBInstanceStatus))
	}
	mode := t.SSLMode
	if mode == "" {
		mode = "prefer"
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(login.User, login.Password),
		Host: fmt.Sprintf("%s:%d", aws.ToString(inst.Endpoint.Address), aws.ToInt32(inst.Endpoint.Port)), Path: "/" + database,
		RawQuery: url.Values{"sslmode": {mode}, "connect_timeout": {"10"}, "application_name": {"handover-replica"}}.Encode()}
	return u.String(), nil
}

func (t *Tool) connect(ctx context.Context, inst types.DBInstance, login Login, database string) (*pgx.Conn, error) {
	dsn, err := t.dsn(inst, login, database)
	if err != nil {
		return nil, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		// pgx's errors do not carry the password; say who and where.
		return nil, fmt.Errorf("connecting to database %s on %s as %s: %w", database, aws.ToString(inst.DBInstanceIdentifier), login.User, scrub(err, login.Password))
	}
	return c, nil
}

// scrub removes a password from an error's text, should a driver ever
// echo its connection string.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "********"))
}

// Names is what the role's two PostgreSQL roles are called.
type Names struct {
	Login, Group string
}

// RoleNames: --role NAME logs in as NAME; its privileges are held by the
// NOLOGIN group NAME_group, so that they can be given to a second login
// (a rotation) without granting anything again.
func RoleNames(role string) Names { return Names{Login: role, Group: role + "_group"} }

// comment marks the roles this package made, so it never takes over, or
// weakens, a role someone else made.
const comment = "made by handover replica: read-only role"
