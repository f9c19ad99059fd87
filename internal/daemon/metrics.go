package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// Metrics are the controller's Prometheus metrics, on a registry of their
// own (no globals). They implement handover.Observer.
type Metrics struct {
	Registry *prometheus.Registry

	steps     *prometheus.HistogramVec
	calls     *prometheus.CounterVec
	messages  *prometheus.CounterVec
	queueLag  prometheus.Histogram
	reconcile *prometheus.CounterVec
	sweptVols prometheus.Counter
	sweptSnap prometheus.Counter
}

var _ handover.Observer = (*Metrics)(nil)

// NewMetrics registers the metrics; migrations by state are read from led
// at each scrape, so every controller sharing a ledger reports the same.
func NewMetrics(led ledger.Ledger, clk clock.Clock) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "handover_step_duration_seconds", Help: "Time migrations spent in each state of the handover protocol.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600},
		}, []string{"state"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handover_cloud_calls_total", Help: "Cloud API calls by pacing family and outcome (ok, throttled, error).",
		}, []string{"family", "outcome"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handover_queue_messages_total", Help: "Events-queue messages by outcome (handled, poison, retry, receive-error).",
		}, []string{"outcome"}),
		queueLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "handover_queue_lag_seconds", Help: "Age of each events-queue message when the controller received it.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "handover_reconcile_runs_total", Help: "Reconcile passes by outcome (ok, error).",
		}, []string{"outcome"}),
		sweptVols: prometheus.NewCounter(prometheus.CounterOpts{Name: "handover_swept_volumes_total", Help: "Volumes the sweeper deleted."}),
		sweptSnap: prometheus.NewCounter(prometheus.CounterOpts{Name: "handover_swept_snapshots_total", Help: "Snapshots the sweeper deleted."}),
	}
	m.Registry.MustRegister(m.steps, m.calls, m.messages, m.queueLag, m.reconcile, m.sweptVols, m.sweptSnap,
		&migrationsCollector{led: led}, prometheus.NewGoCollector())
	return m
}

// StepEnded implements handover.Observer.
func (m *Metrics) StepEnded(state ledger.State, d time.Duration) {
	m.steps.WithLabelValues(state.String()).Observe(d.Seconds())
}

// CloudCall implements handover.Observer.
func (m *Metrics) CloudCall(f pacing.Family, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, handover.ErrThrottled):
		outcome = "throttled"
	case err != nil:
		outcome = "error"
	}
	m.calls.WithLabelValues(string(f), outcome).Inc()
}

func (m *Metrics) message(outcome string) { m.messages.WithLabelValues(outcome).Inc() }
func (m *Metrics) lag(seconds float64)    { m.queueLag.Observe(seconds) }
func (m *Metrics) reconciled(err error) {
	if err != nil {
		m.reconcile.WithLabelValues("error").Inc()
		return
	}
	m.reconcile.WithLabelValues("ok").Inc()
}
func (m *Metrics) swept(vols, snaps int) {
	m.sweptVols.Add(float64(vols))
	m.sweptSnap.Add(float64(snaps))
}

// migrationsCollector reports handover_migrations{state} from the ledger.
type migrationsCollector struct{ led ledger.Ledger }

var migrationsDesc = prometheus.NewDesc("handover_migrations", "Migrations in the ledger by state.", []string{"state"}, nil)

func (c *migrationsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- migrationsDesc }

func (c *migrationsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(migrationsDesc, err)
		return
	}
	counts := map[ledger.State]int{}
	for _, m := range ms {
		counts[m.State]++
	}
	for _, s := range ledger.States() {
		ch <- prometheus.MustNewConstMetric(migrationsDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}
