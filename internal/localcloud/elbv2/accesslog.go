package elbv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Access logs in ALB's format: one line per request, buffered per load
// balancer and destination, written every LogFlushInterval as one gzip
// object named as ELB names them:
//
//	[prefix/]AWSLogs/ACCOUNT/elasticloadbalancing/REGION/yyyy/mm/dd/
//	    ACCOUNT_elasticloadbalancing_REGION_app.NAME.ID_yyyymmddThhmmZ_IP_RANDOM.log.gz
//
// The fields of a line, space-separated, quoted where ALB quotes them:
//
//	type time elb client:port target:port request_processing_time
//	target_processing_time response_processing_time elb_status_code
//	target_status_code received_bytes sent_bytes "request" "user_agent"
//	ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
//	"chosen_cert_arn" matched_rule_priority request_creation_time
//	"actions_executed" "redirect_url" "error_reason" "target:port_list"
//	"target_status_code_list" "classification" "classification_reason"
//	conn_trace_id
//
// Inside quotes, a double quote or backslash is escaped with a backslash
// and control or non-ASCII bytes as \xHH, so a line always splits
// unambiguously.

// maxPendingLines bounds what a destination that keeps failing can hold.
const maxPendingLines = 100_000

// logDest is where a batch of lines goes.
type logDest struct {
	bucket, prefix string
	lbName, lbID   string
	nodeIP         string
}

type logBuffer struct {
	mu      sync.Mutex
	pending map[logDest][]string
}

func newLogBuffer() *logBuffer { return &logBuffer{pending: map[logDest][]string{}} }

func (b *logBuffer) add(d logDest, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.pending[d]
	if len(lines) >= maxPendingLines {
		lines = lines[1:] // drop the oldest rather than grow without bound
	}
	b.pending[d] = append(lines, line)
}

func (b *logBuffer) take() map[logDest][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.pending
	b.pending = map[logDest][]string{}
	return out
}

// putBack returns lines that could not be written, ahead of newer ones.
func (b *logBuffer) putBack(d logDest, lines []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	all := append(lines, b.pending[d]...)
	if len(all) > maxPendingLines {
		all = all[len(all)-maxPendingLines:]
	}
	b.pending[d] = all
}

func (s *Service) flusher(ctx context.Context) {
	defer s.loops.Done()
	tick := time.NewTicker(s.cfg.LogFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.FlushLogs(ctx); err != nil {
				s.log.Warn("writing access logs", "error", err)
			}
		}
	}
}

// FlushLogs writes every buffered access-log line now, one object per load
// balancer and destination. Lines whose object could not be written stay
// buffered for the next flush. It is safe to call at any time.
func (s *Service) FlushLogs(ctx context.Context) error {
	if s.cfg.Logs == nil {
		return nil
	}
	var errs []error
	for d, lines := range s.logs.take() {
		if len(lines) == 0 {
			continue
		}
		key := s.logKey(d, s.clk.Now())
		body, err := gzipLines(lines)
		if err == nil {
			err = s.cfg.Logs.PutObject(ctx, d.bucket, key, body)
		}
		if err != nil {
			s.logs.putBack(d, lines)
			errs = append(errs, fmt.Errorf("writing s3://%s/%s: %w", d.bucket, key, err))
			continue
		}
		s.log.Debug("access log written", "bucket", d.bucket, "key", key, "lines", len(lines))
	}
	return errors.Join(errs...)
}

