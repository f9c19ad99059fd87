package localcloud

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
)

// BenchmarkDescribeInstances100 measures how many DescribeInstances calls
// per second the endpoint serves, through the real SDK, with 100 instance
// processes running.
//
//	go test ./internal/localcloud -run '^$' -bench DescribeInstances100 -benchtime 2000x
func BenchmarkDescribeInstances100(b *testing.B) {
	ctx := context.Background()
	_, cl := startB(b)
	for range 2 { // the local cloud launches at most 50 per request
		if _, err := cl.ec2.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(50), MaxCount: aws.Int32(50)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := cl.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{})
			if err != nil {
				b.Error(err)
				return
			}
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			if n != 100 {
				b.Errorf("%d instances", n)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// TestMeasureSnapshot1GiB times CreateSnapshot → completed for a 1 GiB
// volume, next to `cp -a` of the same directory in the same run. It is a
// measurement, not a check, so it only runs when asked:
//
//	HANDOVER_BENCH_1GIB=1 go test ./internal/localcloud -run MeasureSnapshot1GiB -v -timeout 20m
func TestMeasureSnapshot1GiB(t *testing.T) {
	if os.Getenv("HANDOVER_BENCH_1GIB") != "1" {
		t.Skip("set HANDOVER_BENCH_1GIB=1 to measure")
	}
	ctx := context.Background()
	c, cl := start(t)
	vol, err := cl.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.cfg.DataDir, "ec2", "volumes", *vol.VolumeId)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(dir); err == nil || time.Now().After(deadline) {
			break
		}
	}
	buf := make([]byte, 16<<20)
	for i := range 64 {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, "seg-"+string(rune('a'+i/26))+string(rune('a'+i%26))), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = exec.Command("sync").Run()

	cpStart := time.Now()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	_ = exec.Command("sync").Run()
	cpTook := time.Since(cpStart)

	snapStart := time.Now()
	snap, err := cl.ec2.CreateSnapshot(ctx, &awsec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, err := cl.ec2.DescribeSnapshots(ctx, &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
		if err != nil {
			t.Fatal(err)
		}
		if s := out.Snapshots[0].State; s == "completed" {
			break
		} else if s == "error" {
			t.Fatal("snapshot failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	snapTook := time.Since(snapStart)
	t.Logf("1 GiB (64 × 16 MiB): cp -a %s (incl. sync), CreateSnapshot → completed %s, ratio %.2f× the time of cp -a",
		cpTook.Round(time.Millisecond), snapTook.Round(time.Millisecond), snapTook.Seconds()/cpTook.Seconds())
}
