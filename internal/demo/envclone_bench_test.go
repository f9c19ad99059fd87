package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// volumeDir finds a local-cloud volume's directory under the data dir.
func volumeDir(b *testing.B, e *Env, vol string) string {
	b.Helper()
	var found string
	_ = filepath.WalkDir(e.opts.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == vol && filepath.Base(filepath.Dir(p)) == "volumes" {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		b.Fatalf("no directory for volume %s under %s", vol, e.opts.DataDir)
	}
	return found
}

// BenchmarkEnvClone times handover env clone of an environment with two
// database volumes of HANDOVER_BENCH_ENV_VOLUME_MIB each (1024), an RDS
// database of HANDOVER_BENCH_ENV_DB_MIB (1024) and
// HANDOVER_BENCH_ENV_OBJECTS objects (10,000), against the field report's
// sequence scripted with the AWS CLI (bench/envclone/field-report.sh) on
// the same environment, in the same run; SRC's write pause in both.
// bench/envclone/run.sh runs it; it is skipped unless
// HANDOVER_BENCH_ENV=1 (it takes minutes and gigabytes).
func BenchmarkEnvClone(b *testing.B) {
	if os.Getenv("HANDOVER_BENCH_ENV") != "1" {
		b.Skip("set HANDOVER_BENCH_ENV=1 (bench/envclone/run.sh)")
	}
	if _, err := exec.LookPath("aws"); err != nil {
		b.Skip("the AWS CLI is not installed")
	}
	e, bin, volumes := cloneBenchEnv(b)
	b.ResetTimer()
	// handover env clone.
	c := envCLI{e: e, bin: bin}
	start := time.Now()
	cmd := exec.Command(bin, c.args("env", "clone", "staging", "prod", "--poll", "1s", "--service-port", fmt.Sprint(servicePort), "--output", "json")...)
	cmd.Env = e.awsEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("env clone: %v\n%s\n%s", err, out.String(), errb.String())
	}
	total := time.Since(start)
	var op struct {
		WritePauseMS int64 `json:"write_pause_ms"`
		Timeline     []struct {
			Phase      string
			Start, End time.Time
		}
	}
	if err := json.Unmarshal(out.Bytes(), &op); err != nil {
		b.Fatal(err)
	}
	var copied time.Duration
	for _, s := range op.Timeline {
		if s.Phase == "clone-copy" {
			copied = s.End.Sub(op.Timeline[0].Start)
		}
	}
	// Printed, not logged: the benchmark's log is cut short.
	fmt.Printf("handover env clone: write pause %d ms (reads up); snapshots completed and bucket copied after %s; DST built and serving after %s\n%s",
		op.WritePauseMS, copied.Round(10*time.Millisecond), total.Round(10*time.Millisecond), errb.String())

	// The field report's sequence, on the same SRC.
	script, err := filepath.Abs("../../bench/envclone/field-report.sh")
	if err != nil {
		b.Fatal(err)
	}
	fr := exec.Command("sh", script)
	fr.Env = append(e.awsEnv(), "AWS_DEFAULT_REGION="+region, "AWS_PAGER=", "GROUP=orders", "RDS=staging-db", "SRC_BUCKET=staging-assets", "DST_BUCKET=fieldreport-assets", "VOLUMES="+strings.Join(volumes, " "))
	var frOut, frErr bytes.Buffer
	fr.Stdout, fr.Stderr = &frOut, &frErr
	frStart := time.Now()
	if err := fr.Run(); err != nil {
		b.Fatalf("field-report.sh: %v\n%s\n%s", err, frOut.String(), frErr.String())
	}
	fmt.Printf("field report (AWS CLI, sequential): %s after %s\n%s", strings.TrimSpace(frOut.String()), time.Since(frStart).Round(10*time.Millisecond), frErr.String())
	var frPause, frTotal float64
	if _, err := fmt.Sscanf(strings.TrimSpace(frOut.String()), "field-report pause_s=%f total_s=%f", &frPause, &frTotal); err != nil {
		b.Fatalf("field-report.sh said %q: %v", frOut.String(), err)
	}
	b.ReportMetric(float64(op.WritePauseMS), "handover-pause-ms")
	b.ReportMetric(copied.Seconds(), "handover-copied-s")
	b.ReportMetric(total.Seconds(), "handover-dst-serving-s")
	b.ReportMetric(frPause*1000, "fieldreport-pause-ms")
	b.ReportMetric(frTotal, "fieldreport-total-s")
}

// cloneBenchEnv builds BenchmarkEnvClone's staging: two databases whose
// volumes hold HANDOVER_BENCH_ENV_VOLUME_MIB of incompressible data each,
// an RDS table of HANDOVER_BENCH_ENV_DB_MIB and HANDOVER_BENCH_ENV_OBJECTS
// objects. It returns the environment, the handover binary and the
// databases' volumes.
func cloneBenchEnv(b *testing.B) (*Env, string, []string) {
	volMiB, dbMiB, objects := envInt("HANDOVER_BENCH_ENV_VOLUME_MIB", 1024), envInt("HANDOVER_BENCH_ENV_DB_MIB", 1024), envInt("HANDOVER_BENCH_ENV_OBJECTS", 10000)
	e := newBareEnv(b, Options{})
	bin, _ := binaries(b)
	ctx := b.Context()
	if _, err := e.CreatePool(ctx, PoolOptions{Name: "orders", Instances: 2}); err != nil {
		b.Fatal(err)
	}
	tagEnvironment(b, e, "orders", "staging")

	setup := time.Now()
	// Each database's volume gets volMiB of data nobody can compress or
	// deduplicate, beside kvstore's own files.
	dbs, err := e.API().Databases(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var volumes []string
	for _, d := range dbs {
		volumes = append(volumes, d.Volume)
		f, err := os.Create(filepath.Join(volumeDir(b, e, d.Volume), "ballast.bin"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(f, rand.Reader, int64(volMiB)<<20); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	pg := rdsConn(b, e, "staging-db")
	if _, err := pg.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, body text NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	rows := dbMiB << 10 // rows of about 1 KiB
	if _, err := pg.Exec(ctx, fmt.Sprintf("INSERT INTO orders SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, %d) g", rows)); err != nil {
		b.Fatal(err)
	}
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < objects; i += 16 {
				body := bytes.Repeat([]byte{byte('a' + i%26)}, 1024)
				if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("staging-assets"), Key: aws.String(fmt.Sprintf("objects/%05d", i)), Body: bytes.NewReader(body)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("environment: 2 volumes of %d MiB, RDS table of %d rows (~%d MiB), %d objects; set up in %s\n", volMiB, rows, dbMiB, objects, time.Since(setup).Round(time.Second))

	return e, bin, volumes
}
