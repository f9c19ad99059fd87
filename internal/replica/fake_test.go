package replica

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
)

// fakeRDS holds DB instances by id; calls are recorded.
type fakeRDS struct {
	mu        sync.Mutex
	instances map[string]types.DBInstance
	NextErr   error
	Calls     []string
}

var _ RDS = (*fakeRDS)(nil)

func newFakeRDS(insts ...types.DBInstance) *fakeRDS {
	f := &fakeRDS{instances: map[string]types.DBInstance{}}
	for _, in := range insts {
		f.instances[aws.ToString(in.DBInstanceIdentifier)] = in
	}
	return f
}

func (f *fakeRDS) Reset() { f.mu.Lock(); f.Calls, f.NextErr = nil, nil; f.mu.Unlock() }

func (f *fakeRDS) call(name string) error {
	f.Calls = append(f.Calls, name)
	err := f.NextErr
	f.NextErr = nil
	return err
}

var errNotFound = &smithy.GenericAPIError{Code: "DBInstanceNotFound", Message: "not found"}

func (f *fakeRDS) DescribeDBInstances(_ context.Context, in *rds.DescribeDBInstancesInput, _ ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DescribeDBInstances"); err != nil {
		return nil, err
	}
	inst, ok := f.instances[aws.ToString(in.DBInstanceIdentifier)]
	if !ok {
		return nil, errNotFound
	}
	return &rds.DescribeDBInstancesOutput{DBInstances: []types.DBInstance{inst}}, nil
}

func (f *fakeRDS) CreateDBInstanceReadReplica(_ context.Context, in *rds.CreateDBInstanceReadReplicaInput, _ ...func(*rds.Options)) (*rds.CreateDBInstanceReadReplicaOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.call("CreateDBInstanceReadReplica")
}

func (f *fakeRDS) PromoteReadReplica(_ context.Context, in *rds.PromoteReadReplicaInput, _ ...func(*rds.Options)) (*rds.PromoteReadReplicaOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &rds.PromoteReadReplicaOutput{}, f.call("PromoteReadReplica")
}

func (f *fakeRDS) DeleteDBInstance(_ context.Context, in *rds.DeleteDBInstanceInput, _ ...func(*rds.Options)) (*rds.DeleteDBInstanceOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &rds.DeleteDBInstanceOutput{}, f.call("DeleteDBInstance")
}

func inst(id, engine, status, source string) types.DBInstance {
	in := types.DBInstance{DBInstanceIdentifier: aws.String(id), Engine: aws.String(engine), DBInstanceStatus: aws.String(status),
		MasterUsername: aws.String("app"), DBName: aws.String("shop")}
	if source != "" {
		in.ReadReplicaSourceDBInstanceIdentifier = aws.String(source)
	}
	return in
}

// TestCreateRefusesBeforeMaking: requests that cannot succeed are refused
// with ErrBadInput before anything is made.
func TestCreateRefusesBeforeMaking(t *testing.T) {
	for _, tc := range []struct {
		name  string
		insts []types.DBInstance
		opts  CreateOptions
		want  string
	}{
		{"unknown source", nil, CreateOptions{Source: "db", Replica: "rr"}, "not found"},
		{"not PostgreSQL", []types.DBInstance{inst("db", "mysql", "available", "")}, CreateOptions{Source: "db", Replica: "rr"}, "PostgreSQL replicas only"},
		{"source is a replica", []types.DBInstance{inst("db", "postgres", "available", "top")}, CreateOptions{Source: "db", Replica: "rr"}, "itself a replica"},
		{"replica id taken", []types.DBInstance{inst("db", "postgres", "available", ""), inst("rr", "postgres", "available", "")},
			CreateOptions{Source: "db", Replica: "rr"}, "not a read replica of db"},
		{"no database", []types.DBInstance{{DBInstanceIdentifier: aws.String("db"), Engine: aws.String("postgres"), DBInstanceStatus: aws.String("available")}},
			CreateOptions{Source: "db", Replica: "rr"}, "--database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRDS(tc.insts...)
			_, err := (&Tool{RDS: f}).Create(context.Background(), tc.opts)
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrBadInput saying %q", err, tc.want)
			}
			for _, c := range f.Calls {
				if c != "DescribeDBInstances" {
					t.Errorf("called %s", c)
				}
			}
		})
	}
	t.Run("source not available", func(t *testing.T) {
		_, err := (&Tool{RDS: newFakeRDS(inst("db", "postgres", "modifying", ""))}).Create(context.Background(), CreateOptions{Source: "db", Replica: "rr"})
		if err == nil || !strings.Contains(err.Error(), "modifying") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("describe fails", func(t *testing.T) {
		f := newFakeRDS()
		f.NextErr = &smithy.GenericAPIError{Code: "Throttling", Message: "slow down"}
		_, err := (&Tool{RDS: f}).Create(context.Background(), CreateOptions{Source: "db", Replica: "rr"})
		if err == nil || errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "Throttling") {
			t.Fatalf("%v, want the API error, not bad input", err)
		}
	})
}

func TestPromoteAndDeleteOnlyReplicas(t *testing.T) {
	f := newFakeRDS(inst("db", "postgres", "available", ""))
	tool := &Tool{RDS: f}
	if _, err := tool.Promote(context.Background(), "db"); !errors.Is(err, ErrBadInput) {
		t.Errorf("promote a primary: %v", err)
	}
	if err := tool.Delete(context.Background(), "db"); !errors.Is(err, ErrBadInput) {
		t.Errorf("delete a primary: %v", err)
	}
	if _, err := tool.Promote(context.Background(), "nope"); !IsNotFound(err) {
		t.Errorf("promote unknown: %v", err)
	}
	for _, c := range f.Calls {
		if c != "DescribeDBInstances" {
			t.Errorf("called %s", c)
		}
	}
}

func TestWaitAvailableStopsOnFailure(t *testing.T) {
	tool := &Tool{RDS: newFakeRDS(inst("rr", "postgres", "failed", "db")), PollInterval: time.Millisecond}
	if _, err := tool.waitAvailable(context.Background(), "rr"); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("%v", err)
	}
}

func TestSecretsStayOut(t *testing.T) {
	if got := redact(`CREATE ROLE "a" LOGIN PASSWORD 'SCRAM-SHA-256$4096:x'`); strings.Contains(got, "SCRAM") {
		t.Errorf("redact left %s", got)
	}
	if got := scrub(errors.New("bad dsn postgres://a:hunter2@h/db"), "hunter2").Error(); strings.Contains(got, "hunter2") {
		t.Errorf("scrub left %s", got)
	}
	a, err := generatePassword()
	b, _ := generatePassword()
	if err != nil || len(a) != 32 || a == b || strings.Trim(a, passwordChars) != "" {
		t.Errorf("generated %q, %q (%v)", a, b, err)
	}
}
