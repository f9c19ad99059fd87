package replica

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"

	lcrds "github.com/handover-dev/handover/internal/localcloud/rds"
	"github.com/handover-dev/handover/internal/testenv"
)

// cloud is the local cloud's RDS on real servers, for the end-to-end
// tests.
type cloud struct {
	svc    *lcrds.Service
	client *rds.Client
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	if os.Getenv("HANDOVER_SKIP_POSTGRES") == "1" {
		t.Skip("HANDOVER_SKIP_POSTGRES=1: skipping a test that needs PostgreSQL")
	}
	svc, err := lcrds.New(lcrds.Config{DataDir: filepath.Join(testenv.OpenTempDir(t), "rds"), Region: "us-east-1", AccountID: "123456789012",
		MonitorInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &cloud{svc: svc, client: rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})}
}

func (c *cloud) tool(t *testing.T) *Tool {
	var mu sync.Mutex
	return &Tool{RDS: c.client, PollInterval: 50 * time.Millisecond, WaitTimeout: 2 * time.Minute, SSLMode: "disable",
		Progress: func(msg string) { mu.Lock(); defer mu.Unlock(); t.Log("progress: " + msg) }}
}

func (c *cloud) createPrimary(t *testing.T, id, master, password, db string) types.DBInstance {
	t.Helper()
	if _, err := c.client.CreateDBInstance(tctx(t), &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
		MasterUsername: aws.String(master), MasterUserPassword: aws.String(password), DBName: aws.String(db),
		BackupRetentionPeriod: aws.Int32(1),
	}); err != nil {
		t.Fatal(err)
	}
	inst, err := c.tool(t).waitAvailable(tctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func tctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func pgConnect(t *testing.T, inst types.DBInstance, user, password, db string) *pgx.Conn {
	t.Helper()
	c, err := pgDial(t, inst, user, password, db)
	if err != nil {
		t.Fatalf("connecting as %s to %s: %v", user, db, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgDial(t *testing.T, inst types.DBInstance, user, password, db string) (*pgx.Conn, error) {
	dsn := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", url.PathEscape(user), url.PathEscape(password),
		aws.ToString(inst.Endpoint.Address), aws.ToInt32(inst.Endpoint.Port), db)
	return pgx.Connect(tctx(t), dsn)
}

func mustExec(t *testing.T, c *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := c.Exec(tctx(t), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

const (
	pollFast = 50 * time.Millisecond
	waitMax  = 2 * time.Minute
)

func sleep(t *testing.T) { time.Sleep(pollFast) }
