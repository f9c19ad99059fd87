package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// entryClient reads and writes through an environment's entry listener
// all the way through a migration, as one sequential client would. Each
// write is read back at once through the listener; the pool behind it
// spreads keys over two databases (the load balancer picks either
// instance), so a read-back that lands on the other database's instance
// (404) is asked again, and round robin sends the next one to the other
// target. A read that is not answered (an error, or a 5xx) is a failed
// read; a write refused with 503 must carry Retry-After.
type entryClient struct {
	url    string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex
	acked         []ack
	reads         int
	failedReads   []string
	notReadBack   []string // acknowledged, then not found through the entry
	refusedRetry  int      // 503 with Retry-After
	refusedBare   []string // 503 without it, or another refusal
	writeFailures []string // no answer at all
}

func startEntryClient(url string) *entryClient {
	ctx, cancel := context.WithCancel(context.Background())
	c := &entryClient{url: url, cancel: cancel}
	hc := newClient()
	c.wg.Go(func() {
		for n := 0; ctx.Err() == nil; n++ {
			k := fmt.Sprintf("m-%06d", n)
			for ctx.Err() == nil {
				code, retry, err := c.put(ctx, hc, k)
				if ctx.Err() != nil {
					return
				}
				c.mu.Lock()
				switch {
				case err != nil:
					c.writeFailures = append(c.writeFailures, fmt.Sprintf("%s: %v", k, err))
				case code == http.StatusNoContent:
					c.acked = append(c.acked, ack{k, time.Now()})
				case code == http.StatusServiceUnavailable && retry != "":
					c.refusedRetry++
				default:
					c.refusedBare = append(c.refusedBare, fmt.Sprintf("%s: HTTP %d, Retry-After %q", k, code, retry))
				}
				c.mu.Unlock()
				if code == http.StatusNoContent {
					c.readBack(ctx, hc, k)
					break
				}
				sleep(ctx, 50*time.Millisecond) // the fence says retry after 1s; a client in a hurry tries sooner
			}
			sleep(ctx, 10*time.Millisecond)
		}
	})
	return c
}

func (c *entryClient) put(ctx context.Context, hc *http.Client, k string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url+"/kv/"+k, bytes.NewReader(value(k, 512)))
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// readBack reads an acknowledged write back through the entry: at most 8
// reads, until one returns it.
func (c *entryClient) readBack(ctx context.Context, hc *http.Client, k string) {
	for range 8 {
		code, body, err := get(ctx, hc, c.url, k)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.reads++
		switch {
		case err != nil || code >= 500:
			c.failedReads = append(c.failedReads, fmt.Sprintf("%s: HTTP %d %v", k, code, err))
		case code == http.StatusOK && bytes.Equal(body, value(k, 512)):
			c.mu.Unlock()
			return
		case code == http.StatusOK:
			c.failedReads = append(c.failedReads, fmt.Sprintf("%s: a wrong value", k))
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.notReadBack = append(c.notReadBack, k)
	c.mu.Unlock()
}

func (c *entryClient) stop() {
	c.cancel()
	c.wg.Wait()
}

// pause is the longest gap between two acknowledged writes: the write
// pause the client saw.
func (c *entryClient) pause() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var p time.Duration
	for i := 1; i < len(c.acked); i++ {
		p = max(p, c.acked[i].at.Sub(c.acked[i-1].at))
	}
	return p
}

// rdsWriter inserts rows one at a time into the table rdswrites of the
// RDS instance at url, as the environment's application would: each row
// a new id, a session reopened after any error. An insert that returned
// no error is acknowledged; one refused by SRC's RDS fence must say
// read_only_sql_transaction (25006); a session the fence ended (57P01)
// or a connection refused is reopened. switchTo moves it to another
// instance, as traffic moves with the cutover.
type rdsWriter struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	url      string
	acked    map[string][]int // url -> ids acknowledged there
	readOnly int              // refused with 25006
	reopened int              // sessions reopened after a lost connection
	other    []string         // any other refusal
}

