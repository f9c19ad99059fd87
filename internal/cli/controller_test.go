package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/localcloud"
)

// hermeticAWS gives the SDK's default chain exactly the access key key
// (none if empty) and nothing else to find: no profile, no files, no
// instance metadata, no container or web identity credentials.
func hermeticAWS(t *testing.T, key string) {
	dir := t.TempDir()
	secret := ""
	if key != "" {
		secret = "local"
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "",
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "", "HANDOVER_API_TOKEN": "",
	} {
		t.Setenv(k, v)
	}
}

// testCloud is a local cloud behind a real HTTP server that accepts only
// the access key "local", with an SDK configuration for it.
type testCloud struct {
	c   *localcloud.Cloud
	url string
	aws aws.Config
}

func startTestCloud(t *testing.T) *testCloud {
	t.Helper()
	c, err := localcloud.New(localcloud.Config{DataDir: t.TempDir(), AccessKeys: []string{"local"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(srv.URL)
	return &testCloud{c: c, url: srv.URL, aws: cfg}
}

// queue creates a queue, with a redrive policy to the queue at dlqURL if
// given, and returns its URL and ARN.
func (tc *testCloud) queue(t *testing.T, name, dlqURL string) (string, string) {
	t.Helper()
	q := sqs.NewFromConfig(tc.aws)
	attrs := map[string]string{}
	if dlqURL != "" {
		redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": tc.queueARN(t, dlqURL), "maxReceiveCount": "5"})
		attrs["RedrivePolicy"] = string(redrive)
	}
	out, err := q.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl), tc.queueARN(t, aws.ToString(out.QueueUrl))
}

func (tc *testCloud) queueARN(t *testing.T, url string) string {
	t.Helper()
	out, err := sqs.NewFromConfig(tc.aws).GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// lockedBuffer is a stderr the controller's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestControllerChecksAtStart: started with a queue that does not exist,
// one without a dead-letter queue, or no credentials, the controller
// exits 2 at once saying what to fix, instead of warning every second; a
// healthy deployment runs until stopped.
func TestControllerChecksAtStart(t *testing.T) {
	hermeticAWS(t, "local")
	tc := startTestCloud(t)
	dlq, _ := tc.queue(t, "handover-events-dlq", "")
	good, _ := tc.queue(t, "handover-events", dlq)
	bare, _ := tc.queue(t, "no-dlq", "")
	gone, _ := tc.queue(t, "gone-dlq", "")
	orphan, _ := tc.queue(t, "orphan", gone)
	if _, err := sqs.NewFromConfig(tc.aws).DeleteQueue(t.Context(), &sqs.DeleteQueueInput{QueueUrl: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		key     string // AWS_ACCESS_KEY_ID; "" for no credentials at all
		queue   string
		extra   []string
		want    []string // in stderr, for exit 2; nil for a controller that runs
		wantRun string   // in stderr of one that runs
	}{
		{name: "missing queue", key: "local", queue: tc.url + "/000000000000/handover-evnets",
			want: []string{"the events queue " + tc.url + "/000000000000/handover-evnets does not exist", "aws sqs create-queue --queue-name handover-evnets", "--queue-url"}},
		{name: "no dead-letter queue", key: "local", queue: bare, want: []string{"has no redrive policy", "RedrivePolicy"}},
		{name: "dead-letter queue deleted", key: "local", queue: orphan, want: []string{"gone-dlq", "does not exist", "point the redrive policy at a queue that exists"}},
		{name: "explicit dead-letter queue missing", key: "local", queue: good, extra: []string{"--dead-letter-queue-url", tc.url + "/000000000000/nope"},
			want: []string{"(--dead-letter-queue-url) does not exist"}},
		{name: "no credentials", key: "", queue: good, want: []string{"no AWS credentials resolve", "AWS_ACCESS_KEY_ID"}},
		{name: "refused credentials", key: "stranger", queue: good, want: []string{"the credentials are refused", "UnrecognizedClientException"}},
		{name: "healthy", key: "local", queue: good, wantRun: "controller running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hermeticAWS(t, tt.key)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stdout, stderr lockedBuffer
			args := append([]string{"controller", "--endpoint-url", tc.url, "--queue-url", tt.queue,
				"--ledger", "sqlite://" + filepath.Join(t.TempDir(), "ledger.db"), "--listen", "127.0.0.1:0", "--queue-wait", "1s"}, tt.extra...)
			done := make(chan int, 1)
			start := time.Now()
			go func() { done <- Execute(ctx, args, &stdout, &stderr) }()
			if tt.want != nil {
				select {
				case code := <-done:
					if code != 2 {
						t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
					}
				case <-ctx.Done():
					t.Fatalf("still running after 30s, want exit 2; stderr:\n%s", stderr.String())
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("took %s to say so", d)
				}
				for _, w := range tt.want {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
					}
				}
				if n := strings.Count(stderr.String(), "receiving from the events queue"); n > 0 {
					t.Errorf("it tried to receive %d time(s) before stopping", n)
				}
				return
			}
			for !strings.Contains(stderr.String(), tt.wantRun) {
				select {
				case code := <-done:
					t.Fatalf("exit %d, want a running controller; stderr:\n%s", code, stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
			}
			select {
			case code := <-done:
				t.Fatalf("exit %d, want a running controller; stderr:\n%s", code, stderr.String())
			case <-time.After(1500 * time.Millisecond):
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("exit %d after being stopped, want 0; stderr:\n%s", code, stderr.String())
			}
		})
	}
}
