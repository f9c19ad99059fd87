package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Bad flags are refused with what to change, exit 2, before anything
// is read or indexed.
func TestLogsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"logs", "run", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d"}, nil, "--queue-url is required"},
		{[]string{"logs", "run", "--queue-url", "q", "--dlq-file", "d"}, nil, "--endpoint is required"},
		{[]string{"logs", "run", "--queue-url", "q", "--endpoint", "ftp://x", "--dlq-file", "d"}, nil, `--endpoint "ftp://x" is not an http(s) URL`},
		{[]string{"logs", "run", "--queue-url", "q", "--endpoint", "http://127.0.0.1:1/_opensearch"}, nil, "give one of --dlq-url (an SQS queue) or --dlq-file"},
		{[]string{"logs", "run", "--queue-url", "q", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d", "--metrics-addr", "nowhere"}, nil, "--metrics-addr nowhere"},
		{[]string{"logs", "replay", "my-logs/x", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d"}, nil, "give the objects as s3://BUCKET/PREFIX"},
		{[]string{"logs", "run", "--queue-url", "q", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d", "--parse-workers", "-1"}, nil, "--parse-workers -1: give 1 or more goroutines, or 0 for the default"},
		{[]string{"logs", "replay", "s3://my-logs/x", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d", "--parse-workers", "-2"}, nil, "--parse-workers -2: give 1 or more"},
		{[]string{"logs", "replay", "s3://my-logs/x", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d"}, map[string]string{"HANDOVER_LOGS_PARSE_WORKERS": "many"}, `HANDOVER_LOGS_PARSE_WORKERS="many" is not a number`},
		{[]string{"lambda", "--mode", "logs", "--invoke", "/dev/null", "--endpoint", "http://127.0.0.1:1/_opensearch", "--dlq-file", "d"}, map[string]string{"HANDOVER_LOGS_PARSE_WORKERS": "-3"}, "--parse-workers -3: give 1 or more"},
		{[]string{"lambda", "--mode", "logs", "--invoke", "x.json", "--deadline-margin", "0s"}, nil, "--deadline-margin 0s must be positive"},
		{[]string{"lambda", "--mode", "logs", "--invoke", "x.json"}, map[string]string{"HANDOVER_LOGS_DEADLINE_MARGIN": "soon"}, `HANDOVER_LOGS_DEADLINE_MARGIN="soon" is not a duration`},
		{[]string{"lambda", "--mode", "logs"}, nil, "not running inside AWS Lambda"},
		{[]string{"lambda", "--mode", "log"}, nil, `unknown --mode "log": use controller or logs`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := Execute(context.Background(), tc.args, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errb.String(), tc.want)
			}
		})
	}
}
