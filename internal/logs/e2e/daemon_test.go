package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/logs"
	"github.com/handover-dev/handover/internal/logs/logstest"
)

// killAfter cancels the run after n bulks, as a pipeline killed in the
// middle of a file: the bulks before are indexed, its message is not
// deleted.
type killAfter struct {
	logs.Bulker
	n      int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (k *killAfter) Bulk(ctx context.Context, body []byte) ([]logs.ItemResult, error) {
	if k.calls.Add(1) > k.n {
		k.cancel()
		return nil, context.Canceled
	}
	return k.Bulker.Bulk(ctx, body)
}

// fast shortens the pipeline's backoff twentyfold.
func fast(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d / 20)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// End to end on the local cloud, in-process: objects put in S3 →
// notifications in SQS → the pipeline → the OpenSearch endpoint, with 30%
// of the items throttled, duplicated notifications and a run stopped
// mid-file: every line indexed exactly once, nothing dead-lettered.
func TestEndToEndOnTheLocalCloud(t *testing.T) {
	ctx := context.Background()
	env := logstest.Start(t, logstest.Options{Visibility: time.Second})
	env.Fault(t, `{"service":"es","action":"BulkItem","kind":"throttle","rate":0.3}`)

	// Three objects: one of two gzip members under a key with a space
	// (S3 encodes it as +), the test file, and a Classic plain-text log.
	env.Put(t, "with space/"+logstest.ALBKey("web"), logstest.Gzip(logstest.ALBLines(700), logstest.ALBLines(500)))
	env.Put(t, "AWSLogs/000000000000/ELBAccessLogTestFile", []byte("Enable AccessLog for ELB: 2025-08-14T22:00:00Z\n"))
	env.Put(t, logstest.ClassicKey("classic"), logstest.ClassicLines(300))
	const want = 1200 + 300

	dead := logs.SQSDeadLetters{Client: env.SQS, QueueURL: env.DeadURL}
	s3store := logs.S3Store{Client: env.S3}
	dcfg := logs.DaemonConfig{QueueURL: env.QueueURL, WaitTime: time.Second, Once: true, Workers: 3}

	// A run killed after three bulks.
	killCtx, cancel := context.WithCancel(ctx)
	k := &killAfter{Bulker: env.Store, n: 3, cancel: cancel}
	p := logs.New(logs.Config{BulkBytes: 64 << 10, Sleep: fast}, s3store, k, dead)
	_ = p.Run(killCtx, env.SQS, dcfg)
	partial := env.Count(t)
	if partial == 0 || partial >= want {
		t.Fatalf("the killed run indexed %d of %d; the test wants it stopped mid-way", partial, want)
	}

	// Duplicate notifications, as SQS may deliver them.
	out, err := env.S3.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(logstest.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		body := fmt.Sprintf(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q}}}]}`, logstest.Bucket, strings.ReplaceAll(aws.ToString(o.Key), " ", "+"))
		if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(env.QueueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the killed run's messages come back

	p = logs.New(logs.Config{BulkBytes: 64 << 10, Sleep: fast}, s3store, env.Store, dead)
	if err := p.Run(ctx, env.SQS, dcfg); err != nil {
		t.Fatal(err)
	}
	if n := env.Count(t); n != want {
		t.Fatalf("%d documents after the rerun, want %d exactly", n, want)
	}
	if p.Stats.Retries.Load() == 0 {
		t.Error("no item was retried under 30% throttling")
	}
	if p.Stats.Duplicates.Load() < partial {
		t.Errorf("%d duplicates found; the killed run had indexed %d", p.Stats.Duplicates.Load(), partial)
	}
	if d := env.Depth(t, env.DeadURL); d != 0 {
		t.Errorf("%d dead letters", d)
	}
	if d := env.Depth(t, env.QueueURL); d != 0 {
		t.Errorf("%d messages left in the queue", d)
	}
}
