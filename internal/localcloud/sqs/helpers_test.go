package sqs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/clock"
)

var epoch = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// env is a Service behind a real HTTP server, and an SDK client for it.
type env struct {
	svc    *Service
	srv    *httptest.Server
	client *awssqs.Client
	clock  *clock.Fake
}

// newEnv starts a Service on a fake clock. cfg's Clock is replaced.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	fc := clock.NewFake(epoch)
	cfg.Clock = fc
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() {
		srv.Close()
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{svc: svc, srv: srv, client: newClient(t, srv.URL), clock: fc}
}

// newClient returns the real SDK client pointed at url.
func newClient(t *testing.T, url string) *awssqs.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")),
		config.WithRetryMaxAttempts(1),
	)
	if err != nil {
		t.Fatalf("loading SDK config: %v", err)
	}
	return awssqs.NewFromConfig(cfg, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(url) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createQueue creates a queue through the SDK and returns its URL.
func (e *env) createQueue(t *testing.T, name string, attrs map[string]string) string {
	t.Helper()
	out, err := e.client.CreateQueue(ctxT(t), &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func (e *env) send(t *testing.T, queueURL, body string) string {
	t.Helper()
	out, err := e.client.SendMessage(ctxT(t), &awssqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body)})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return aws.ToString(out.MessageId)
}

// receive receives without waiting, asking for every attribute.
func (e *env) receive(t *testing.T, queueURL string, max int32) *awssqs.ReceiveMessageOutput {
	t.Helper()
	out, err := e.client.ReceiveMessage(ctxT(t), &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(queueURL),
		MaxNumberOfMessages:         max,
		WaitTimeSeconds:             0,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out
}

func (e *env) attrs(t *testing.T, queueURL string) map[string]string {
	t.Helper()
	out, err := e.client.GetQueueAttributes(ctxT(t), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	return out.Attributes
}

// wantAPIError checks that err is an API error with the code.
func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("error code = %q (%v), want %q", ae.ErrorCode(), err, code)
	}
}

// postForm sends a Query-protocol request as the AWS CLI does.
func postForm(t *testing.T, srvURL string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, srvURL+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", form.Get("Action"), err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