func startRDSWriter(url string) *rdsWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &rdsWriter{cancel: cancel, url: url, acked: map[string][]int{}}
	w.wg.Go(func() {
		var conn *pgx.Conn
		var at string
		defer func() {
			if conn != nil {
				_ = conn.Close(context.Background())
			}
		}()
		for id := 1; ctx.Err() == nil; id++ {
			w.mu.Lock()
			url := w.url
			w.mu.Unlock()
			if conn == nil || at != url {
				if conn != nil {
					_ = conn.Close(ctx)
				}
				c, err := pgx.Connect(ctx, url)
				if err != nil {
					conn = nil
					sleep(ctx, 50*time.Millisecond)
					continue
				}
				conn, at = c, url
			}
			_, err := conn.Exec(ctx, "INSERT INTO rdswrites (id) VALUES ($1)", id)
			if ctx.Err() != nil {
				return
			}
			var pe *pgconn.PgError
			w.mu.Lock()
			switch {
			case err == nil:
				w.acked[url] = append(w.acked[url], id)
			case errors.As(err, &pe) && pe.Code == "25006":
				w.readOnly++
			case errors.As(err, &pe) && pe.Code != "57P01":
				w.other = append(w.other, fmt.Sprintf("row %d: %v", id, err))
			default:
				w.reopened++
				_ = conn.Close(ctx)
				conn = nil
			}
			w.mu.Unlock()
			if err != nil {
				sleep(ctx, 50*time.Millisecond)
			} else {
				sleep(ctx, 10*time.Millisecond)
			}
		}
	})
	return w
}

func (w *rdsWriter) switchTo(url string) {
	w.mu.Lock()
	w.url = url
	w.mu.Unlock()
}

func (w *rdsWriter) stop() {
	w.cancel()
	w.wg.Wait()
}

// rdsURL is the app's connection URL of RDS instance id.
func rdsURL(t *testing.T, e *Env, id string) string {
	t.Helper()
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	out, err := rds.NewFromConfig(cfg).DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil || len(out.DBInstances) != 1 || out.DBInstances[0].Endpoint == nil {
		t.Fatalf("describing RDS instance %s: %v", id, err)
	}
	ep := out.DBInstances[0].Endpoint
	return fmt.Sprintf("postgres://app:app-password-1@%s:%d/app?sslmode=disable", aws.ToString(ep.Address), aws.ToInt32(ep.Port))
}

// migrateOp is what the tests read of handover env migrate --output json.
type migrateOp struct {
	ID        string
	State     string
	Phase     string
	Error     string
	Migration struct {
		Dest       string
		CloneOp    string    `json:"clone_op"`
		EntryTG    string    `json:"entry_tg"`
		SourceTG   string    `json:"source_tg"`
		Verified   bool      `json:"verified"`
		SwitchedAt time.Time `json:"switched_at"`
		SourceKept string    `json:"source_kept"`
		Items      []struct{ Kind, Name, ID, Detail string }
		Unchanged  []string
	}
	CloneRecord struct {
		State   string
		Cloning struct {
			QuiescedAt   time.Time `json:"quiesced_at"`
			UnquiescedAt time.Time `json:"unquiesced_at"`
			QuiesceHeld  bool      `json:"quiesce_held"`
		} `json:"clone"`
	} `json:"clone_op_record"`
	WritePauseMS int64 `json:"write_pause_ms"`
}

