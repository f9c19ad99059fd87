package logs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics, on a registry of their
// own (no globals), as the controller's (internal/daemon). The totals are
// read from Pipeline.Stats at each scrape; Metrics is the Observer of what
// the totals cannot say (dead letters by cause, lag).
type Metrics struct {
	Registry *prometheus.Registry

	dead *prometheus.CounterVec
	lag  *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics returns the metrics; Register adds a pipeline's totals.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handover_logs_dead_letters_total", Help: "Lines, objects and messages sent to the dead letters, by cause.",
		}, []string{"cause"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "handover_logs_lag_seconds", Help: "From S3's event time of a log object to its last line indexed, by format.",
			Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600},
		}, []string{"format"}),
	}
	// Every cause from the start, so a rate() of zero is a zero, not a gap.
	for _, c := range []string{CauseUnparseable, CauseLineTooLong, CauseRefused, CauseNotELB, CauseMissing, CauseBinary, CauseCorrupt, CauseNotNotification} {
		m.dead.WithLabelValues(c)
	}
	m.Registry.MustRegister(m.dead, m.lag, prometheus.NewGoCollector())
	return m
}

// Register adds the totals of p; call it once per pipeline.
func (m *Metrics) Register(p *Pipeline) {
	for _, c := range []struct {
		name, help string
		v          interface{ Load() int64 }
	}{
		{"handover_logs_lines_total", "Log lines parsed and sent to the store (rate() is lines/s).", &p.Stats.Lines},
		{"handover_logs_bytes_total", "Bytes of the log lines parsed.", &p.Stats.Bytes},
		{"handover_logs_indexed_total", "Documents the store created.", &p.Stats.Indexed},
		{"handover_logs_duplicates_total", "Documents the store already had (409 on create): redeliveries.", &p.Stats.Duplicates},
		{"handover_logs_retries_total", "Bulk items sent again after a 429 or 5xx.", &p.Stats.Retries},
		{"handover_logs_objects_total", "Log objects read.", &p.Stats.Objects},
		{"handover_logs_skipped_objects_total", "Objects recognised and skipped (ELB's test file, connection logs).", &p.Stats.Skipped},
	} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v.Load()) }))
	}
}

// DeadLettered implements Observer.
func (m *Metrics) DeadLettered(cause string, n int) { m.dead.WithLabelValues(cause).Add(float64(n)) }

// ObjectIndexed implements Observer.
func (m *Metrics) ObjectIndexed(format string, lag time.Duration) {
	if lag >= 0 {
		m.lag.WithLabelValues(format).Observe(lag.Seconds())
	}
}
