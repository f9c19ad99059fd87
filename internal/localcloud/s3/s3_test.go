package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

type queues struct {
	mu   sync.Mutex
	sent map[string][]string
}

func (q *queues) SendByARN(_ context.Context, arn, body string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sent[arn] = append(q.sent[arn], body)
	return nil
}

func (q *queues) bodies(arn string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.sent[arn]...)
}

func newClient(t *testing.T, dataDir string, q QueueSender) (*awss3.Client, *Service) {
	t.Helper()
	svc, err := New(Config{DataDir: dataDir, Queues: q})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	c := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	})
	return c, svc
}

const logsQueue = "arn:aws:sqs:us-east-1:000000000000:elb-logs"

func TestObjectCreatedNotifications(t *testing.T) {
	ctx := context.Background()
	q := &queues{sent: map[string][]string{}}
	c, _ := newClient(t, t.TempDir(), q)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.PutBucketNotificationConfiguration(ctx, &awss3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("logs"),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			Id: aws.String("elb"), QueueArn: aws.String(logsQueue), Events: []types.Event{"s3:ObjectCreated:*"},
			Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: "prefix", Value: aws.String("AWSLogs/")}}}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBucketNotificationConfiguration(ctx, &awss3.GetBucketNotificationConfigurationInput{Bucket: aws.String("logs")})
	if err != nil || len(got.QueueConfigurations) != 1 || aws.ToString(got.QueueConfigurations[0].QueueArn) != logsQueue {
		t.Fatalf("notification configuration not kept: %+v %v", got, err)
	}
	if b := q.bodies(logsQueue); len(b) != 1 || !strings.Contains(b[0], "s3:TestEvent") {
		t.Fatalf("configuring should send one test event, got %v", b)
	}

	for _, key := range []string{"AWSLogs/123/elasticloadbalancing/a b.log.gz", "other/skip.txt"} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader([]byte("hello"))}); err != nil {
			t.Fatal(err)
		}
	}
	b := q.bodies(logsQueue)
	if len(b) != 2 {
		t.Fatalf("want the test event and one ObjectCreated (prefix filter drops the other), got %d: %v", len(b), b)
	}
	var ev Event
	if err := json.Unmarshal([]byte(b[1]), &ev); err != nil {
		t.Fatal(err)
	}
	r := ev.Records[0]
	if r.EventName != "ObjectCreated:Put" || r.EventSource != "aws:s3" || r.S3.Bucket.Name != "logs" ||
		r.S3.Object.Key != "AWSLogs/123/elasticloadbalancing/a+b.log.gz" || r.S3.Object.Size != 5 || r.S3.ConfigurationID != "elb" {
		t.Errorf("unexpected record: %+v", r)
	}
}

func TestNotificationErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t, "", &queues{sent: map[string][]string{}})
	_, err := c.PutBucketNotificationConfiguration(ctx, &awss3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("missing"), NotificationConfiguration: &types.NotificationConfiguration{},
	})
	if err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("configuring a missing bucket: %v", err)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutBucketNotificationConfiguration(ctx, &awss3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String("bkt"),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			QueueArn: aws.String("not-an-arn"), Events: []types.Event{"s3:ObjectCreated:*"},
		}}},
	})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("a queue that is not an SQS ARN must be refused: %v", err)
	}
}

// Objects and notification configurations survive a restart.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q := &queues{sent: map[string][]string{}}
	svc, err := New(Config{DataDir: dir, Queues: q})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.backend.CreateBucket("logs"); err != nil {
		t.Fatal(err)
	}
	svc.configs["logs"] = NotificationConfiguration{Queues: []QueueConfiguration{{Queue: logsQueue, Events: []string{"s3:ObjectCreated:Put"}}}}
	if err := svc.saveLocked(); err != nil {
		t.Fatal(err)
	}
	if err := svc.PutObject(ctx, "logs", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	c, _ := newClient(t, dir, q)
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
	out.Body.Close()
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("k2"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	if n := len(q.bodies(logsQueue)); n != 2 {
		t.Errorf("notification configuration lost across restart: %d messages", n)
	}
}

// TestAdmitSize: an object bbolt cannot hold is refused with
// EntityTooLarge before it reaches the store (bbolt panicked at 256 MiB,
// and the client saw its connection reset), in one PUT or by the parts of
// a multipart upload; a part sent again replaces itself.
func TestAdmitSize(t *testing.T) {
	s := &Service{}
	put := func(target string, n int64) string {
		r := httptest.NewRequest(http.MethodPut, target, nil)
		r.ContentLength = n
		return s.admitSize(r)
	}
	const half = MaxObjectBytes / 2
	for _, tc := range []struct {
		name   string
		target string
		size   int64
		refuse bool
	}{
		{"small object", "/b/k", 1 << 20, false},
		{"the limit", "/b/k", MaxObjectBytes, false},
		{"past the limit", "/b/k", MaxObjectBytes + 1, true},
		{"tags are no object", "/b/k?tagging", MaxObjectBytes + 1, false},
		{"part 1", "/b/k?partNumber=1&uploadId=u", half, false},
		{"part 2", "/b/k?partNumber=2&uploadId=u", half, false},
		{"part 1 again", "/b/k?partNumber=1&uploadId=u", half, false},
		{"part 3 passes the limit", "/b/k?partNumber=3&uploadId=u", 2 << 20, true},
		{"another upload", "/b/k?partNumber=1&uploadId=v", half, false},
	} {
		if msg := put(tc.target, tc.size); (msg != "") != tc.refuse {
			t.Errorf("%s: admitSize = %q, want refused %v", tc.name, msg, tc.refuse)
		} else if tc.refuse && !strings.Contains(msg, "at most") {
			t.Errorf("%s: message %q does not say the limit", tc.name, msg)
		}
	}
	done := httptest.NewRequest(http.MethodPost, "/b/k?uploadId=u", nil)
	s.admitSize(done)
	if _, ok := s.uploads["u"]; ok {
		t.Error("a completed upload's parts are still counted")
	}
	if msg := put("/b/k?partNumber=1&uploadId=u", MaxObjectBytes); msg != "" {
		t.Errorf("upload id used again after completion refused: %q", msg)
	}
}
