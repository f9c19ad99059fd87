package replica

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
)

const (
	master   = "app"
	masterPW = "master-Secret1"
	writerPW = "writer-Secret1"
)

// TestReplicaEndToEnd runs the whole job on the local cloud's RDS, on
// real servers: a replica made under a write load, the role, the check's
// matrix, drift, tables made later by another role and in a new schema,
// snapshot and restore, status, promotion, and the bad inputs that must
// change nothing. The steps share their servers, so they run in order.
func TestReplicaEndToEnd(t *testing.T) {
	cl := newCloud(t)
	tool := cl.tool(t)
	top := t
	primary := cl.createPrimary(t, "shop-db", master, masterPW, "shop")
	m := pgConnect(t, primary, master, masterPW, "shop")
	// An application role that owns tables of its own, besides the master.
	mustExec(t, m,
		`CREATE ROLE writer LOGIN PASSWORD '`+writerPW+`'`,
		`GRANT CREATE, USAGE ON SCHEMA public TO writer`,
		`CREATE TABLE items (id bigserial PRIMARY KEY, name text)`,
		`INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 50) g`)
	w := pgConnect(t, primary, "writer", writerPW, "shop")
	mustExec(t, w, `CREATE TABLE orders (id bigserial PRIMARY KEY, item bigint, qty int)`, `INSERT INTO orders (item, qty) VALUES (1, 2)`)

	masterLogin := Login{User: master, Password: masterPW}
	opts := CreateOptions{Source: "shop-db", Replica: "shop-rr", Master: masterLogin,
		Role: RoleOptions{Role: "analyst", Databases: []string{"shop"}, LockPublic: true}}

	t.Run("bad input changes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			mod  func(*CreateOptions)
			want string
		}{
			{"unknown source", func(o *CreateOptions) { o.Source = "no-such-db" }, "not found"},
			{"replica id taken by a primary", func(o *CreateOptions) { o.Replica = "shop-db" }, "not a read replica of"},
			{"role name of a superuser", func(o *CreateOptions) { o.Role.Role = "rdsadmin" }, "is a superuser"},
			{"role name of someone else's role", func(o *CreateOptions) { o.Role.Role = "writer" }, "not one of the read-only roles handover makes"},
			{"unknown database", func(o *CreateOptions) { o.Role.Databases = []string{"nope"} }, "nope"},
		} {
			o := opts
			tc.mod(&o)
			_, err := tool.Create(tctx(t), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
			}
			if _, err := tool.describe(tctx(t), "shop-rr"); !IsNotFound(err) {
				t.Fatalf("%s: a replica was made anyway (%v)", tc.name, err)
			}
		}
		var super bool
		if err := m.QueryRow(tctx(t), `SELECT rolsuper FROM pg_roles WHERE rolname = 'rdsadmin'`).Scan(&super); err != nil || !super {
			t.Errorf("rdsadmin changed: super %v (%v)", super, err)
		}
	})

	// Writes go on while the replica is made.
	var written atomic.Int64
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		c, err := pgDial(top, primary, "writer", writerPW, "shop")
		if err != nil {
			t.Errorf("write load: %v", err)
			return
		}
		defer c.Close(context.Background())
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Exec(context.Background(), `INSERT INTO orders (item, qty) VALUES (2, 1)`); err != nil {
				t.Errorf("write load: %v", err)
				return
			}
			written.Add(1)
		}
	})
	res, err := tool.Create(tctx(t), opts)
	close(stop)
	load.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !res.ReplicaCreated || res.Role.Generated == "" || !res.Role.PasswordSet || res.Role.Drift() != 0 {
		t.Fatalf("first create: created %v, generated %v, set %v, drift %d", res.ReplicaCreated, res.Role.Generated != "", res.Role.PasswordSet, res.Role.Drift())
	}
	if got := strings.Join(res.Role.Creators["shop"], ","); got != "app,writer" {
		t.Errorf("creators %s, want app,writer", got)
	}
	if written.Load() == 0 {
		t.Error("the write load wrote nothing while the replica was made")
	}
	password := res.Role.Generated
	checkOpts := CheckOptions{Replica: "shop-rr", Role: "analyst", Password: password, Master: masterLogin, Databases: []string{"shop"}}

	t.Run("a second run changes nothing", func(t *testing.T) {
		again, err := tool.Create(tctx(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.ReplicaCreated || again.Role.Generated != "" || again.Role.PasswordSet {
			t.Errorf("rerun: created %v, generated %v, password set %v", again.ReplicaCreated, again.Role.Generated != "", again.Role.PasswordSet)
		}
		for _, c := range again.Role.Changes {
			if c.State != StateOK {
				t.Errorf("rerun changed %+v", c)
			}
		}
	})

	t.Run("the check passes, and each write is refused with 42501", func(t *testing.T) {
		rep, err := tool.Check(tctx(t), checkOpts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Results {
			if r.Status == Fail {
				t.Errorf("check failed: %+v", r)
			}
		}
		if !rep.Passed {
			t.Fatal("report not passed")
		}
		want := []string{"INSERT into", "UPDATE", "DELETE from", "TRUNCATE", "FOR UPDATE", "COPY public.items FROM STDIN", "FROM PROGRAM",
			"CREATE TABLE in schema public", "CREATE SCHEMA", "CREATE FUNCTION", "CREATE TEMP TABLE", "nextval", "setval", "lo_import", "pg_read_file",
			"SET ROLE to the owner writer", "SET default_transaction_read_only = off, then INSERT", "a table writer created after the grant is readable",
			"a table app created after the grant is readable", "a table in a new schema is readable", "replica lag converges", "reads on the replica",
			"has no super, createrole", "cannot connect to database"}
		for _, w := range want {
			found := false
			for _, r := range rep.Results {
				if strings.Contains(r.Check, w) && (r.Status == Pass || r.Status == Warn && strings.Contains(r.Check, "connect to database postgres")) {
					found = true
				}
			}
			if !found {
				t.Errorf("no passing check %q", w)
			}
		}
	})

	t.Run("tables made later, by another role and in a new schema, are readable", func(t *testing.T) {
		mustExec(t, w, `CREATE TABLE later_by_writer (x int)`, `INSERT INTO later_by_writer VALUES (1)`)
		mustExec(t, m, `CREATE SCHEMA reports`, `CREATE TABLE reports.daily (x int)`, `INSERT INTO reports.daily VALUES (1)`)
		a := pgConnect(t, primary, "analyst", password, "shop")
		for _, q := range []string{`SELECT x FROM later_by_writer`, `SELECT x FROM reports.daily`, `SELECT count(*) FROM orders`} {
			if _, err := a.Exec(tctx(t), q); err != nil {
				t.Errorf("%s as analyst: %v", q, err)
			}
		}
		rr, err := tool.describe(tctx(t), "shop-rr")
		if err != nil {
			t.Fatal(err)
		}
		ar := pgConnect(t, rr, "analyst", password, "shop")
		var n int64
		want := written.Load() + 1
		for range 200 {
			if err := ar.QueryRow(tctx(t), `SELECT count(*) FROM orders`).Scan(&n); err == nil && n == want {
				break
			}
			sleep(t)
		}
		if n != want {
			t.Errorf("the replica has %d orders, the primary %d", n, want)
		}
	})

	t.Run("drift is reported and fixed; a write privilege fails the check", func(t *testing.T) {
		mustExec(t, m, `GRANT INSERT ON items TO analyst_group`, `ALTER ROLE analyst RESET default_transaction_read_only`)
		rep, err := tool.Check(tctx(t), checkOpts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Passed {
			t.Fatal("check passed with INSERT granted")
		}
		failed := map[string]bool{}
		for _, r := range rep.Results {
			if r.Status == Fail {
				failed[r.Check] = true
			}
		}
		if !failed["INSERT into public.items is refused"] || !failed["default_transaction_read_only is on at login (guard rail)"] {
			t.Errorf("failures %v lack the INSERT and the guard rail", failed)
		}
		again, err := tool.Create(tctx(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.Role.Drift() < 2 {
			t.Errorf("drift %d, want the write privilege and the setting: %+v", again.Role.Drift(), again.Role.Changes)
		}
		if rep, err := tool.Check(tctx(t), checkOpts); err != nil || !rep.Passed {
			t.Errorf("check after the fix: %v %+v", err, rep)
		}
	})

	t.Run("status", func(t *testing.T) {
		st, err := tool.Status(tctx(t), "shop-rr", masterLogin, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if st.Source != "shop-db" || st.LagBytes < 0 || st.PrimaryLSN == "" || st.ReplayLSN == "" || st.SenderState != "streaming" {
			t.Errorf("status %+v", st)
		}
	})

	t.Run("snapshot and restore keep the role and the data", func(t *testing.T) {
		if _, err := cl.client.CreateDBSnapshot(tctx(t), &rds.CreateDBSnapshotInput{DBInstanceIdentifier: aws.String("shop-db"), DBSnapshotIdentifier: aws.String("shop-snap")}); err != nil {
			t.Fatal(err)
		}
		wt := rds.NewDBSnapshotAvailableWaiter(cl.client, func(o *rds.DBSnapshotAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = pollFast, pollFast })
		if err := wt.Wait(tctx(t), &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String("shop-snap")}, waitMax); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.client.RestoreDBInstanceFromDBSnapshot(tctx(t), &rds.RestoreDBInstanceFromDBSnapshotInput{
			DBInstanceIdentifier: aws.String("shop-copy"), DBSnapshotIdentifier: aws.String("shop-snap")}); err != nil {
			t.Fatal(err)
		}
		restored, err := tool.waitAvailable(tctx(t), "shop-copy")
		if err != nil {
			t.Fatal(err)
		}
		a := pgConnect(t, restored, "analyst", password, "shop")
		var n int
		if err := a.QueryRow(tctx(t), `SELECT count(*) FROM later_by_writer`).Scan(&n); err != nil || n != 1 {
			t.Errorf("the restored role reads %d rows (%v)", n, err)
		}
		if _, err := a.Exec(tctx(t), `SET default_transaction_read_only = off; INSERT INTO items (name) VALUES ('x')`); err == nil {
			t.Error("the restored role can write")
		}
	})

	t.Run("promote and delete", func(t *testing.T) {
		if err := tool.Delete(tctx(t), "shop-db"); !errors.Is(err, ErrBadInput) {
			t.Errorf("deleting a primary: %v, want ErrBadInput", err)
		}
		inst, err := tool.Promote(tctx(t), "shop-rr")
		if err != nil {
			t.Fatal(err)
		}
		if inst.ReadReplicaSourceDBInstanceIdentifier != nil {
			t.Errorf("promoted, still a replica of %s", aws.ToString(inst.ReadReplicaSourceDBInstanceIdentifier))
		}
		if _, err := tool.Promote(tctx(t), "shop-rr"); !errors.Is(err, ErrBadInput) {
			t.Errorf("promoting twice: %v, want ErrBadInput", err)
		}
		// A second replica, to delete.
		o := opts
		o.Replica = "shop-rr2"
		if _, err := tool.Create(tctx(t), o); err != nil {
			t.Fatal(err)
		}
		if err := tool.Delete(tctx(t), "shop-rr2"); err != nil {
			t.Fatal(err)
		}
		if _, err := tool.describe(tctx(t), "shop-rr2"); !IsNotFound(err) {
			t.Errorf("after delete: %v", err)
		}
	})
}
