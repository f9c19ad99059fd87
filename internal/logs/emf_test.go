package logs

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// checkEMF parses EMF lines and holds each to the specification: one JSON
// object per line; _aws with a Timestamp in epoch milliseconds and one
// metric directive (a namespace, dimension sets whose every dimension is a
// string member of the root, metrics whose every name is a member holding
// a number or at most 100 numbers, with a CloudWatch unit). It returns the
// documents.
func checkEMF(t *testing.T, out string, at time.Time) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var doc map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || dec.More() {
			t.Fatalf("not one JSON object on a line: %q (%v)", line, err)
		}
		meta, ok := doc["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("no _aws object: %s", line)
		}
		if ts, err := meta["Timestamp"].(json.Number).Int64(); err != nil || ts != at.UnixMilli() {
			t.Errorf("Timestamp %v, want %d (epoch ms)", meta["Timestamp"], at.UnixMilli())
		}
		dirs, _ := meta["CloudWatchMetrics"].([]any)
		if len(dirs) != 1 {
			t.Fatalf("%d metric directives: %s", len(dirs), line)
		}
		dir := dirs[0].(map[string]any)
		if dir["Namespace"] != "handover/logs" {
			t.Errorf("namespace %v", dir["Namespace"])
		}
		for _, set := range dir["Dimensions"].([]any) {
			for _, d := range set.([]any) {
				if _, ok := doc[d.(string)].(string); !ok {
					t.Errorf("dimension %v is not a string member of the root: %s", d, line)
				}
			}
		}
		for _, m := range dir["Metrics"].([]any) {
			def := m.(map[string]any)
			name := def["Name"].(string)
			if !slices.Contains([]string{"Count", "Seconds"}, def["Unit"].(string)) {
				t.Errorf("metric %s: unit %v", name, def["Unit"])
			}
			switch v := doc[name].(type) {
			case json.Number:
			case []any:
				if len(v) == 0 || len(v) > 100 {
					t.Errorf("metric %s has %d values (1 to 100)", name, len(v))
				}
			default:
				t.Errorf("metric %s: member %v is not a number or an array of numbers", name, doc[name])
			}
		}
		docs = append(docs, doc)
	}
	return docs
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	f, err := v.(json.Number).Float64()
	if err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return f
}

func TestEMFInvocationLine(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	e := &EMF{W: &buf, Function: "elb-logs-fn", Clock: clock.NewFake(at)}
	before := StatsSnapshot{Objects: 3, Lines: 1000, Indexed: 900, Duplicates: 100, Retries: 7, DeadLettered: 1}
	after := StatsSnapshot{Objects: 5, Lines: 1600, Indexed: 1450, Duplicates: 140, Retries: 9, DeadLettered: 4}
	e.ObjectIndexed("alb", 1500*time.Millisecond)
	e.ObjectIndexed("classic", -1) // a replay: no event time, no lag
	e.ObjectIndexed("alb", 3*time.Second)
	e.DeadLettered(CauseUnparseable, 2)
	e.DeadLettered(CauseMissing, 1)
	if err := e.Emit(before, after); err != nil {
		t.Fatal(err)
	}
	docs := checkEMF(t, buf.String(), at)
	if len(docs) != 1 {
		t.Fatalf("%d lines, want 1", len(docs))
	}
	d := docs[0]
	if d["FunctionName"] != "elb-logs-fn" {
		t.Errorf("FunctionName %v", d["FunctionName"])
	}
	for name, want := range map[string]float64{"Objects": 2, "Lines": 600, "Indexed": 550, "Duplicates": 40, "Retries": 2, "DeadLetters": 3} {
		if got := num(t, d[name]); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	lags := d["Lag"].([]any)
	if len(lags) != 2 || num(t, lags[0]) != 1.5 || num(t, lags[1]) != 3 {
		t.Errorf("Lag %v, want [1.5 3]", lags)
	}
	if got, _ := json.Marshal(d["DeadLettersByCause"]); string(got) != `{"missing-object":1,"unparseable-line":2}` {
		t.Errorf("DeadLettersByCause %s", got)
	}

	// The next invocation starts afresh: no lag, no causes, zero counts.
	buf.Reset()
	if err := e.Emit(after, after); err != nil {
		t.Fatal(err)
	}
	d = checkEMF(t, buf.String(), at)[0]
	if _, ok := d["Lag"]; ok || d["DeadLettersByCause"] != nil || num(t, d["Indexed"]) != 0 {
		t.Errorf("an idle invocation: %v", d)
	}
	if strings.Contains(buf.String(), `"Lag"`) {
		t.Errorf("Lag declared without values: %s", buf.String())
	}
}

// More than 100 objects in one invocation: the lags beyond the first 100
// go on lines of their own, carrying only Lag.
func TestEMFManyLags(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	e := &EMF{W: &buf, Clock: clock.NewFake(at)}
	for i := range 250 {
		e.ObjectIndexed("alb", time.Duration(i)*time.Second)
	}
	if err := e.Emit(StatsSnapshot{}, StatsSnapshot{Objects: 250}); err != nil {
		t.Fatal(err)
	}
	docs := checkEMF(t, buf.String(), at)
	if len(docs) != 3 {
		t.Fatalf("%d lines, want 3", len(docs))
	}
	var all []float64
	for i, d := range docs {
		for _, v := range d["Lag"].([]any) {
			all = append(all, num(t, v))
		}
		if _, counts := d["Objects"]; counts != (i == 0) {
			t.Errorf("line %d: counts on it %v, want only on the first", i, counts)
		}
		if d["FunctionName"] != "handover-logs" {
			t.Errorf("default FunctionName %v", d["FunctionName"])
		}
	}
	if len(all) != 250 || all[0] != 0 || all[249] != 249 {
		t.Errorf("%d lags, first %v last %v", len(all), all[0], all[len(all)-1])
	}
}
