package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkEvents/ledger=a/controllers=1-2   	    2000	   400 ns/op	  10 events/s
BenchmarkEvents/ledger=a/controllers=1-2   	    2000	   300 ns/op	  30 events/s
BenchmarkEvents/ledger=a/controllers=1-2   	    2000	   200 ns/op	  20 events/s
BenchmarkEvents/ledger=a/controllers=4-2   	    2000	   100 ns/op	  65 events/s
BenchmarkEvents/ledger=a/controllers=4-2   	    2000	   100 ns/op	  55 events/s
    fleet_test.go:403: 1000 of 1000 handovers committed
--- BENCH: BenchmarkFleet/x-2
PASS
`

func TestMediansAndChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(&out, []string{path},
		[]string{"one;Events/ledger=a/controllers=1;events/s;>=;25"},
		[]string{"four vs one;Events/ledger=a/controllers=4;Events/ledger=a/controllers=1;events/s;>=;3",
			"trend;Events/ledger=a/controllers=4;Events/ledger=a/controllers=1;ns/op;info;0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Events/ledger=a/controllers=1 | events/s | 3 | 20 | 10 | 30 |",
		"| Events/ledger=a/controllers=4 | events/s | 2 | 60 | 55 | 65 |",
		"| one (events/s) | 20 | >= 25 | no |",
		"| four vs one (events/s ratio) | 3 | >= 3 | yes |",
		"| trend (ns/op ratio) | 0.333 | — | (no target) |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// A benchmark that did not run (PostgreSQL skipped, say) is a row saying
// so; a malformed check is an error.
func TestMissingBenchmarkAndBadCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&out, []string{path}, []string{"x;Events/nope;events/s;>=;1"}, nil); err != nil {
		t.Fatal(err)
	}
	if want := "| x (events/s) | not measured: no benchmark Events/nope in the input | >= 1 | no |"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if err := run(&out, []string{path}, []string{"x;Events/nope;events/s;>=1"}, nil); err == nil {
		t.Error("a check with four fields was accepted")
	}
}
