package logs

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/handover-dev/handover/internal/clock"
)

// The metrics move with the pipeline: lines, retries, dead letters by
// cause, and the lag from the event time on the injected clock.
func TestMetricsMove(t *testing.T) {
	lines := bytes.SplitAfter(albLines(3), []byte("\n"))
	body := bytes.Join([][]byte{lines[0], []byte("not a log line\n"), lines[1], lines[2]}, nil)
	store := memStore{"b/" + albKey: gz(body)}
	clk := clock.NewFake(time.Date(2025, 8, 14, 22, 30, 0, 0, time.UTC))
	m := NewMetrics()
	p, idx, _ := newTest(store, Config{Observer: m, Clock: clk})
	m.Register(p)
	idx.Reject = func(call, item int, _ string) int {
		if call == 1 && item == 0 {
			return 429
		}
		return 0
	}
	created := clk.Now().Add(-90 * time.Second)
	if _, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey, EventTime: created}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.indexMessage(context.Background(), "not json", "m-1", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"lines", counter(t, m, "handover_logs_lines_total"), 3},
		{"indexed", counter(t, m, "handover_logs_indexed_total"), 3},
		{"retries", counter(t, m, "handover_logs_retries_total"), 1},
		{"unparseable", testutil.ToFloat64(m.dead.WithLabelValues(CauseUnparseable)), 1},
		{"not a notification", testutil.ToFloat64(m.dead.WithLabelValues(CauseNotNotification)), 1},
		{"refused", testutil.ToFloat64(m.dead.WithLabelValues(CauseRefused)), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "handover_logs_lag_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 90 {
				t.Errorf("lag: %d samples summing %vs, want one of 90s", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Error("no lag histogram")
}

func counter(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
