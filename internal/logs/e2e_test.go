package logs

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/opensearch-project/opensearch-go/v4"

	"github.com/handover-dev/handover/internal/localcloud"
)

// killAfter cancels the run after n bulks, as a pipeline killed in the
// middle of a file: the bulks before are indexed, its message is not
// deleted.
type killAfter struct {
	Bulker
	n      int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (k *killAfter) Bulk(ctx context.Context, body []byte) ([]ItemResult, error) {
	if k.calls.Add(1) > k.n {
		k.cancel()
		return nil, context.Canceled
	}
	return k.Bulker.Bulk(ctx, body)
}

// End to end on the local cloud: objects put in S3 → notifications in SQS
// → the pipeline → the OpenSearch endpoint, with 30% of the items
// throttled, duplicated notifications and a run killed mid-file: every
// line indexed exactly once, nothing dead-lettered.
func TestEndToEndOnTheLocalCloud(t *testing.T) {
	ctx := context.Background()
	cloud, err := localcloud.New(localcloud.Config{DataDir: t.TempDir(), Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cloud.Handler())
	t.Cleanup(func() { srv.Close(); cloud.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), BaseEndpoint: aws.String(srv.URL)}
	s3c := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true })
	sqsc := sqs.NewFromConfig(cfg)

	q, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("elb-logs"), Attributes: map[string]string{"VisibilityTimeout": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("elb-logs-dead")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("my-logs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutBucketNotificationConfiguration(ctx, &awss3.PutBucketNotificationConfigurationInput{Bucket: aws.String("my-logs"),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String("arn:aws:sqs:us-east-1:000000000000:elb-logs"), Events: []s3types.Event{"s3:ObjectCreated:*"}}}}}); err != nil {
		t.Fatal(err)
	}
	fault := `{"service":"es","action":"BulkItem","kind":"throttle","rate":0.3}`
	resp, err := http.Post(srv.URL+"/_localcloud/faults", "application/json", strings.NewReader(fault))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("fault: %v %v", err, resp)
	}
	resp.Body.Close()

	// Three objects: one of two gzip members under a key with a space
	// (S3 encodes it as +), the test file, and a Classic plain-text log.
	objects := map[string][]byte{
		"with space/AWSLogs/000000000000/elasticloadbalancing/us-east-1/2025/08/14/000000000000_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_20250814T2225Z_10.0.0.1_abcd1234.log.gz": gz(albLines(700), albLines(500)),
		"AWSLogs/000000000000/ELBAccessLogTestFile": []byte("Enable AccessLog for ELB: 2025-08-14T22:00:00Z\n"),
		"AWSLogs/000000000000/elasticloadbalancing/us-east-1/2015/05/13/000000000000_elasticloadbalancing_us-east-1_classic_20150513T2340Z_10.0.0.2_x1y2z3.log": bytes.Repeat([]byte(goldenLines[10].line+"\n"), 300),
	}
	for k, b := range objects {
		if _, err := s3c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("my-logs"), Key: aws.String(k), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	const want = 1200 + 300

	client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{srv.URL + "/_opensearch"}, DisableRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	store := OpenSearch{Client: client}
	if err := store.PutTemplate(ctx, "elb-logs"); err != nil {
		t.Fatal(err)
	}
	dead := SQSDeadLetters{Client: sqsc, QueueURL: aws.ToString(dlq.QueueUrl)}
	s3store := S3Store{Client: s3c}
	fast := func(ctx context.Context, d time.Duration) error { return sleepCtx(ctx, d/20) }
	dcfg := DaemonConfig{QueueURL: aws.ToString(q.QueueUrl), WaitTime: time.Second, Once: true, Workers: 3}

	// A run killed after three bulks.
	killCtx, cancel := context.WithCancel(ctx)
	k := &killAfter{Bulker: store, n: 3, cancel: cancel}
	p := New(Config{BulkBytes: 64 << 10, Sleep: fast}, s3store, k, dead)
	_ = p.Run(killCtx, sqsc, dcfg)
	partial, _ := store.Count(ctx, "elb-logs-*")
	if partial == 0 || partial >= want {
		t.Fatalf("the killed run indexed %d of %d; the test wants it stopped mid-way", partial, want)
	}

	// Duplicate notifications, as SQS may deliver them.
	out, err := s3c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("my-logs")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		body := fmt.Sprintf(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"my-logs"},"object":{"key":%q}}}]}`, strings.ReplaceAll(aws.ToString(o.Key), " ", "+"))
		if _, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the killed run's messages come back

	p = New(Config{BulkBytes: 64 << 10, Sleep: fast}, s3store, store, dead)
	if err := p.Run(ctx, sqsc, dcfg); err != nil {
		t.Fatal(err)
	}
	n, err := store.Count(ctx, "elb-logs-*")
	if err != nil || n != want {
		t.Fatalf("%d documents after the rerun, want %d exactly (%v)", n, want, err)
	}
	if p.Stats.Retries.Load() == 0 {
		t.Error("no item was retried under 30% throttling")
	}
	if p.Stats.Duplicates.Load() < partial {
		t.Errorf("%d duplicates found; the killed run had indexed %d", p.Stats.Duplicates.Load(), partial)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages"}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != "0" {
		t.Errorf("dead letters: %v %v", attrs.Attributes, err)
	}
	left, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil || left.Attributes["ApproximateNumberOfMessages"] != "0" || left.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("messages left in the queue: %v %v", left.Attributes, err)
	}
}
