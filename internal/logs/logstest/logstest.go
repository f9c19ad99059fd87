// Package logstest starts the local cloud for the log pipeline's tests: a
// bucket that notifies a queue, a dead-letter queue and the
// OpenSearch-compatible endpoint, over real HTTP and the real AWS SDK, and
// writes ELB log objects to put in it. It is for tests only.
package logstest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	"github.com/handover-dev/handover/internal/logs"
)

// Names of what Start creates.
const (
	Bucket   = "my-logs"
	Queue    = "elb-logs"
	DeadQ    = "elb-logs-dead"
	QueueARN = "arn:aws:sqs:us-east-1:000000000000:" + Queue
)

// Env is a running local cloud set up for the pipeline.
type Env struct {
	URL      string // the local cloud
	Endpoint string // its OpenSearch endpoint
	AWS      aws.Config
	S3       *awss3.Client
	SQS      *sqs.Client
	QueueURL string
	DeadURL  string
	Store    logs.OpenSearch
}

// Options of Start.
type Options struct {
	// DataDir keeps the cloud's state (default: a test directory).
	DataDir string
	// Visibility is the queue's visibility timeout (default 30s).
	Visibility time.Duration
}

// Start runs the local cloud in-process behind a real HTTP server, with
// the bucket notifying the queue of every ObjectCreated, the dead-letter
// queue, and the pipeline's index template installed.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Visibility <= 0 {
		o.Visibility = 30 * time.Second
	}
	cloud, err := localcloud.New(localcloud.Config{DataDir: o.DataDir, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cloud.Handler())
	t.Cleanup(func() { srv.Close(); cloud.Close() })
	e := &Env{URL: srv.URL, Endpoint: srv.URL + "/_opensearch"}
	e.AWS = aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), BaseEndpoint: aws.String(srv.URL)}
	e.S3 = awss3.NewFromConfig(e.AWS, func(o *awss3.Options) { o.UsePathStyle = true })
	e.SQS = sqs.NewFromConfig(e.AWS)
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(Queue),
		Attributes: map[string]string{"VisibilityTimeout": strconv.Itoa(int(o.Visibility / time.Second))}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(DeadQ)})
	if err != nil {
		t.Fatal(err)
	}
	e.QueueURL, e.DeadURL = aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl)
	if _, err := e.S3.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.S3.PutBucketNotificationConfiguration(ctx, &awss3.PutBucketNotificationConfigurationInput{Bucket: aws.String(Bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(QueueARN), Events: []s3types.Event{"s3:ObjectCreated:*"}}}}}); err != nil {
		t.Fatal(err)
	}
	client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{e.Endpoint}, DisableRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Store = logs.OpenSearch{Client: client}
	if err := e.Store.PutTemplate(ctx, "elb-logs"); err != nil {
		t.Fatal(err)
	}
	return e
}

// Fault adds a fault rule to the local cloud (see internal/localcloud/faults).
func (e *Env) Fault(t testing.TB, rule string) {
	t.Helper()
	resp, err := http.Post(e.URL+"/_localcloud/faults", "application/json", strings.NewReader(rule))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("adding fault %s: %v %v", rule, err, resp)
	}
	resp.Body.Close()
}

// ClearFaults removes every fault rule.
func (e *Env) ClearFaults(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.URL+"/_localcloud/faults", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("clearing the faults: %v %v", err, resp)
	}
	resp.Body.Close()
}

// Put writes an object (the bucket notifies the queue).
func (e *Env) Put(t testing.TB, key string, body []byte) {
	t.Helper()
	if _, err := e.S3.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// PutReader writes an object from a seekable reader, e.g. a file too big
// to hold.
func (e *Env) PutReader(t testing.TB, key string, body io.ReadSeeker) {
	t.Helper()
	if _, err := e.S3.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key), Body: body}); err != nil {
		t.Fatal(err)
	}
}

// Count is the number of documents in the pipeline's indices.
func (e *Env) Count(t testing.TB) int64 {
	t.Helper()
	n, err := e.Store.Count(context.Background(), "elb-logs-*")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Depth is how many messages a queue holds, visible and in flight.
func (e *Env) Depth(t testing.TB, url string) int {
	t.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}

// Receive takes up to n messages off a queue (long-polling up to wait).
func (e *Env) Receive(t testing.TB, url string, n int, wait time.Duration) []sqstypes.Message {
	t.Helper()
	out, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: int32(n),
		WaitTimeSeconds: int32(wait / time.Second), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// ALBKey is the key ALB gives a log file of load balancer name.
func ALBKey(name string) string {
	return "AWSLogs/000000000000/elasticloadbalancing/us-east-1/2025/08/14/000000000000_elasticloadbalancing_us-east-1_app." + name + ".50dc6c495c0c9188_20250814T2225Z_10.0.0.1_abcd1234.log.gz"
}

// ClassicKey is the key Classic ELB gives a log file.
func ClassicKey(name string) string {
	return "AWSLogs/000000000000/elasticloadbalancing/us-east-1/2015/05/13/000000000000_elasticloadbalancing_us-east-1_" + name + "_20150513T2340Z_10.0.0.2_x1y2z3.log"
}

// albLine is the documented ALB line with every field through
// request_transform_status; %d and %d are the client address's last byte
// and port, so lines differ.
const albLine = `https 2025-08-14T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.%d.%d:%d 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/search?q=\x22a b\x22 HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 2025-08-14T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90 "www.example.org" "/rewritten?q=1" "TRANSFORMED"`

// ALBLines returns n distinct ALB lines, each ending in a newline.
func ALBLines(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * (len(albLine) + 8))
	for i := range n {
		fmt.Fprintf(&b, albLine, i/62500%250, i/250%250, 1024+i%250)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ClassicLines returns n Classic HTTP lines.
func ClassicLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:%d 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -`+"\n", 1024+i)
	}
	return b.Bytes()
}

// Gzip compresses each part as its own member, concatenated, as ALB may
// write them.
func Gzip(parts ...[]byte) []byte {
	var out bytes.Buffer
	for _, p := range parts {
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write(p)
		_ = zw.Close()
	}
	return out.Bytes()
}
