package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/handover-dev/handover/internal/deploy"
	"github.com/handover-dev/handover/internal/logs/logstest"
)

// The function `deploy template --logs` writes runs the log pipeline: its
// environment, with the stack's references resolved to the local cloud's
// queues and endpoint, alone configures `handover lambda` (as the
// bootstrap runs it, without flags), which indexes the object an S3 event
// names.
func TestLogsTemplateEnvironmentRunsTheLambda(t *testing.T) {
	env := logstest.Start(t, logstest.Options{})
	tmpl, err := deploy.LogsTemplate(deploy.LogsConfig{Trigger: deploy.TriggerSQS})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Environment struct {
					Variables map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal(tmpl, &doc); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{"LogsQueue": env.QueueURL, "LogsDeadLetterQueue": env.DeadURL, "DomainEndpoint": env.Endpoint, "IndexPrefix": "elb-logs"}
	vars := doc.Resources["LogsFunction"].Properties.Environment.Variables
	if len(vars) == 0 {
		t.Fatal("the function has no environment")
	}
	for k, v := range vars {
		switch x := v.(type) {
		case string:
			t.Setenv(k, x)
		case map[string]any:
			ref, _ := x["Ref"].(string)
			val, ok := refs[ref]
			if !ok {
				t.Fatalf("%s = %v: the test knows no value for it", k, v)
			}
			t.Setenv(k, val)
		}
	}
	// What Lambda gives the function, and the local cloud in place of AWS.
	t.Setenv("HANDOVER_ENDPOINT_URL", env.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")

	env.Put(t, logstest.ALBKey("web"), logstest.Gzip(logstest.ALBLines(50)))
	var event string
	for event == "" {
		for _, m := range env.Receive(t, env.QueueURL, 10, time.Second) {
			if strings.Contains(aws.ToString(m.Body), `"aws:s3"`) {
				event = aws.ToString(m.Body)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, []byte(event), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Execute(context.Background(), []string{"lambda", "--invoke", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"objects": 1`) {
		t.Errorf("answer %s", out.String())
	}
	if n := env.Count(t); n != 50 {
		t.Errorf("%d documents, want 50", n)
	}
}
