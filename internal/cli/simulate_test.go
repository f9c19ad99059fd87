package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./internal/cli -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The text report is deterministic for given seeds, so it is a golden file;
// its last line is the contract scripts rely on.
func TestSimulateText(t *testing.T) {
	out, _, code := run(t, "simulate", "--seeds", "12", "--parallel", "2")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	golden(t, "simulate-12.txt", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "simulate: 12 seeds, ") || !strings.HasSuffix(last, ", 0 invariant violations") {
		t.Errorf("last line %q is not the summary", last)
	}
}

// TestSimulateOverlapFindsStaleReads: without a cutover the simulation
// reports stale reads and exits 1, so the checker behind the 0 above is
// known to see them.
func TestSimulateOverlapFindsStaleReads(t *testing.T) {
	out, _, code := run(t, "simulate", "--seeds", "6", "--cutover", "overlap", "--parallel", "2")
	if code != 1 || !strings.Contains(out, "invariant no-stale-reads") {
		t.Fatalf("exit %d, want 1 with invariant no-stale-reads violations:\n%s", code, out)
	}
	if _, errOut, code := run(t, "simulate", "--cutover", "sideways"); code != 2 || !strings.Contains(errOut, "retire") {
		t.Errorf("--cutover sideways: exit %d, stderr %q; want 2 naming the choices", code, errOut)
	}
}

func TestSimulateJSON(t *testing.T) {
	out, _, code := run(t, "simulate", "--seeds", "5", "--seed", "100", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var rep SimulateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if rep.Seeds != 5 || rep.FirstSeed != 100 || rep.Handovers == 0 || rep.Handovers != rep.Committed+rep.Aborted || rep.Violations != 0 {
		t.Errorf("unexpected report: %+v", rep)
	}
	if rep.FailingSeeds == nil {
		t.Error("failing_seeds must be [] rather than null, for consumers")
	}
}

func TestSimulateBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"simulate", "--seeds", "0"}, "--seeds must be at least 1"},
		{[]string{"simulate", "--output", "yaml"}, `unknown output "yaml": use text or json`},
		{[]string{"simulate", "--ledger", "postgres"}, `--ledger "postgres": use memory or sqlite`},
		{[]string{"simulate", "--log-level", "loud"}, `unknown --log-level "loud"`},
		{[]string{"simulate", "extra"}, `unknown command "extra"`},
		{[]string{"simulat"}, `unknown command "simulat"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := run(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", stderr, tc.want)
			}
		})
	}
}

func TestSimulateHelpHasExamples(t *testing.T) {
	out, _, code := run(t, "simulate", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "handover simulate --seed 4242 --seeds 1") {
		t.Errorf("help without examples (exit %d):\n%s", code, out)
	}
}
