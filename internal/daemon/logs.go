package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/handover-dev/handover/internal/api"
)

// LogsConfig points the controller at an access-log pipeline (`handover
// logs run --metrics-addr`) so that GET /v1/logs, and the dashboard, show
// it. Either URL may be empty.
type LogsConfig struct {
	// MetricsURL is the pipeline's Prometheus endpoint
	// (http://HOST:PORT/metrics), read every Every.
	MetricsURL string
	// DeadLetterURL is the pipeline's dead-letter queue.
	DeadLetterURL string
	Every         time.Duration
	// HTTP reads the metrics (default: a client with a 5 s timeout).
	HTTP *http.Client
}

// logHistory is how many readings /v1/logs keeps: half an hour at 5 s.
const logHistory = 360

// deadLetterPeekAge bounds how often /v1/logs looks at the dead letters.
const deadLetterPeekAge = 10 * time.Second

type logWatch struct {
	cfg LogsConfig

	mu      sync.Mutex
	samples []api.LogSample
	err     string
	peekAt  time.Time
	peek    []api.LogDeadLetter
	depth   *api.QueueDepth
	peekErr string
}

// WithLogs makes the daemon read the log pipeline's metrics and serve
// them, with its dead letters, at /v1/logs. Call it before Run and
// Handler.
func (d *Daemon) WithLogs(cfg LogsConfig) error {
	if cfg.MetricsURL == "" && cfg.DeadLetterURL == "" {
		return nil
	}
	if cfg.MetricsURL != "" {
		if u, err := url.Parse(cfg.MetricsURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("the log pipeline's metrics URL %q is not an http(s) URL such as http://127.0.0.1:9108/metrics (handover logs run --metrics-addr)", cfg.MetricsURL)
		}
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	d.logs = &logWatch{cfg: cfg}
	return nil
}

// watchLogs reads the pipeline's metrics every interval until ctx ends.
func (d *Daemon) watchLogs(ctx context.Context) {
	if d.logs == nil || d.logs.cfg.MetricsURL == "" {
		return
	}
	d.every(ctx, d.logs.cfg.Every, func(ctx context.Context) {
		s, err := scrapeLogs(ctx, d.logs.cfg.HTTP, d.logs.cfg.MetricsURL)
		w := d.logs
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				w.err = err.Error()
			}
			return
		}
		s.At = d.clk.Now()
		w.err = ""
		w.samples = append(w.samples, s)
		if len(w.samples) > logHistory {
			w.samples = slices.Delete(w.samples, 0, len(w.samples)-logHistory)
		}
	})
}

// scrapeLogs reads one sample of the pipeline's counters.
func scrapeLogs(ctx context.Context, hc *http.Client, url string) (api.LogSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return api.LogSample{}, fmt.Errorf("the log pipeline's metrics URL %q: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return api.LogSample{}, fmt.Errorf("reading the log pipeline's metrics at %s (is handover logs run --metrics-addr serving there?): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.LogSample{}, fmt.Errorf("reading the log pipeline's metrics at %s: %s", url, resp.Status)
	}
	return ParseLogMetrics(io.LimitReader(resp.Body, 8<<20))
}

// ParseLogMetrics reads the pipeline's counters from Prometheus' text
// format; a counter that is absent reads 0.
func ParseLogMetrics(r io.Reader) (api.LogSample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return api.LogSample{}, fmt.Errorf("parsing the log pipeline's metrics: %w", err)
	}
	total := func(name string) float64 {
		var v float64
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				v += value(m)
			}
		}
		return v
	}
	s := api.LogSample{
		Lines: total("handover_logs_lines_total"), Bytes: total("handover_logs_bytes_total"),
		Indexed: total("handover_logs_indexed_total"), Duplicates: total("handover_logs_duplicates_total"),
		Retries: total("handover_logs_retries_total"), Objects: total("handover_logs_objects_total"),
		DeadLetters: total("handover_logs_dead_letters_total"),
	}
	if f := fams["handover_logs_dead_letters_total"]; f != nil {
		s.DeadLettersByCause = map[string]float64{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" {
					s.DeadLettersByCause[l.GetValue()] += value(m)
				}
			}
		}
	}
	if f := fams["handover_logs_lag_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			s.LagSum += m.GetHistogram().GetSampleSum()
			s.LagCount += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// peekDeadLetters reads the pipeline's dead-letter queue's depth and
// looks at up to ten of its messages without taking them (visibility
// timeout 0), at most every deadLetterPeekAge.
func (d *Daemon) peekDeadLetters(ctx context.Context) (*api.QueueDepth, []api.LogDeadLetter, string) {
	w := d.logs
	now := d.clk.Now()
	w.mu.Lock()
	if !w.peekAt.IsZero() && now.Sub(w.peekAt) < deadLetterPeekAge {
		defer w.mu.Unlock()
		return w.depth, w.peek, w.peekErr
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	depth := d.depth(ctx, w.cfg.DeadLetterURL)
	peek, errText := []api.LogDeadLetter{}, ""
	out, err := d.queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.cfg.DeadLetterURL),
		MaxNumberOfMessages: 10, VisibilityTimeout: 0, WaitTimeSeconds: 0,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSentTimestamp}})
	if err != nil {
		errText = fmt.Sprintf("looking at the dead letters in %s: %v", w.cfg.DeadLetterURL, err)
	} else {
		for _, m := range out.Messages {
			peek = append(peek, deadLetterOf(m))
		}
		slices.SortFunc(peek, func(a, b api.LogDeadLetter) int { return b.SentAt.Compare(a.SentAt) })
		if len(peek) > 5 {
			peek = peek[:5]
		}
	}
	w.mu.Lock()
	w.peekAt, w.depth, w.peek, w.peekErr = now, depth, peek, errText
	w.mu.Unlock()
	return depth, peek, errText
}

// deadLetterOf reads a dead letter the pipeline sent (logs.DeadLetter as
// JSON); another body is shown as its reason.
func deadLetterOf(m sqstypes.Message) api.LogDeadLetter {
	var l api.LogDeadLetter
	var body struct {
		Bucket, Key, Cause, Reason string
		Offset                     int64
	}
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &body); err == nil && (body.Reason != "" || body.Cause != "") {
		l = api.LogDeadLetter{Cause: body.Cause, Reason: body.Reason, Bucket: body.Bucket, Key: body.Key, Offset: body.Offset}
	} else {
		b := aws.ToString(m.Body)
		if len(b) > 300 {
			b = b[:300] + "…"
		}
		l = api.LogDeadLetter{Reason: b, Offset: -1}
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		l.SentAt = time.UnixMilli(ms).UTC()
	}
	return l
}

func (d *Daemon) serveLogs(w http.ResponseWriter, r *http.Request) {
	out := api.Logs{Samples: []api.LogSample{}, RecentDeadLetters: []api.LogDeadLetter{}}
	if d.logs == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	out.Configured, out.MetricsURL = true, d.logs.cfg.MetricsURL
	d.logs.mu.Lock()
	out.Samples = append(out.Samples, d.logs.samples...)
	out.Error = d.logs.err
	d.logs.mu.Unlock()
	if d.logs.cfg.DeadLetterURL != "" {
		out.DeadLetterQueue, out.RecentDeadLetters, out.DeadLetterError = d.peekDeadLetters(r.Context())
	}
	writeJSON(w, http.StatusOK, out)
}
