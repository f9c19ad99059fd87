package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/localcloud"
)

// cloud is a local cloud behind a real HTTP server, which accepts only the
// access key "local", and in front of it a fault: the next calls of an
// operation can be made to fail the way AWS's fail, before they reach it.
type cloud struct {
	c   *localcloud.Cloud
	url string

	mu     sync.Mutex
	faults map[string]fault // by operation ("GetQueueAttributes")
}

type fault struct {
	status int
	code   string
	count  int
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	c, err := localcloud.New(localcloud.Config{DataDir: t.TempDir(), AccessKeys: []string{"local"}})
	if err != nil {
		t.Fatal(err)
	}
	cl := &cloud{c: c, faults: map[string]fault{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		cl.mu.Lock()
		f, hit := cl.faults[op]
		if hit {
			if f.count--; f.count == 0 {
				delete(cl.faults, op)
			} else {
				cl.faults[op] = f
			}
		}
		cl.mu.Unlock()
		if !hit {
			c.Handler().ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"__type":%q,"message":"injected by the test"}`, f.code)
	}))
	t.Cleanup(func() { srv.Close(); c.Close() })
	cl.url = srv.URL
	return cl
}

// fail makes the next n calls of op fail: a 500 InternalError, or with
// throttle a 400 Throttling.
func (c *cloud) fail(t *testing.T, op string, n int, throttle bool) {
	f := fault{status: http.StatusInternalServerError, code: "InternalError", count: n}
	if throttle {
		f = fault{status: http.StatusBadRequest, code: "Throttling", count: n}
	}
	c.mu.Lock()
	c.faults[op] = f
	c.mu.Unlock()
	t.Cleanup(func() { c.mu.Lock(); delete(c.faults, op); c.mu.Unlock() })
}

// client is the real SDK client for the cloud, signing with key, without
// the SDK's own retries (the daemon's are under test).
func (c *cloud) client(t *testing.T, key string) *sqs.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, "secret", "")),
		config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(c.url) })
}

// queue creates a queue, with a redrive policy to dlq's ARN if dlq is set.
func queue(t *testing.T, q *sqs.Client, name, dlqURL string) (url, arn string) {
	t.Helper()
	attrs := map[string]string{}
	if dlqURL != "" {
		redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": queueARN(t, q, dlqURL), "maxReceiveCount": "5"})
		attrs["RedrivePolicy"] = string(redrive)
	}
	out, err := q.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl), queueARN(t, q, aws.ToString(out.QueueUrl))
}

func queueARN(t *testing.T, q *sqs.Client, url string) string {
	t.Helper()
	out, err := q.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// TestStartChecks: the checks the controller runs at start tell a missing
// or unwired queue, or refused credentials, from a passing fault, and say
// what to fix.
func TestStartChecks(t *testing.T) {
	c := startCloud(t)
	q := c.client(t, "local")
	dlq, dlqARN := queue(t, q, "dlq", "")
	good, _ := queue(t, q, "events", dlq)
	bare, _ := queue(t, q, "bare", "")
	gone, _ := queue(t, q, "gone-dlq", "")
	orphan, _ := queue(t, q, "orphan", gone)
	if _, err := q.DeleteQueue(t.Context(), &sqs.DeleteQueueInput{QueueUrl: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}
	other, otherARN := queue(t, q, "other-dlq", "")

	tests := []struct {
		name      string
		key       string // access key the client signs with
		queue     string
		explicit  string // --dead-letter-queue-url
		fault     string // an operation that fails once
		throttle  bool
		wantCheck string // "" for no misconfiguration
		wantErr   string // in the error, misconfigured or not
		wantFix   string
		wantDLQ   string
		wantExpl  string
	}{
		{name: "wired", key: "local", queue: good, wantDLQ: dlq},
		{name: "explicit dead-letter queue", key: "local", queue: good, explicit: other, wantDLQ: dlq, wantExpl: otherARN},
		{name: "missing queue", key: "local", queue: c.url + "/000000000000/nope", wantCheck: "queue",
			wantErr: "does not exist", wantFix: "aws sqs create-queue --queue-name nope"},
		{name: "not a queue URL", key: "local", queue: "q", wantCheck: "queue", wantErr: "is not a queue URL", wantFix: "--queue-url"},
		{name: "no redrive policy", key: "local", queue: bare, wantCheck: "dead-letter-queue", wantErr: "has no redrive policy", wantFix: "RedrivePolicy"},
		{name: "dead-letter queue deleted", key: "local", queue: orphan, wantCheck: "dead-letter-queue",
			wantErr: "gone-dlq (the redrive policy of", wantFix: "aws sqs create-queue --queue-name gone-dlq"},
		{name: "explicit dead-letter queue missing", key: "local", queue: good, explicit: c.url + "/000000000000/nope",
			wantCheck: "dead-letter-queue", wantErr: "does not exist", wantFix: "--dead-letter-queue-url"},
		{name: "refused credentials", key: "stranger", queue: good, wantCheck: "credentials", wantErr: "UnrecognizedClientException", wantFix: "AWS_ACCESS_KEY_ID"},
		{name: "server error", key: "local", queue: good, fault: "GetQueueAttributes", wantErr: "InternalError"},
		{name: "throttled", key: "local", queue: good, fault: "GetQueueUrl", throttle: true, wantErr: "Throttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != "" {
				c.fail(t, tt.fault, 1, tt.throttle)
			}
			cl := c.client(t, tt.key)
			found, err := CheckQueue(t.Context(), cl, tt.queue)
			if err == nil {
				found, err = CheckDeadLetter(t.Context(), cl, found, tt.explicit)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checks: %v", err)
				}
				if found.DeadLetterURL != tt.wantDLQ || found.DeadLetterARN != dlqARN || found.ExplicitARN != tt.wantExpl {
					t.Errorf("found %+v, want dead-letter queue %s (%s), explicit %q", found, tt.wantDLQ, dlqARN, tt.wantExpl)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			var m *MisconfiguredError
			isM := errors.As(err, &m)
			if tt.wantCheck == "" {
				if isM {
					t.Errorf("a passing fault was taken for a misconfiguration: %v", err)
				}
				return
			}
			if !isM {
				t.Fatalf("%v is not a misconfiguration", err)
			}
			if m.Check != tt.wantCheck || !strings.Contains(m.Fix, tt.wantFix) {
				t.Errorf("check %q fix %q, want check %q and a fix naming %q", m.Check, m.Fix, tt.wantCheck, tt.wantFix)
			}
		})
	}
}

// hermeticNoCredentials leaves the SDK's default chain nothing to find:
// no variables, no files, no instance metadata.
func hermeticNoCredentials(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

func TestCheckCredentials(t *testing.T) {
	if err := CheckCredentials(t.Context(), credentials.NewStaticCredentialsProvider("local", "local", "")); err != nil {
		t.Errorf("static credentials: %v", err)
	}
	if err := CheckCredentials(t.Context(), nil); !IsMisconfigured(err) {
		t.Errorf("no provider: %v, want a misconfiguration", err)
	}
	hermeticNoCredentials(t)
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckCredentials(t.Context(), cfg.Credentials)
	if !IsMisconfigured(err) || !strings.Contains(err.Error(), "no AWS credentials resolve") || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("an empty chain: %v, want a misconfiguration that says how to give credentials", err)
	}
}

// syncBuffer is a log destination the daemon's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunChecksAtStart: with CheckAtStart, Run stops at once on a
// misconfiguration; a passing fault is retried (and logged) while the
// loops run, after which Run consumes, or stops if what the fault hid is
// a misconfiguration.
func TestRunChecksAtStart(t *testing.T) {
	c := startCloud(t)
	q := c.client(t, "local")
	dlq, _ := queue(t, q, "dlq", "")
	good, _ := queue(t, q, "events", dlq)
	bare, _ := queue(t, q, "bare", "")

	tests := []struct {
		name     string
		queue    string
		fault    string // an operation that fails twice
		throttle bool
		wantStop string // "" for a daemon that keeps running
		wantLog  []string
	}{
		{name: "missing queue", queue: c.url + "/000000000000/nope", wantStop: "does not exist"},
		{name: "no dead-letter queue", queue: bare, wantStop: "has no redrive policy"},
		{name: "healthy", queue: good, wantLog: []string{"controller running", "dead-letter-queue=" + dlq}},
		{name: "a fault, then healthy", queue: good, fault: "GetQueueAttributes",
			wantLog: []string{"could not check the queues at start", "checking the queues at start", "queues checked; consuming"}},
		{name: "a fault, then no dead-letter queue", queue: bare, fault: "GetQueueAttributes", throttle: true,
			wantStop: "has no redrive policy", wantLog: []string{"could not check the queues at start", "stopping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != "" {
				c.fail(t, tt.fault, 2, tt.throttle)
			}
			var logs syncBuffer
			eng := &fakeEngine{ids: map[string][]string{}}
			cfg := DefaultConfig()
			cfg.QueueURL, cfg.WaitTime = tt.queue, time.Second
			d, err := New(cfg, eng, q, memory.New(), clock.Real{}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.CheckAtStart(credentials.NewStaticCredentialsProvider("local", "secret", ""))
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()

			if tt.wantStop != "" {
				select {
				case err := <-done:
					if !IsMisconfigured(err) || !strings.Contains(err.Error(), tt.wantStop) {
						t.Fatalf("Run = %v, want a misconfiguration saying %q", err, tt.wantStop)
					}
				case <-ctx.Done():
					t.Fatal("Run did not stop on a misconfiguration")
				}
			} else {
				// A message sent now is consumed once the checks pass.
				if _, err := q.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(tt.queue), MessageBody: aws.String("hello")}); err != nil {
					t.Fatal(err)
				}
				for !strings.Contains(logs.String(), "queues checked") && tt.fault != "" && ctx.Err() == nil {
					time.Sleep(20 * time.Millisecond)
				}
				waitEmpty(ctx, t, q, tt.queue)
				select {
				case err := <-done:
					t.Fatalf("Run stopped: %v", err)
				default:
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run after its context ended = %v, want nil", err)
				}
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log lacks %q:\n%s", want, logs.String())
				}
			}
		})
	}
}

// waitEmpty waits until the queue holds no message, visible or not.
func waitEmpty(ctx context.Context, t *testing.T, q *sqs.Client, url string) {
	t.Helper()
	for {
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the message was never consumed (last error %v)", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