// TestEnvMigrate: staging is a kvstore pool group of two databases behind
// its entry listener, a PostgreSQL RDS instance and a bucket. A client
// reads and writes through the entry listener all the way while handover
// env migrate moves staging onto staging-next; the command is SIGKILLed
// just after the entry is switched, and run again. Every read is
// answered; every write acknowledged is in staging-next's databases, key
// by key; writes refused while staging was fenced got 503 with
// Retry-After; the entry forwards to staging-next's instances, and
// nothing the migration made is left over (the temporary listener gone).
func TestEnvMigrate(t *testing.T) {
	e := newBareEnv(t, Options{RDSPassword: "app-password-1"}) // the controller lifts RDS fences in aborts
	bin, _ := binaries(t)
	c := envCLI{t: t, e: e, bin: bin}
	ctx := t.Context()
	p, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	tagEnvironment(t, e, "orders", "staging")
	pg := rdsConn(t, e, "staging-db") // waits for it to be available
	if _, err := pg.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, body text NOT NULL); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g; CREATE TABLE rdswrites (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := c.run("env", "migrate", "staging", "--dry-run", "--bake", "3s")
	t.Logf("$ handover env migrate staging --dry-run --bake 3s\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "ModifyListener") || !strings.Contains(out, "orders-staging-next-entry") {
		t.Fatalf("env migrate --dry-run: exit %d\n%s%s", code, out, errOut)
	}

	cl := startEntryClient(p.LBURL)
	defer cl.stop()
	srcURL := rdsURL(t, e, "staging-db")
	rw := startRDSWriter(srcURL)
	defer rw.stop()
	time.Sleep(2 * time.Second) // writes acknowledged by staging before the migration

	args := []string{"env", "migrate", "staging", "--bake", "3s", "--rds-password-file", rdsPasswordFile(t), "--lease-ttl", "2s", "--poll", "300ms", "--service-port", fmt.Sprint(servicePort)}
	if !c.killAt("switched the entry listener", args...) {
		t.Fatalf("env migrate ended before the kill after the switch")
	}
	// Traffic is on staging-next now (the killed run lifts nothing after
	// its switch): the application writes to staging-next's RDS instance.
	dstURL := rdsURL(t, e, "staging-next-db")
	rw.switchTo(dstURL)
	code, out, errOut = c.run(append(args, "--output", "json")...)
	t.Logf("$ handover %s --output json   # run again after the kill\n%s", strings.Join(args, " "), errOut)
	if code != 0 {
		t.Fatalf("env migrate run again: exit %d\n%s\n%s", code, out, errOut)
	}
	var op migrateOp
	if err := json.Unmarshal([]byte(out), &op); err != nil || op.State != "Succeeded" {
		t.Fatalf("env migrate --output json: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second) // writes acknowledged by staging-next after the cutover
	cl.stop()
	rw.stop()

	// The RDS writer's view: every row an RDS instance acknowledged is in
	// staging-next-db; staging's fence refused with 25006.
	t.Logf("RDS writer: %d rows acknowledged by staging-db, %d by staging-next-db, %d refused read-only (25006), %d sessions reopened",
		len(rw.acked[srcURL]), len(rw.acked[dstURL]), rw.readOnly, rw.reopened)
	if len(rw.acked[srcURL]) == 0 || len(rw.acked[dstURL]) == 0 {
		t.Errorf("rows acknowledged by staging-db %d, by staging-next-db %d: want some of each", len(rw.acked[srcURL]), len(rw.acked[dstURL]))
	}
	if rw.readOnly == 0 {
		t.Errorf("no insert into staging-db was refused read-only: was its RDS fenced?")
	}
	if len(rw.other) > 0 {
		t.Errorf("%d inserts refused otherwise: %v", len(rw.other), rw.other[:min(len(rw.other), 10)])
	}
	var inDST []int32
	rows, err := rdsConn(t, e, "staging-next-db").Query(ctx, "SELECT id FROM rdswrites ORDER BY id")
	if err == nil {
		inDST, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		t.Fatalf("reading staging-next-db's rdswrites: %v", err)
	}
	for _, id := range slices.Concat(rw.acked[srcURL], rw.acked[dstURL]) {
		if _, ok := slices.BinarySearch(inDST, int32(id)); !ok {
			t.Errorf("row %d was acknowledged and is not in staging-next-db", id)
		}
	}

	// The client's view.
	pause := cl.pause()
	t.Logf("entry client: %d writes acknowledged, %d refused with 503 and Retry-After, %d reads; write pause seen by the client %s (the migration reports %d ms)",
		len(cl.acked), cl.refusedRetry, cl.reads, pause.Round(time.Millisecond), op.WritePauseMS)
	if len(cl.failedReads) > 0 {
		t.Errorf("%d reads through the entry failed: %v", len(cl.failedReads), cl.failedReads[:min(len(cl.failedReads), 10)])
	}
	if len(cl.notReadBack) > 0 {
		t.Errorf("%d acknowledged writes were not read back through the entry: %v", len(cl.notReadBack), cl.notReadBack[:min(len(cl.notReadBack), 10)])
	}
	if cl.refusedRetry == 0 {
		t.Errorf("no write was refused with 503 and Retry-After: was staging fenced?")
	}
	if len(cl.refusedBare) > 0 || len(cl.writeFailures) > 0 {
		t.Errorf("writes refused without Retry-After %v, or unanswered %v", cl.refusedBare[:min(len(cl.refusedBare), 10)], cl.writeFailures[:min(len(cl.writeFailures), 10)])
	}
	// Writes acknowledged before the fence and after the cutover (the
	// kill makes the recorded switch the second run's, a little after
	// the first run's call: writes between went to DST already).
	quiesced, switched := op.CloneRecord.Cloning.QuiescedAt, op.Migration.SwitchedAt
	before, after := 0, 0
	for _, a := range cl.acked {
		switch {
		case a.at.Before(quiesced):
			before++
		case a.at.After(switched):
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("%d writes acknowledged before the quiesce, %d after the cutover: want some of each", before, after)
	}

	// Every acknowledged write is in exactly one of staging-next's
	// databases, read from the instance that holds it.
	hc := newClient()
	found := map[string]int{}
	for _, db := range []string{"orders-1-staging-next", "orders-2-staging-next"} {
		addr, err := p.route(ctx, db)
		if err != nil || addr == "" {
			t.Fatalf("finding the instance of %s: %v", db, err)
		}
		n := 0
		for _, a := range cl.acked {
			code, body, err := get(ctx, hc, addr, a.key)
			if err != nil {
				t.Fatalf("reading %s from %s: %v", a.key, db, err)
			}
			if code == http.StatusOK && bytes.Equal(body, value(a.key, 512)) {
				found[a.key]++
				n++
			}
		}
		t.Logf("%s holds %d of the %d acknowledged writes", db, n, len(cl.acked))
	}
	for _, a := range cl.acked {
		if found[a.key] != 1 {
			t.Errorf("acknowledged write %s is in %d of staging-next's databases", a.key, found[a.key])
		}
	}
	if dn, dsum := tableSum(t, rdsConn(t, e, "staging-next-db"), "orders"); dn != 1000 || dsum == "" {
		t.Errorf("staging-next-db's orders has %d rows", dn)
	}

	// The entry forwards to staging-next's copy; the temporary listener
	// is gone; the clone's quiesce is no longer held; verify passed.
	if !op.Migration.Verified || op.Migration.SourceKept != "" {
		t.Errorf("verified %v, staging kept: %q", op.Migration.Verified, op.Migration.SourceKept)
	}
	lbs, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := e.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Listeners) != 1 || aws.ToString(ls.Listeners[0].DefaultActions[0].TargetGroupArn) != op.Migration.EntryTG {
		t.Errorf("the entry load balancer's listeners: %d, forwarding to %s; want 1 forwarding to %s", len(ls.Listeners), aws.ToString(ls.Listeners[0].DefaultActions[0].TargetGroupArn), op.Migration.EntryTG)
	}
	if op.CloneRecord.Cloning.QuiesceHeld || op.CloneRecord.State != "Succeeded" {
		t.Errorf("the clone is %s with its quiesce held %v", op.CloneRecord.State, op.CloneRecord.Cloning.QuiesceHeld)
	}

	// staging was dropped (the entry's load balancer and the bucket kept,
	// a final snapshot of its RDS instance kept), and staging-next carries
	// its name: nothing is tagged staging-next any more.
	tgs, err := e.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range tgs.TargetGroups {
		names = append(names, aws.ToString(tg.TargetGroupName))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"orders-staging-next", "orders-staging-next-entry"}) {
		t.Errorf("target groups after the migration: %v, want staging-next's and the entry's copy", names)
	}
	all, err := e.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.LoadBalancers) != 2 {
		t.Errorf("%d load balancers after the migration, want the entry's and staging-next's", len(all.LoadBalancers))
	}
	if g := shapeOfAll(t, e); !slices.Equal(g, []string{"orders-staging-next"}) {
		t.Errorf("groups after the migration: %v", g)
	}
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	rc := rds.NewFromConfig(cfg)
	if _, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("staging-db")}); err == nil {
		t.Errorf("staging-db is still there after the drop")
	}
	final := "handover-" + op.ID + "-final-staging-db"
	if _, err := rc.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String(final)}); err != nil {
		t.Errorf("the final snapshot %s of staging-db: %v", final, err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	bt, err := s3c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String("staging-assets")})
	if err != nil {
		t.Fatalf("the kept bucket staging-assets: %v", err)
	}
	for _, tg := range bt.TagSet {
		if aws.ToString(tg.Key) == "handover:environment" {
			t.Errorf("the kept bucket staging-assets is still tagged handover:environment=%s", aws.ToString(tg.Value))
		}
	}
	dbs, err := e.API().Databases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs {
		if (d.ID == "orders-1" || d.ID == "orders-2") && d.DroppedBy != op.ID {
			t.Errorf("staging's database %s dropped by %q, want the migration %s", d.ID, d.DroppedBy, op.ID)
		}
	}
	if code, _, errOut := c.run("env", "show", "staging-next"); code != 2 || !strings.Contains(errOut, "unknown environment") {
		t.Errorf("env show staging-next after the re-tag: exit %d, %s", code, errOut)
	}
	code, out, errOut = c.run("env", "show", "staging")
	t.Logf("$ handover env show staging\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "orders-staging-next") || !strings.Contains(out, "staging-next-db") {
		t.Errorf("env show staging after the migration: exit %d\n%s%s", code, out, errOut)
	}
	// Migrated again: the default NAME-next would take names the first
	// migration's DST has; --to plans, the group found behind the entry
	// (the entry's target group is attached to it; its copy's name has
	// staging replaced by prod).
	code, _, errOut = c.run("env", "migrate", "staging", "--dry-run")
	t.Logf("$ handover env migrate staging --dry-run   # after the migration\n%s(exit %d)", errOut, code)
	if code != 2 || !strings.Contains(errOut, "the name is taken") {
		t.Errorf("a second migration into staging-next: exit %d, %s", code, errOut)
	}
	code, out, errOut = c.run("env", "migrate", "staging", "--to", "prod", "--dry-run", "--output", "json")
	var again struct {
		Entry struct{ Groups []string } `json:"entry"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || !slices.Equal(again.Entry.Groups, []string{"orders-prod-next"}) {
		t.Errorf("a second migration --to prod: exit %d, %s%s", code, errOut, out)
	}
}

// rdsPasswordFile writes the master password tagEnvironment gives its RDS
// instance to a file, for --rds-password-file.
func rdsPasswordFile(t *testing.T) string {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "rds-password")
	if err := os.WriteFile(pw, []byte("app-password-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pw
}

// shapeOfAll lists the groups that exist.
func shapeOfAll(t *testing.T, e *Env) []string {
	t.Helper()
	out, err := e.ASG.DescribeAutoScalingGroups(t.Context(), &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range out.AutoScalingGroups {
		names = append(names, aws.ToString(g.AutoScalingGroupName))
	}
	slices.Sort(names)
	return names
}
