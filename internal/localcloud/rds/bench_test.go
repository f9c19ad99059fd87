package rds

// Benchmarks of the local cloud's replicas (bench/replicas/run.sh runs
// them and keeps the raw output):
//
//   - BenchmarkReplicaLag: lag of a streaming replica, in bytes and in
//     milliseconds, under a steady write load on the primary;
//   - BenchmarkCreateToAvailable against BenchmarkHandBasebackup: a
//     replica through the API (CreateDBInstanceReadReplica, then
//     DescribeDBInstances until available) against what a user would do
//     by hand with the same data: pg_basebackup -R with a slot, start the
//     standby, wait until its WAL receiver streams.
//
// HANDOVER_RDSBENCH_MIB sets the primary's data size (default 256),
// HANDOVER_RDSBENCH_RATE the write load in transactions per second
// (default 500) and HANDOVER_RDSBENCH_SECONDS how long lag is sampled
// (default 20).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsrds "github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/jackc/pgx/v5"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// benchPrimary is newEnv for a benchmark: a primary with mib MiB of data.
func benchPrimary(b *testing.B, mib int) (*env, string) {
	b.Helper()
	if os.Getenv(skipEnv) == "1" {
		b.Skip("needs PostgreSQL")
	}
	dir, err := os.MkdirTemp("/tmp", "handover-rdsbench-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	b.Cleanup(func() { os.RemoveAll(dir) })
	svc, err := New(Config{DataDir: filepath.Join(dir, "rds"), Region: testRegion, AccountID: testAccount, MonitorInterval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{dir: dir, svc: svc}
	e.srv = newHTTPServer(svc)
	e.client = newClient(e.srv.URL)
	b.Cleanup(func() { e.srv.Close(); svc.Close() })
	ctx := context.Background()
	if _, err := e.client.CreateDBInstance(ctx, &awsrds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String("bench-db"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
		MasterUsername: aws.String(masterUser), MasterUserPassword: aws.String(masterPass), DBName: aws.String("bench"), BackupRetentionPeriod: aws.Int32(1),
	}); err != nil {
		b.Fatal(err)
	}
	inst := waitAvailableB(b, e, "bench-db")
	c := connectB(b, inst.Endpoint.Address, inst.Endpoint.Port, "bench")
	defer c.Close(ctx)
	// Rows of about 1 KiB: mib MiB of table.
	rows := mib * 1024
	if _, err := c.Exec(ctx, fmt.Sprintf(`CREATE TABLE t (id bigserial PRIMARY KEY, v text); INSERT INTO t (v) SELECT repeat(md5(g::text), 30) FROM generate_series(1, %d) g; CHECKPOINT`, rows)); err != nil {
		// CHECKPOINT needs pg_checkpoint, which rds_superuser has.
		b.Fatal(err)
	}
	var size string
	_ = c.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size('bench'))`).Scan(&size)
	b.Logf("primary bench-db: database bench is %s", size)
	return e, "bench-db"
}

func waitAvailableB(b *testing.B, e *env, id string) (out struct {
	Endpoint struct {
		Address *string
		Port    *int32
	}
}) {
	b.Helper()
	w := awsrds.NewDBInstanceAvailableWaiter(e.client, func(o *awsrds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 20*time.Millisecond
	})
	res, err := w.WaitForOutput(context.Background(), &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, 10*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	out.Endpoint.Address, out.Endpoint.Port = res.DBInstances[0].Endpoint.Address, res.DBInstances[0].Endpoint.Port
	return out
}

func connectB(b *testing.B, addr *string, port *int32, db string) *pgx.Conn {
	b.Helper()
	c, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", masterUser, masterPass, aws.ToString(addr), aws.ToInt32(port), db))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

func BenchmarkReplicaLag(b *testing.B) {
	e, primary := benchPrimary(b, 16)
	ctx := context.Background()
	if _, err := e.client.CreateDBInstanceReadReplica(ctx, &awsrds.CreateDBInstanceReadReplicaInput{
		DBInstanceIdentifier: aws.String("bench-rr"), SourceDBInstanceIdentifier: aws.String(primary)}); err != nil {
		b.Fatal(err)
	}
	p := waitAvailableB(b, e, primary)
	r := waitAvailableB(b, e, "bench-rr")
	rate := envInt("HANDOVER_RDSBENCH_RATE", 500)
	seconds := envInt("HANDOVER_RDSBENCH_SECONDS", 20)
	b.ResetTimer()
	for range b.N {
		load := connectB(b, p.Endpoint.Address, p.Endpoint.Port, "bench")
		pm := connectB(b, p.Endpoint.Address, p.Endpoint.Port, "bench")
		rm := connectB(b, r.Endpoint.Address, r.Endpoint.Port, "bench")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var written int
		wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := load.Exec(ctx, `INSERT INTO t (v) VALUES (repeat(md5(random()::text), 30))`); err != nil {
					b.Error(err)
					return
				}
				written++
			}
		})
		var lagBytes, lagMS []float64
		end := time.Now().Add(time.Duration(seconds) * time.Second)
		time.Sleep(time.Second) // the load settles
		for time.Now().Before(end) {
			// Bytes: the replica's replay position first, then the
			// primary's current one, so the difference is never negative.
			var replay, current string
			if err := rm.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&replay); err != nil {
				b.Fatal(err)
			}
			var diff float64
			if err := pm.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)`, replay).Scan(&current, &diff); err != nil {
				b.Fatal(err)
			}
			lagBytes = append(lagBytes, diff)
			// Time: until the replica has replayed the position the
			// primary had just now.
			t0 := time.Now()
			for {
				var caught bool
				if err := rm.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, current).Scan(&caught); err != nil {
					b.Fatal(err)
				}
				if caught {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			lagMS = append(lagMS, float64(time.Since(t0).Microseconds())/1000)
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		load.Close(ctx)
		pm.Close(ctx)
		rm.Close(ctx)
		b.ReportMetric(percentile(lagBytes, 0.5), "p50-lag-bytes")
		b.ReportMetric(percentile(lagBytes, 0.99), "p99-lag-bytes")
		b.ReportMetric(percentile(lagMS, 0.5), "p50-lag-ms")
		b.ReportMetric(percentile(lagMS, 0.99), "p99-lag-ms")
		b.ReportMetric(float64(len(lagMS)), "samples")
		b.ReportMetric(float64(written)/float64(seconds), "writes/s")
	}
}

func BenchmarkCreateToAvailable(b *testing.B) {
	e, primary := benchPrimary(b, envInt("HANDOVER_RDSBENCH_MIB", 256))
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-rr-%d", i)
		start := time.Now()
		if _, err := e.client.CreateDBInstanceReadReplica(ctx, &awsrds.CreateDBInstanceReadReplicaInput{
			DBInstanceIdentifier: aws.String(id), SourceDBInstanceIdentifier: aws.String(primary)}); err != nil {
			b.Fatal(err)
		}
		waitAvailableB(b, e, id)
		b.ReportMetric(time.Since(start).Seconds(), "s/replica")
		b.StopTimer()
		if _, err := e.client.DeleteDBInstance(ctx, &awsrds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
			b.Fatal(err)
		}
		w := awsrds.NewDBInstanceDeletedWaiter(e.client, func(o *awsrds.DBInstanceDeletedWaiterOptions) {
			o.MinDelay, o.MaxDelay = 20*time.Millisecond, 20*time.Millisecond
		})
		if err := w.Wait(ctx, &awsrds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkHandBasebackup is the same replica made by hand: the commands
// a user runs (pg_basebackup -X stream -c fast -R -C -S, then the
// postmaster), with nothing of the API around them.
func BenchmarkHandBasebackup(b *testing.B) {
	e, primary := benchPrimary(b, envInt("HANDOVER_RDSBENCH_MIB", 256))
	ctx := context.Background()
	e.svc.mu.Lock()
	src := e.svc.servers[e.svc.st.Instances[primary].ResourceID]
	e.svc.mu.Unlock()
	b.ResetTimer()
	for i := range b.N {
		l := layout{root: filepath.Join(e.dir, "hand", strconv.Itoa(i))}
		slot := fmt.Sprintf("hand_%d", i)
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := e.svc.pg.prepare(l); err != nil {
			b.Fatal(err)
		}
		if err := e.svc.pg.baseBackup(ctx, src, l.data(), slot, true); err != nil {
			b.Fatal(err)
		}
		copied := time.Now()
		srv, err := e.svc.pg.start(ctx, l, port, "hand")
		if err != nil {
			b.Fatal(err)
		}
		started := time.Now()
		if err := waitStreaming(ctx, srv, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/replica")
		b.Logf("pg_basebackup %s, start %s, until streaming %s", copied.Sub(start).Round(time.Millisecond),
			started.Sub(copied).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
		b.StopTimer()
		srv.stop()
		if err := dropSlot(ctx, src, slot); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(l.root)
		b.StartTimer()
	}
}
