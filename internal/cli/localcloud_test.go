package cli

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/localcloud"
)

// The fault commands drive a running local cloud's admin API.
func TestFaultCommands(t *testing.T) {
	c, err := localcloud.New(localcloud.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	ep := "--endpoint-url=" + srv.URL

	out, stderr, code := run(t, "localcloud", "fault", "add", ep, "--service", "ec2", "--action", "CreateSnapshot", "--kind", "throttle", "--rate", "0.5")
	if code != 0 || strings.TrimSpace(out) != "added f-1" {
		t.Fatalf("add: exit %d, %q %q", code, out, stderr)
	}
	out, _, code = run(t, "localcloud", "fault", "list", ep, "--output", "json")
	var rules []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rules) != nil || len(rules) != 1 || rules[0]["kind"] != "throttle" || rules[0]["rate"] != 0.5 {
		t.Fatalf("list: exit %d, %s", code, out)
	}
	_, stderr, code = run(t, "localcloud", "fault", "add", ep, "--service", "ec2", "--kind", "explode")
	if code != 1 || !strings.Contains(stderr, `unknown fault kind "explode"`) {
		t.Errorf("bad kind: exit %d, %q", code, stderr)
	}
	_, stderr, code = run(t, "localcloud", "fault", "rm", ep, "f-9")
	if code != 1 || !strings.Contains(stderr, `no fault rule "f-9"`) {
		t.Errorf("rm unknown: exit %d, %q", code, stderr)
	}
	if _, _, code = run(t, "localcloud", "fault", "rm", ep, "f-1"); code != 0 {
		t.Errorf("rm: exit %d", code)
	}
	_, stderr, code = run(t, "localcloud", "fault", "list", "--endpoint-url=http://127.0.0.1:1")
	if code == 0 || !strings.Contains(stderr, "is `handover localcloud` running there?") {
		t.Errorf("unreachable endpoint: exit %d, %q", code, stderr)
	}
}

func TestLocalcloudHelp(t *testing.T) {
	out, _, code := run(t, "localcloud", "--help")
	for _, want := range []string{"Catalog (--catalog)", "Data directory (--data-dir)", "/_localcloud/faults", "Examples:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
