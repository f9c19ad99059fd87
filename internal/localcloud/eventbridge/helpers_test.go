package eventbridge

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/sqs"
)

var epoch = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

const region = "eu-west-1"

// env is EventBridge and SQS, each behind a real HTTP server, and SDK
// clients for both.
type env struct {
	eb     *Service
	sqs    *sqs.Service
	ebc    *awseb.Client
	sqsc   *awssqs.Client
	sqsURL string
}

func awsConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")),
		config.WithRetryMaxAttempts(1),
	)
	if err != nil {
		t.Fatalf("loading SDK config: %v", err)
	}
	return cfg
}

// newEnv starts both services; cfg's Queues, Region and Clock are set
// here unless given.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	fc := clock.NewFake(epoch)
	q, err := sqs.New(sqs.Config{Region: region, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Queues == nil {
		cfg.Queues = q
	}
	cfg.Region = region
	if cfg.Clock == nil {
		cfg.Clock = fc
	}
	eb, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ebSrv := httptest.NewServer(eb)
	sqsSrv := httptest.NewServer(q)
	t.Cleanup(func() {
		ebSrv.Close()
		sqsSrv.Close()
		if err := eb.Close(); err != nil {
			t.Errorf("closing eventbridge: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("closing sqs: %v", err)
		}
	})
	awsCfg := awsConfig(t)
	return &env{
		eb: eb, sqs: q, sqsURL: sqsSrv.URL,
		ebc:  awseb.NewFromConfig(awsCfg, func(o *awseb.Options) { o.BaseEndpoint = aws.String(ebSrv.URL) }),
		sqsc: awssqs.NewFromConfig(awsCfg, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(sqsSrv.URL) }),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queue creates an SQS queue and returns its URL and ARN.
func (e *env) queue(t *testing.T, name string) (string, string) {
	t.Helper()
	out, err := e.sqsc.CreateQueue(ctxT(t), &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	return aws.ToString(out.QueueUrl), "arn:aws:sqs:" + region + ":000000000000:" + name
}

// bodies flushes deliveries and receives every message body in a queue.
func (e *env) bodies(t *testing.T, queueURL string) []string {
	t.Helper()
	if err := e.eb.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	var out []string
	for {
		got, err := e.sqsc.ReceiveMessage(ctxT(t), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		if len(got.Messages) == 0 {
			return out
		}
		for _, m := range got.Messages {
			out = append(out, aws.ToString(m.Body))
		}
	}
}

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error = %v, want API error %s", err, code)
	}
}

// recorder is a QueueSender that records what it is sent, failing the
// first failFirst sends.
type recorder struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	sent      []string
}

func (r *recorder) SendByARN(_ context.Context, arn, body string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		return errors.New("queue unavailable")
	}
	r.sent = append(r.sent, body)
	return nil
}

func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sent...)
}

var _ QueueSender = (*recorder)(nil)
