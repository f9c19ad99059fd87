package logs

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// EMF reports the pipeline's work in a Lambda invocation as CloudWatch
// Embedded Metric Format lines (one JSON object per line on W, which
// CloudWatch Logs turns into metrics): a function cannot be scraped like
// the daemon's /metrics. It is the pipeline's Observer (lags, dead letters
// by cause); Emit writes what happened between two Stats snapshots.
type EMF struct {
	W io.Writer
	// Namespace of the metrics (default "handover/logs").
	Namespace string
	// Function is the FunctionName dimension's value (AWS_LAMBDA_FUNCTION_NAME).
	Function string
	Clock    clock.Clock

	mu   sync.Mutex
	lags []float64
	dead map[string]int
}

var _ Observer = (*EMF)(nil)

// emfMaxValues is the most values EMF takes for one metric in one line.
const emfMaxValues = 100

// DeadLettered implements Observer.
func (e *EMF) DeadLettered(cause string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead == nil {
		e.dead = map[string]int{}
	}
	e.dead[cause] += n
}

// ObjectIndexed implements Observer.
func (e *EMF) ObjectIndexed(_ string, lag time.Duration) {
	if lag < 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lags = append(e.lags, lag.Seconds())
}

// StatsSnapshot is Stats read at one moment.
type StatsSnapshot struct {
	Objects, Skipped, Lines, Bytes, Indexed, Duplicates, DeadLettered, Retries int64
}

// Snapshot reads every total.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{Objects: s.Objects.Load(), Skipped: s.Skipped.Load(), Lines: s.Lines.Load(), Bytes: s.Bytes.Load(),
		Indexed: s.Indexed.Load(), Duplicates: s.Duplicates.Load(), DeadLettered: s.DeadLettered.Load(), Retries: s.Retries.Load()}
}

// emfCounters are the counts each line carries, by metric name.
func emfCounters(before, after StatsSnapshot) []struct {
	name string
	v    int64
} {
	return []struct {
		name string
		v    int64
	}{
		{"Objects", after.Objects - before.Objects},
		{"Lines", after.Lines - before.Lines},
		{"Indexed", after.Indexed - before.Indexed},
		{"Duplicates", after.Duplicates - before.Duplicates},
		{"Retries", after.Retries - before.Retries},
		{"DeadLetters", after.DeadLettered - before.DeadLettered},
	}
}

// Emit writes the invocation's line: the counts between before and after,
// the lag of every object finished since the last Emit (seconds from S3's
// event time; more than 100 go on further lines of their own) and the dead
// letters by cause (a plain member: not a metric). Safe to call once per
// invocation; it resets what the Observer gathered.
func (e *EMF) Emit(before, after StatsSnapshot) error {
	e.mu.Lock()
	lags, dead := e.lags, e.dead
	e.lags, e.dead = nil, nil
	e.mu.Unlock()
	ns, fn := e.Namespace, e.Function
	if ns == "" {
		ns = "handover/logs"
	}
	if fn == "" {
		fn = "handover-logs"
	}
	clk := e.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	now := clk.Now().UnixMilli()
	line := func(metrics []map[string]string, members map[string]any) error {
		doc := map[string]any{
			"_aws": map[string]any{
				"Timestamp": now,
				"CloudWatchMetrics": []any{map[string]any{
					"Namespace": ns, "Dimensions": [][]string{{"FunctionName"}}, "Metrics": metrics,
				}},
			},
			"FunctionName": fn,
		}
		maps.Copy(doc, members)
		b, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encoding the invocation's metrics: %w", err)
		}
		if _, err := e.W.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("writing the invocation's metrics: %w", err)
		}
		return nil
	}
	var metrics []map[string]string
	members := map[string]any{}
	for _, c := range emfCounters(before, after) {
		metrics = append(metrics, map[string]string{"Name": c.name, "Unit": "Count"})
		members[c.name] = c.v
	}
	if len(dead) > 0 {
		members["DeadLettersByCause"] = dead
	}
	lag := map[string]string{"Name": "Lag", "Unit": "Seconds"}
	first := lags[:min(len(lags), emfMaxValues)]
	if len(first) > 0 {
		metrics = append(metrics, lag)
		members["Lag"] = first
	}
	if err := line(metrics, members); err != nil {
		return err
	}
	for rest := lags[len(first):]; len(rest) > 0; {
		n := min(len(rest), emfMaxValues)
		if err := line([]map[string]string{lag}, map[string]any{"Lag": rest[:n]}); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}
