package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandsSurviveOddAnswers: commands that read a controller's API
// get answers that decode but hold nothing (an endpoint that is not a
// handover controller, or a proxy's empty 200). Each must fail with a
// message that names what to check, never panic.
func TestCommandsSurviveOddAnswers(t *testing.T) {
	for _, body := range []string{`{}`, `null`, `{"updates":[null]}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, body)
		}))
		for _, args := range [][]string{
			{"updates", "show", "upd-1"},
			{"updates", "list"},
			{"update", "--group", "g", "--detach"},
			{"update", "--group", "g", "--poll", "10ms"},
			{"update", "--abort", "upd-1"},
		} {
			if args[1] == "list" && body != `{"updates":[null]}` {
				continue // no updates is a fine answer to a list
			}
			t.Run(body+" "+strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code := executeNoPanic(t, append(args, "--api", srv.URL), &stdout, &stderr)
				if code == 0 {
					t.Fatalf("exit 0 on an answer with no update; stdout: %s", stdout.String())
				}
				if msg := stderr.String(); !strings.Contains(msg, "/v1/updates") || !strings.Contains(msg, "check --api") {
					t.Errorf("stderr %q does not say what answered wrong and what to check", msg)
				}
			})
		}
		srv.Close()
	}
}

// executeNoPanic runs handover with args and fails the test, rather than
// the test binary, if it panics.
func executeNoPanic(t *testing.T, args []string, stdout, stderr io.Writer) (code int) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("handover %s panicked: %v", strings.Join(args, " "), p)
		}
	}()
	return Execute(context.Background(), args, stdout, stderr)
}

// TestDemoRefusesBadKVStore: a --kvstore that is missing or cannot run is
// refused at once, not found out minutes later as instances that never
// get healthy.
func TestDemoRefusesBadKVStore(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "kvstore")
	if err := os.WriteFile(notExec, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), notExec, t.TempDir()} {
		var stdout, stderr bytes.Buffer
		code := executeNoPanic(t, []string{"demo", "--kvstore", path, "--data-dir", t.TempDir()}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "--kvstore "+path) || !strings.Contains(stderr.String(), "make build") {
			t.Errorf("--kvstore %s: exit %d, stderr %q; want exit 2 naming the flag and what to do", path, code, stderr.String())
		}
	}
}
