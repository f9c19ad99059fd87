package daemon

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/logs"
)

// pipelineMetrics serves what `handover logs run --metrics-addr` serves,
// from the pipeline's own Metrics.
func pipelineMetrics(t *testing.T) (*logs.Pipeline, *logs.Metrics, *httptest.Server) {
	t.Helper()
	p := logs.New(logs.Config{}, nil, nil, nil)
	m := logs.NewMetrics()
	m.Register(p)
	srv := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return p, m, srv
}

func TestParseLogMetrics(t *testing.T) {
	p, m, srv := pipelineMetrics(t)
	p.Stats.Lines.Add(1200)
	p.Stats.Indexed.Add(1190)
	p.Stats.Duplicates.Add(10)
	p.Stats.Retries.Add(3)
	p.Stats.Objects.Add(4)
	m.DeadLettered(logs.CauseUnparseable, 2)
	m.DeadLettered(logs.CauseRefused, 1)
	m.ObjectIndexed("alb", 2*time.Second)
	m.ObjectIndexed("nlb", 4*time.Second)
	s, err := scrapeLogs(t.Context(), srv.Client(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if s.Lines != 1200 || s.Indexed != 1190 || s.Duplicates != 10 || s.Retries != 3 || s.Objects != 4 || s.DeadLetters != 3 {
		t.Errorf("sample %+v", s)
	}
	if s.DeadLettersByCause[logs.CauseUnparseable] != 2 || s.DeadLettersByCause[logs.CauseRefused] != 1 || s.DeadLettersByCause[logs.CauseMissing] != 0 {
		t.Errorf("by cause %v", s.DeadLettersByCause)
	}
	if s.LagSum != 6 || s.LagCount != 2 {
		t.Errorf("lag sum %v count %v, want 6 and 2", s.LagSum, s.LagCount)
	}
	if _, err := ParseLogMetrics(strings.NewReader("handover_logs_lines_total{ 12\n")); err == nil {
		t.Error("garbage parsed")
	}
}

func FuzzParseLogMetrics(f *testing.F) {
	f.Add("# TYPE handover_logs_lines_total counter\nhandover_logs_lines_total 12\n")
	f.Add("handover_logs_dead_letters_total{cause=\"x\"} 3\nhandover_logs_lag_seconds_sum 4\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = ParseLogMetrics(strings.NewReader(in)) // must not panic
	})
}

// TestServeLogs: /v1/logs carries the samples the watch took and the
// newest dead letters, newest first, without taking them off the queue.
func TestServeLogs(t *testing.T) {
	p, _, srv := pipelineMetrics(t)
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	q := &fakeQueue{}
	for i, l := range []logs.DeadLetter{
		{Bucket: "b", Key: "k1", Offset: 10, Cause: logs.CauseUnparseable, Reason: "older"},
		{Bucket: "b", Key: "k2", Offset: 20, Cause: logs.CauseRefused, Reason: "newer"},
	} {
		body, _ := json.Marshal(l)
		q.pending = append(q.pending, sqstypes.Message{Body: aws.String(string(body)),
			Attributes: map[string]string{"SentTimestamp": []string{"1765098000000", "1765098060000"}[i]}})
	}
	cfg := DefaultConfig()
	cfg.QueueURL = "events"
	d, err := New(cfg, &fakeEngine{}, q, memory.New(), clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WithLogs(LogsConfig{MetricsURL: "ftp://x"}); err == nil {
		t.Error("an ftp metrics URL was taken")
	}
	if err := d.WithLogs(LogsConfig{MetricsURL: srv.URL + "/metrics", DeadLetterURL: "logs-dlq", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p.Stats.Lines.Add(50)
	ctx, cancel := context.WithCancel(t.Context())
	go d.watchLogs(ctx)
	h := d.Handler("")
	var out api.Logs
	deadline := time.Now().Add(10 * time.Second)
	for len(out.Samples) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		getJSON(t, h, api.PathLogs, 200, &out)
	}
	cancel()
	if !out.Configured || len(out.Samples) != 1 || out.Samples[0].Lines != 50 || !out.Samples[0].At.Equal(now) {
		t.Fatalf("logs %+v", out)
	}
	if len(out.RecentDeadLetters) != 2 || out.RecentDeadLetters[0].Reason != "newer" || out.RecentDeadLetters[1].Key != "k1" || out.RecentDeadLetters[1].Offset != 10 {
		t.Errorf("recent dead letters %+v", out.RecentDeadLetters)
	}
	if out.DeadLetterQueue == nil || out.DeadLetterQueue.URL != "logs-dlq" {
		t.Errorf("dead-letter queue %+v", out.DeadLetterQueue)
	}

	// Without --logs-*: configured false, and nothing read.
	d2, _ := New(cfg, &fakeEngine{}, &fakeQueue{}, memory.New(), clock.NewFake(now), nil, nil)
	var none api.Logs
	getJSON(t, d2.Handler(""), api.PathLogs, 200, &none)
	if none.Configured || none.Samples == nil {
		t.Errorf("unconfigured logs %+v", none)
	}
}