func gzipLines(lines []string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range lines {
		if _, err := zw.Write([]byte(l + "\n")); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// logKey names a log object delivered at now. Its end time is the end of
// the minute the interval ended in, so every entry is older than it.
func (s *Service) logKey(d logDest, now time.Time) string {
	now = now.UTC()
	end := now.Truncate(time.Minute)
	if end.Before(now) {
		end = end.Add(time.Minute)
	}
	name := fmt.Sprintf("%s_elasticloadbalancing_%s_app.%s.%s_%s_%s_%s.log.gz",
		s.cfg.AccountID, s.cfg.Region, d.lbName, d.lbID, end.Format("20060102T1504Z"), d.nodeIP, randomSuffix())
	key := path.Join("AWSLogs", s.cfg.AccountID, "elasticloadbalancing", s.cfg.Region, now.Format("2006/01/02"), name)
	if p := strings.Trim(d.prefix, "/"); p != "" {
		key = p + "/" + key
	}
	return key
}

func randomSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [8]byte
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return string(b[:])
}

// checkLogBucket writes the test object ELB writes when access logs are
// turned on, so a missing bucket is refused then rather than lost later.
func (s *Service) checkLogBucket(ctx context.Context, bucket, prefix string) error {
	if s.cfg.Logs == nil {
		return errInvalidConfiguration("Access logs are not available: this local cloud runs without S3")
	}
	if bucket == "" {
		return errValidation("The value of '%s' cannot be empty when access logs are enabled", attrAccessLogsBucket)
	}
	key := path.Join("AWSLogs", s.cfg.AccountID, "ELBAccessLogTestFile")
	if p := strings.Trim(prefix, "/"); p != "" {
		key = p + "/" + key
	}
	if err := s.cfg.Logs.PutObject(ctx, bucket, key, []byte("Enable AccessLog for ELB: "+s.clk.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
		return errInvalidConfiguration("Access Denied for bucket: %s. Please check S3bucket permission (%v)", bucket, err)
	}
	return nil
}

// logEntry is what one line is made of.
type logEntry struct {
	r             *http.Request
	ex            *exchange
	elbID         string
	tgARN         string
	listenerPort  int
	elbStatus     int
	receivedBytes int64
	sentBytes     int64
	done          time.Time
	connTraceID   string
}

const logTime = "2006-01-02T15:04:05.000000Z"

func formatLogLine(e logEntry) string {
	ex := e.ex
	reqProc, targetProc, respProc := "-1", "-1", "-1"
	target, targetStatus, tgARN := "-", "-", "-"
	if ex.targetAddr != "" {
		target, tgARN = ex.targetAddr, e.tgARN
		if !ex.sent.IsZero() {
			reqProc = seconds(ex.sent.Sub(ex.received))
		}
		if ex.targetStatus != 0 {
			targetStatus = strconv.Itoa(ex.targetStatus)
			targetProc = seconds(ex.answered.Sub(ex.sent))
			respProc = seconds(e.done.Sub(ex.answered))
		}
	}
	host := e.r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	request := fmt.Sprintf("%s http://%s:%d%s %s", e.r.Method, host, e.listenerPort, e.r.URL.RequestURI(), e.r.Proto)
	ua := e.r.UserAgent()
	if ua == "" {
		ua = "-"
	}
	connID := e.connTraceID
	if connID == "" {
		connID = "-"
	}
	fields := []string{
		"http",
		e.done.UTC().Format(logTime),
		e.elbID,
		orDash(e.r.RemoteAddr),
		target,
		reqProc, targetProc, respProc,
		strconv.Itoa(e.elbStatus),
		targetStatus,
		strconv.FormatInt(e.receivedBytes, 10),
		strconv.FormatInt(e.sentBytes, 10),
		quote(request),
		quote(ua),
		"-", "-", // ssl_cipher, ssl_protocol: HTTP listeners only
		tgARN,
		quote(traceRoot(ex.traceID)),
		quote("-"), quote("-"), // domain_name, chosen_cert_arn
		"0", // matched_rule_priority: the default rule
		ex.received.UTC().Format(logTime),
		quote("forward"),
		quote("-"), quote("-"), // redirect_url, error_reason
		quote(target),
		quote(targetStatus),
		quote("-"), quote("-"), // classification, classification_reason: RFC 7230 compliant
		connID,
	}
	return strings.Join(fields, " ")
}

// traceRoot is the trace_id field: the X-Amzn-Trace-Id as forwarded.
func traceRoot(id string) string {
	if id == "" {
		return "-"
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func seconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// quote wraps s in double quotes, escaping what would break the line.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
