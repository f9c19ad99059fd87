// Command medians reads `go test -bench` output and prints, as Markdown,
// the median (with min and max) of every metric of every benchmark over
// its runs (-count N), then checks targets and ratios between benchmarks.
// bench/run.sh uses it to write bench/RESULTS.md.
//
//	go test -bench . -count 5 ./bench/controller > out.txt
//	go run ./bench/cmd/medians \
//	  -target 'SQLite;Events/inflight=100/ledger=sqlite/controllers=1;events/s;>=;2000' \
//	  -ratio '4 vs 1;Events/inflight=100/ledger=postgres/controllers=4;Events/inflight=100/ledger=postgres/controllers=1;events/s;>=;3' \
//	  out.txt
//
// Benchmarks are named without the "Benchmark" prefix and the -GOMAXPROCS
// suffix. It reads standard input when given no file. It only reports: a
// missed target is a row saying so, and so is one naming a benchmark or
// metric the input lacks (skipped, say, without PostgreSQL); a malformed
// check is an error.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var targets, ratios listFlag
	flag.Var(&targets, "target", "`label;bench;unit;op;value`: bench's median unit must compare to value by op (>=, <=, >, <; info only shows it); repeatable")
	flag.Var(&ratios, "ratio", "`label;benchA;benchB;unit;op;value`: median A / median B of unit must compare to value by op; repeatable")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: medians [-target …] [-ratio …] [go-test-bench-output…]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(os.Stdout, flag.Args(), targets, ratios); err != nil {
		fmt.Fprintln(os.Stderr, "medians:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, files []string, targets, ratios []string) error {
	res := results{}
	if len(files) == 0 {
		if err := res.parse(os.Stdin); err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = res.parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
	}
	if len(res) == 0 {
		return errors.New("no benchmark results in the input")
	}
	res.table(w)
	if len(targets)+len(ratios) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n| check | measured (median) | target | met |\n|---|---|---|---|\n")
	for _, t := range targets {
		if err := res.check(w, t, false); err != nil {
			return fmt.Errorf("target %q: %w", t, err)
		}
	}
	for _, r := range ratios {
		if err := res.check(w, r, true); err != nil {
			return fmt.Errorf("ratio %q: %w", r, err)
		}
	}
	return nil
}

// results maps a benchmark to its metrics' values, one per run, in the
// order the benchmarks first appeared.
type results map[string]*bench

type bench struct {
	order  int
	units  []string
	values map[string][]float64
}

// A result line: name, iterations, then value-unit pairs.
var lineRE = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func (r results) parse(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		if len(fields)%2 != 0 {
			continue // a log line that looks like a result
		}
		b := r[m[1]]
		if b == nil {
			b = &bench{order: len(r), values: map[string][]float64{}}
			r[m[1]] = b
		}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return fmt.Errorf("benchmark %s: value %q: %w", m[1], fields[i], err)
			}
			unit := fields[i+1]
			if _, ok := b.values[unit]; !ok {
				b.units = append(b.units, unit)
			}
			b.values[unit] = append(b.values[unit], v)
		}
	}
	return sc.Err()
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (r results) names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return r[a].order - r[b].order })
	return names
}

func (r results) table(w io.Writer) {
	fmt.Fprintf(w, "| benchmark | metric | runs | median | min | max |\n|---|---|---|---|---|---|\n")
	for _, name := range r.names() {
		b := r[name]
		for _, u := range b.units {
			vs := b.values[u]
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s |\n", name, u, len(vs),
				format(median(vs)), format(slices.Min(vs)), format(slices.Max(vs)))
		}
	}
}

func format(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v, 'e', 3, 64)
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func (r results) median(name, unit string) (float64, error) {
	b := r[name]
	if b == nil {
		return 0, fmt.Errorf("no benchmark %s in the input", name)
	}
	vs, ok := b.values[unit]
	if !ok {
		return 0, fmt.Errorf("benchmark %s has no metric %s", name, unit)
	}
	return median(vs), nil
}

// check prints one row of the checks table.
func (r results) check(w io.Writer, spec string, ratio bool) error {
	parts := strings.Split(spec, ";")
	want := 5
	if ratio {
		want = 6
	}
	if len(parts) != want {
		return fmt.Errorf("want %d fields separated by ';', got %d", want, len(parts))
	}
	label, op, limitText := parts[0], parts[len(parts)-2], parts[len(parts)-1]
	limit, err := strconv.ParseFloat(limitText, 64)
	if err != nil {
		return fmt.Errorf("value %q: %w", limitText, err)
	}
	what := fmt.Sprintf("%s (%s)", label, parts[len(parts)-3])
	if ratio {
		what = fmt.Sprintf("%s (%s ratio)", label, parts[3])
	}
	var got float64
	if ratio {
		a, errA := r.median(parts[1], parts[3])
		b, errB := r.median(parts[2], parts[3])
		switch {
		case errA != nil || errB != nil:
			err = errors.Join(errA, errB)
		case b == 0:
			err = fmt.Errorf("median %s of %s is 0", parts[3], parts[2])
		default:
			got = a / b
		}
	} else {
		got, err = r.median(parts[1], parts[2])
	}
	if err != nil {
		fmt.Fprintf(w, "| %s | not measured: %s | %s %s | no |\n", what, strings.ReplaceAll(err.Error(), "\n", "; "), op, limitText)
		return nil
	}
	if op == "info" {
		fmt.Fprintf(w, "| %s | %s | — | (no target) |\n", what, format(got))
		return nil
	}
	var met bool
	switch op {
	case ">=":
		met = got >= limit
	case "<=":
		met = got <= limit
	case ">":
		met = got > limit
	case "<":
		met = got < limit
	default:
		return fmt.Errorf("op %q: want >=, <=, >, < or info", op)
	}
	verdict := "no"
	if met {
		verdict = "yes"
	}
	fmt.Fprintf(w, "| %s | %s | %s %s | %s |\n", what, format(got), op, limitText, verdict)
	return nil
}
