package rds

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

const (
	masterUser = "app"
	masterPass = "first-Secret1"
)

// TestLifecycle drives one primary through everything RDS does to it, on
// real servers: create, a replica made under a write load, snapshot and
// restore, promotion, modification, restart of the local cloud, deletion.
// The steps share their servers, so they run in order.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	c := e.client
	top := t // connections that outlive a subtest are closed with the test

	out, err := c.CreateDBInstance(ctx(t), &awsrds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String("Orders-DB"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
		MasterUsername: aws.String(masterUser), MasterUserPassword: aws.String(masterPass), DBName: aws.String("orders"),
		AllocatedStorage: aws.Int32(20), BackupRetentionPeriod: aws.Int32(1),
		VpcSecurityGroupIds: []string{"sg-0123"},
		Tags:                []types.Tag{{Key: aws.String("handover:environment"), Value: aws.String("prod")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.DBInstance; aws.ToString(got.DBInstanceStatus) != "creating" || got.Endpoint != nil || aws.ToString(got.DBInstanceIdentifier) != "orders-db" {
		t.Fatalf("CreateDBInstance answered %s, endpoint %v, id %s; want creating, none, orders-db",
			aws.ToString(got.DBInstanceStatus), got.Endpoint, aws.ToString(got.DBInstanceIdentifier))
	}
	primary := e.waitAvailable("orders-db")
	if primary.Endpoint == nil || aws.ToInt32(primary.Endpoint.Port) == 0 {
		t.Fatalf("available instance without an endpoint: %+v", primary.Endpoint)
	}
	if len(primary.VpcSecurityGroups) != 1 || aws.ToString(primary.VpcSecurityGroups[0].VpcSecurityGroupId) != "sg-0123" {
		t.Errorf("security groups %+v, want sg-0123", primary.VpcSecurityGroups)
	}

	db := connect(t, primary, masterUser, masterPass, "orders")
	t.Run("the master user is no superuser", func(t *testing.T) {
		var super, createRole, createDB, repl bool
		if err := db.QueryRow(ctx(t), `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB, &repl); err != nil {
			t.Fatal(err)
		}
		if super || !createRole || !createDB || repl {
			t.Errorf("master: super %v createrole %v createdb %v replication %v; want false true true false", super, createRole, createDB, repl)
		}
		if _, err := db.Exec(ctx(t), `ALTER ROLE app SUPERUSER`); sqlState(err) != "42501" {
			t.Errorf("ALTER ROLE app SUPERUSER: %v, want 42501", err)
		}
		if _, err := db.Exec(ctx(t), `CREATE ROLE sneaky REPLICATION LOGIN`); sqlState(err) != "42501" {
			t.Errorf("CREATE ROLE … REPLICATION: %v, want 42501", err)
		}
	})
	t.Run("the hidden superuser is not reachable over TCP", func(t *testing.T) {
		if c, err := dial(t, primary, adminUser, "", "postgres"); err == nil {
			c.Close(context.Background())
			t.Fatal("connected as the hidden superuser over TCP")
		}
		if _, err := dial(t, primary, masterUser, "wrong-password", "orders"); err == nil {
			t.Fatal("logged in with a wrong password")
		}
	})

	// Data, a role and default privileges, which the snapshot must keep.
	for _, q := range []string{
		`CREATE TABLE items (id bigserial PRIMARY KEY, v text)`,
		`INSERT INTO items (v) SELECT 'row ' || g FROM generate_series(1, 100) g`,
		`CREATE ROLE reporting NOLOGIN`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reporting`,
	} {
		if _, err := db.Exec(ctx(t), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// A write load runs while the replica is made.
	var written atomic.Int64
	written.Store(100)
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		w, err := dial(t, primary, masterUser, masterPass, "orders")
		if err != nil {
			t.Errorf("connecting the write load: %v", err)
			return
		}
		defer w.Close(context.Background())
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Exec(context.Background(), `INSERT INTO items (v) VALUES ('load')`); err != nil {
				t.Errorf("write under load: %v", err)
				return
			}
			written.Add(1)
		}
	})

	t.Run("a replica needs the source's backups", func(t *testing.T) {
		_, err := c.CreateDBInstance(ctx(t), &awsrds.CreateDBInstanceInput{
			DBInstanceIdentifier: aws.String("nobackup"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
			MasterUsername: aws.String("x1"), MasterUserPassword: aws.String(masterPass), BackupRetentionPeriod: aws.Int32(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		e.waitAvailable("nobackup")
		_, err = c.CreateDBInstanceReadReplica(ctx(t), &awsrds.CreateDBInstanceReadReplicaInput{
			DBInstanceIdentifier: aws.String("nobackup-rr"), SourceDBInstanceIdentifier: aws.String("nobackup")})
		if apiCode(err) != "InvalidDBInstanceState" {
			t.Fatalf("replica of a source without backups: %v, want InvalidDBInstanceState", err)
		}
		if _, err := c.DeleteDBInstance(ctx(t), &awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("nobackup"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		e.waitDeleted("nobackup")
	})

	rr, err := c.CreateDBInstanceReadReplica(ctx(t), &awsrds.CreateDBInstanceReadReplicaInput{
		DBInstanceIdentifier: aws.String("orders-rr"), SourceDBInstanceIdentifier: aws.String("orders-db"),
		Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("analytics")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(rr.DBInstance.ReadReplicaSourceDBInstanceIdentifier) != "orders-db" {
		t.Errorf("replica's source %q, want orders-db", aws.ToString(rr.DBInstance.ReadReplicaSourceDBInstanceIdentifier))
	}
	replica := e.waitAvailable("orders-rr")
	close(stop)
	load.Wait()

	t.Run("taken ids are refused", func(t *testing.T) {
		_, err := c.CreateDBInstanceReadReplica(ctx(t), &awsrds.CreateDBInstanceReadReplicaInput{
			DBInstanceIdentifier: aws.String("orders-rr"), SourceDBInstanceIdentifier: aws.String("orders-db")})
		if apiCode(err) != "DBInstanceAlreadyExists" {
			t.Errorf("replica id taken: %v, want DBInstanceAlreadyExists", err)
		}
		_, err = c.CreateDBInstance(ctx(t), &awsrds.CreateDBInstanceInput{
			DBInstanceIdentifier: aws.String("orders-db"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
			MasterUsername: aws.String(masterUser), MasterUserPassword: aws.String(masterPass)})
		if apiCode(err) != "DBInstanceAlreadyExists" {
			t.Errorf("instance id taken: %v, want DBInstanceAlreadyExists", err)
		}
		_, err = c.CreateDBInstanceReadReplica(ctx(t), &awsrds.CreateDBInstanceReadReplicaInput{
			DBInstanceIdentifier: aws.String("x-rr"), SourceDBInstanceIdentifier: aws.String("no-such-db")})
		if apiCode(err) != "DBInstanceNotFound" {
			t.Errorf("unknown source: %v, want DBInstanceNotFound", err)
		}
		if got := e.describe("orders-db").ReadReplicaDBInstanceIdentifiers; !slices.Equal(got, []string{"orders-rr"}) {
			t.Errorf("refused calls changed the source's replicas: %v", got)
		}
	})

	t.Run("the replica streams and has every write", func(t *testing.T) {
		if got := e.describe("orders-db").ReadReplicaDBInstanceIdentifiers; !slices.Equal(got, []string{"orders-rr"}) {
			t.Errorf("source's replicas %v, want [orders-rr]", got)
		}
		eventually(t, "StatusInfos replicating", func() error {
			in := e.describe("orders-rr")
			if len(in.StatusInfos) != 1 || aws.ToString(in.StatusInfos[0].Status) != "replicating" || !aws.ToBool(in.StatusInfos[0].Normal) {
				return fmt.Errorf("StatusInfos %+v", in.StatusInfos)
			}
			return nil
		})
		r := connect(t, replica, masterUser, masterPass, "orders")
		want := written.Load()
		eventually(t, "the replica catches up", func() error {
			var n int64
			if err := r.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&n); err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("replica has %d rows, primary %d", n, want)
			}
			return nil
		})
		if _, err := r.Exec(ctx(t), `INSERT INTO items (v) VALUES ('on the replica')`); sqlState(err) != "25006" {
			t.Errorf("write on the replica: %v, want 25006 (read-only transaction)", err)
		}
	})

	t.Run("snapshot and restore keep data, roles and default privileges", func(t *testing.T) {
		var before int64
		if err := db.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateDBSnapshot(ctx(t), &awsrds.CreateDBSnapshotInput{DBInstanceIdentifier: aws.String("orders-db"), DBSnapshotIdentifier: aws.String("orders-snap")}); err != nil {
			t.Fatal(err)
		}
		e.waitSnapshot("orders-snap")
		e.waitAvailable("orders-db")
		if _, err := db.Exec(ctx(t), `INSERT INTO items (v) VALUES ('after the snapshot')`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RestoreDBInstanceFromDBSnapshot(ctx(t), &awsrds.RestoreDBInstanceFromDBSnapshotInput{
			DBInstanceIdentifier: aws.String("orders-restored"), DBSnapshotIdentifier: aws.String("orders-snap")}); err != nil {
			t.Fatal(err)
		}
		restored := e.waitAvailable("orders-restored")
		if aws.ToString(restored.MasterUsername) != masterUser || aws.ToString(restored.DBName) != "orders" {
			t.Errorf("restored master %s db %s", aws.ToString(restored.MasterUsername), aws.ToString(restored.DBName))
		}
		r := connect(t, restored, masterUser, masterPass, "orders")
		var n int64
		if err := r.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&n); err != nil || n != before {
			t.Errorf("restored rows %d (%v), want %d as at the snapshot", n, err, before)
		}
		var acl string
		if err := r.QueryRow(ctx(t), `SELECT defaclacl::text FROM pg_default_acl d JOIN pg_roles o ON o.oid = d.defaclrole WHERE o.rolname = 'app'`).Scan(&acl); err != nil {
			t.Fatalf("default privileges after restore: %v", err)
		}
		if acl != "{reporting=r/app}" {
			t.Errorf("default ACL %s, want {reporting=r/app}", acl)
		}
		// The restored copy is a primary of its own.
		if _, err := r.Exec(ctx(t), `INSERT INTO items (v) VALUES ('restored writes')`); err != nil {
			t.Errorf("write on the restored instance: %v", err)
		}
	})

	t.Run("the AWS CLI lists it all", func(t *testing.T) { e.checkCLI(t) })

	t.Run("a restart brings every server back, the replica streaming", func(t *testing.T) {
		db.Close(context.Background())
		e.restart()
		c = e.client
		for _, id := range []string{"orders-db", "orders-rr", "orders-restored"} {
			inst := e.waitAvailable(id)
			conn := connect(t, inst, masterUser, masterPass, "orders")
			var n int64
			if err := conn.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&n); err != nil || n == 0 {
				t.Errorf("%s after restart: %d rows (%v)", id, n, err)
			}
		}
		primary = e.describe("orders-db")
		db = connect(top, primary, masterUser, masterPass, "orders")
		if _, err := db.Exec(ctx(t), `INSERT INTO items (v) VALUES ('after the restart')`); err != nil {
			t.Fatal(err)
		}
		r := connect(t, e.describe("orders-rr"), masterUser, masterPass, "orders")
		eventually(t, "the replica streams after the restart", func() error {
			var n int
			if err := r.QueryRow(ctx(t), `SELECT count(*) FROM items WHERE v = 'after the restart'`).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("%d rows (%v)", n, err)
			}
			return nil
		})
	})

	t.Run("promote", func(t *testing.T) {
		if _, err := c.PromoteReadReplica(ctx(t), &awsrds.PromoteReadReplicaInput{DBInstanceIdentifier: aws.String("orders-db")}); apiCode(err) != "InvalidDBInstanceState" {
			t.Errorf("promoting a primary: %v, want InvalidDBInstanceState", err)
		}
		if _, err := c.PromoteReadReplica(ctx(t), &awsrds.PromoteReadReplicaInput{DBInstanceIdentifier: aws.String("orders-rr")}); err != nil {
			t.Fatal(err)
		}
		promoted := e.waitAvailable("orders-rr")
		if promoted.ReadReplicaSourceDBInstanceIdentifier != nil || len(e.describe("orders-db").ReadReplicaDBInstanceIdentifiers) != 0 {
			t.Errorf("ids not cleared: source %v, replicas %v", promoted.ReadReplicaSourceDBInstanceIdentifier, e.describe("orders-db").ReadReplicaDBInstanceIdentifiers)
		}
		if len(promoted.StatusInfos) != 0 {
			t.Errorf("a promoted instance still reports %+v", promoted.StatusInfos)
		}
		p := connect(t, promoted, masterUser, masterPass, "orders")
		if _, err := p.Exec(ctx(t), `INSERT INTO items (v) VALUES ('promoted')`); err != nil {
			t.Errorf("write after promotion: %v", err)
		}
		var slots int
		if err := db.QueryRow(ctx(t), `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
			t.Errorf("%d replication slots left on the source (%v), want 0", slots, err)
		}
	})

	t.Run("modify", func(t *testing.T) {
		if _, err := c.ModifyDBInstance(ctx(t), &awsrds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("orders-restored"),
			MasterUserPassword: aws.String("second-Secret2"), DeletionProtection: aws.Bool(true), BackupRetentionPeriod: aws.Int32(7),
			NewDBInstanceIdentifier: aws.String("orders-copy"), ApplyImmediately: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DescribeDBInstances(ctx(t), &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("orders-restored")}); apiCode(err) != "DBInstanceNotFound" {
			t.Errorf("old name after a rename: %v, want DBInstanceNotFound", err)
		}
		got := e.waitAvailable("orders-copy")
		if aws.ToInt32(got.BackupRetentionPeriod) != 7 || !aws.ToBool(got.DeletionProtection) {
			t.Errorf("retention %d protection %v, want 7 true", aws.ToInt32(got.BackupRetentionPeriod), aws.ToBool(got.DeletionProtection))
		}
		if _, err := dial(t, got, masterUser, masterPass, "orders"); err == nil {
			t.Error("the old master password still works")
		}
		connect(t, got, masterUser, "second-Secret2", "orders")
		if _, err := c.DeleteDBInstance(ctx(t), &awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("orders-copy"), SkipFinalSnapshot: aws.Bool(true)}); apiCode(err) != "InvalidParameterCombination" {
			t.Errorf("deleting a protected instance: %v, want InvalidParameterCombination", err)
		}
	})

	t.Run("a server that dies is booted again", func(t *testing.T) {
		e.svc.mu.Lock()
		srv := e.svc.servers[e.svc.st.Instances["orders-copy"].ResourceID]
		e.svc.mu.Unlock()
		if err := srv.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-srv.done
		eventually(t, "orders-copy serves again", func() error {
			inst := e.describe("orders-copy")
			c, err := dial(t, inst, masterUser, "second-Secret2", "orders")
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			var n int64
			return c.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&n)
		})
	})

	t.Run("delete", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			in   awsrds.DeleteDBInstanceInput
			code string
		}{
			{"neither flag", awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("orders-db")}, "InvalidParameterCombination"},
			{"both", awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("orders-db"), SkipFinalSnapshot: aws.Bool(true), FinalDBSnapshotIdentifier: aws.String("x")}, "InvalidParameterCombination"},
			{"final snapshot name taken", awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("orders-db"), FinalDBSnapshotIdentifier: aws.String("orders-snap")}, "DBSnapshotAlreadyExists"},
			{"unknown", awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("nope"), SkipFinalSnapshot: aws.Bool(true)}, "DBInstanceNotFound"},
		} {
			if _, err := c.DeleteDBInstance(ctx(t), &tc.in); apiCode(err) != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
		if _, err := c.DeleteDBInstance(ctx(t), &awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("orders-db"), FinalDBSnapshotIdentifier: aws.String("orders-final")}); err != nil {
			t.Fatal(err)
		}
		e.waitDeleted("orders-db")
		e.waitSnapshot("orders-final")
		snaps, err := c.DescribeDBSnapshots(ctx(t), &awsrds.DescribeDBSnapshotsInput{DBInstanceIdentifier: aws.String("orders-db")})
		if err != nil || len(snaps.DBSnapshots) != 2 {
			t.Fatalf("snapshots of the deleted instance: %v (%v), want orders-final and orders-snap", snaps, err)
		}
		if _, err := c.DeleteDBSnapshot(ctx(t), &awsrds.DeleteDBSnapshotInput{DBSnapshotIdentifier: aws.String("orders-snap")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DescribeDBSnapshots(ctx(t), &awsrds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String("orders-snap")}); apiCode(err) != "DBSnapshotNotFound" {
			t.Errorf("deleted snapshot: %v, want DBSnapshotNotFound", err)
		}
	})
}
