package rds

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/handover-dev/handover/internal/localcloud/faults"
	"github.com/handover-dev/handover/internal/testenv"
)

const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
	// skipEnv skips the tests that need PostgreSQL, as pgtest's does.
	skipEnv = "HANDOVER_SKIP_POSTGRES"
)

type env struct {
	t      *testing.T
	dir    string
	svc    *Service
	srv    *httptest.Server
	client *awsrds.Client
	faults *faults.Injector
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Getenv(skipEnv) == "1" {
		t.Skipf("%s=1: skipping a test that needs PostgreSQL", skipEnv)
	}
	e := &env{t: t, dir: testenv.OpenTempDir(t), faults: faults.New(1)}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	svc, err := New(Config{DataDir: filepath.Join(e.dir, "rds"), Region: testRegion, AccountID: testAccount, Faults: e.faults,
		MonitorInterval: 100 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.srv = newHTTPServer(svc)
	e.client = newClient(e.srv.URL)
}

func newHTTPServer(svc *Service) *httptest.Server { return httptest.NewServer(svc) }

func newClient(endpoint string) *awsrds.Client {
	return awsrds.New(awsrds.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

func (e *env) close() {
	if e.svc == nil {
		return
	}
	e.srv.Close()
	if err := e.svc.Close(); err != nil {
		e.t.Errorf("closing the service: %v", err)
	}
	e.svc = nil
}

// restart closes the service and opens it again on the same directory.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func (e *env) waitAvailable(id string) types.DBInstance {
	e.t.Helper()
	w := awsrds.NewDBInstanceAvailableWaiter(e.client, func(o *awsrds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	out, err := w.WaitForOutput(ctx(e.t), &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, 2*time.Minute)
	if err != nil {
		e.t.Fatalf("waiting for %s to be available: %v (%s)", id, err, e.describeMessage(id))
	}
	return out.DBInstances[0]
}

func (e *env) describeMessage(id string) string {
	e.svc.mu.Lock()
	defer e.svc.mu.Unlock()
	if inst := e.svc.st.Instances[id]; inst != nil {
		return inst.Status + ": " + inst.Message
	}
	return "gone"
}

func (e *env) describe(id string) types.DBInstance {
	e.t.Helper()
	out, err := e.client.DescribeDBInstances(ctx(e.t), &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		e.t.Fatalf("describing %s: %v", id, err)
	}
	return out.DBInstances[0]
}

func (e *env) waitSnapshot(id string) {
	e.t.Helper()
	w := awsrds.NewDBSnapshotAvailableWaiter(e.client, func(o *awsrds.DBSnapshotAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx(e.t), &awsrds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String(id)}, 2*time.Minute); err != nil {
		e.t.Fatalf("waiting for snapshot %s: %v", id, err)
	}
}

func (e *env) waitDeleted(id string) {
	e.t.Helper()
	w := awsrds.NewDBInstanceDeletedWaiter(e.client, func(o *awsrds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx(e.t), &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, 2*time.Minute); err != nil {
		e.t.Fatalf("waiting for %s to be deleted: %v", id, err)
	}
}

// connect logs in to an instance's endpoint over TCP, as a client would.
func connect(t *testing.T, inst types.DBInstance, user, password, database string) *pgx.Conn {
	t.Helper()
	c, err := dial(t, inst, user, password, database)
	if err != nil {
		t.Fatalf("connecting to %s as %s: %v", aws.ToString(inst.DBInstanceIdentifier), user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func dial(t *testing.T, inst types.DBInstance, user, password, database string) (*pgx.Conn, error) {
	if inst.Endpoint == nil {
		return nil, fmt.Errorf("%s has no endpoint (status %s)", aws.ToString(inst.DBInstanceIdentifier), aws.ToString(inst.DBInstanceStatus))
	}
	dsn := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable&connect_timeout=5", url.PathEscape(user), url.PathEscape(password),
		aws.ToString(inst.Endpoint.Address), aws.ToInt32(inst.Endpoint.Port), database)
	return pgx.Connect(ctx(t), dsn)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// eventually polls f until it returns nil or the time is up.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
