package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
)

// The SDK's own warnings reach stderr only at --log-level debug.
func TestSDKLogLinesAtDebug(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  bool
	}{{"debug", true}, {"info", false}, {"warn", false}, {"off", false}} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, tt.level)
		if err != nil {
			t.Fatal(err)
		}
		sdkLogger{log: log}.Logf(logging.Warn, "failed to discard remaining HTTP response body: %v", "context canceled")
		if got := strings.Contains(buf.String(), "failed to discard"); got != tt.want {
			t.Errorf("--log-level %s: logged %v, want %v: %q", tt.level, got, tt.want, buf.String())
		}
	}
	sdkLogger{}.Logf(logging.Warn, "a nil log discards") // must not panic
}
