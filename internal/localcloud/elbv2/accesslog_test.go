package elbv2

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/handover-dev/handover/internal/clock"
)

// albFields names the fields of an ALB access log line, in order, as the
// "Access logs for your Application Load Balancer" page lists them.
var albFields = []string{
	"type", "time", "elb", "client:port", "target:port",
	"request_processing_time", "target_processing_time", "response_processing_time",
	"elb_status_code", "target_status_code", "received_bytes", "sent_bytes",
	"request", "user_agent", "ssl_cipher", "ssl_protocol", "target_group_arn",
	"trace_id", "domain_name", "chosen_cert_arn", "matched_rule_priority",
	"request_creation_time", "actions_executed", "redirect_url", "error_reason",
	"target:port_list", "target_status_code_list", "classification",
	"classification_reason", "conn_trace_id",
}

// splitLogLine is the test's own reader of the format: space-separated
// tokens, double-quoted ones with \" \\ and \xHH escapes.
func splitLogLine(line string) ([]string, error) {
	var out []string
	i := 0
	for i < len(line) {
		if line[i] == ' ' {
			if i == 0 || i == len(line)-1 || line[i+1] == ' ' {
				return nil, fmt.Errorf("stray space at %d", i)
			}
			i++
			continue
		}
		if line[i] != '"' {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			tok := line[i : i+j]
			if strings.ContainsRune(tok, '"') {
				return nil, fmt.Errorf("quote inside unquoted field %q", tok)
			}
			out = append(out, tok)
			i += j
			continue
		}
		var b strings.Builder
		i++
		for {
			if i >= len(line) {
				return nil, errors.New("unterminated quoted field")
			}
			c := line[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				if i+1 >= len(line) {
					return nil, errors.New("dangling backslash")
				}
				switch line[i+1] {
				case '"', '\\':
					b.WriteByte(line[i+1])
					i += 2
				case 'x':
					if i+4 > len(line) {
						return nil, errors.New("short \\x escape")
					}
					n, err := strconv.ParseUint(line[i+2:i+4], 16, 8)
					if err != nil {
						return nil, fmt.Errorf("bad \\x escape: %w", err)
					}
					b.WriteByte(byte(n))
					i += 4
				default:
					return nil, fmt.Errorf("unknown escape \\%c", line[i+1])
				}
				continue
			}
			b.WriteByte(c)
			i++
		}
		if i < len(line) && line[i] != ' ' {
			return nil, errors.New("quoted field not followed by a space")
		}
		out = append(out, b.String())
	}
	return out, nil
}

// parseLogLine maps a line onto albFields.
func parseLogLine(line string) (map[string]string, error) {
	toks, err := splitLogLine(line)
	if err != nil {
		return nil, err
	}
	if len(toks) != len(albFields) {
		return nil, fmt.Errorf("%d fields, want %d", len(toks), len(albFields))
	}
	m := make(map[string]string, len(toks))
	for i, f := range albFields {
		m[f] = toks[i]
	}
	return m, nil
}

var keyRE = regexp.MustCompile(`^my/prefix/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/03/05/123456789012_elasticloadbalancing_us-east-1_app\.logged\.([0-9a-f]{16})_20240305T1204Z_127\.0\.0\.1_[a-z0-9]{8}\.log\.gz$`)

func TestAccessLogs(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Date(2024, 3, 5, 12, 3, 30, 0, time.UTC))
	e := newEnv(t, withClock(fc))
	ctx := context.Background()
	st := e.newStack(t, "logged")
	b := newBackend(t, e.inst, "i-logged")
	e.register(t, st.tgARN, b)
	e.waitState(t, st.tgARN, "i-logged", stateHealthy)

	// Nothing is logged while access logs are off.
	get(t, st.url+"/before")
	if _, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN),
		Attributes: []types.LoadBalancerAttribute{
			{Key: aws.String(attrAccessLogsEnabled), Value: aws.String("true")},
			{Key: aws.String(attrAccessLogsBucket), Value: aws.String("logs")},
			{Key: aws.String(attrAccessLogsPrefix), Value: aws.String("my/prefix")},
		}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.s3.Objects("logs")["my/prefix/AWSLogs/123456789012/ELBAccessLogTestFile"]; !ok {
		t.Errorf("no test file written when access logs were enabled")
	}

	weirdUA := `curl/8 "quoted" \back é`
	req, _ := http.NewRequest(http.MethodPost, st.url+"/items?id=7", strings.NewReader("hello"))
	req.Header.Set("User-Agent", weirdUA)
	req.Header.Set("X-Amzn-Trace-Id", "Root=1-65e70a00-000000000000000000000001")
	resp, err := lbClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	get(t, st.url+"/second")

	// A request nobody can serve is logged too, with the ELB's own status.
	b.healthy.Store(false)
	e.waitState(t, st.tgARN, "i-logged", stateUnhealthy)
	if code, _ := get(t, st.url+"/third"); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}

	if err := e.svc.FlushLogs(ctx); err != nil {
		t.Fatal(err)
	}
	var key string
	var body []byte
	for k, v := range e.s3.Objects("logs") {
		if strings.HasSuffix(k, ".log.gz") {
			if key != "" {
				t.Fatalf("two log objects: %s and %s", key, k)
			}
			key, body = k, v
		}
	}
	m := keyRE.FindStringSubmatch(key)
	if m == nil {
		t.Fatalf("log object key %q does not follow AWS's layout", key)
	}
	if !strings.HasSuffix(st.lbARN, "/"+m[1]) {
		t.Errorf("key names load balancer id %s, ARN is %s", m[1], st.lbARN)
	}
	lines := gunzipLines(t, body)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var parsed []map[string]string
	for _, l := range lines {
		f, err := parseLogLine(l)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		parsed = append(parsed, f)
	}
	first, third := parsed[0], parsed[2]
	target := b.srv.Listener.Addr().String()
	port := strings.TrimPrefix(st.url, "http://127.0.0.1:")
	want := map[string]string{
		"type": "http", "time": "2024-03-05T12:03:30.000000Z", "elb": "app/logged/" + m[1],
		"target:port": target, "request_processing_time": "0.000", "target_processing_time": "0.000", "response_processing_time": "0.000",
		"elb_status_code": "200", "target_status_code": "200",
		"request": "POST http://127.0.0.1:" + port + "/items?id=7 HTTP/1.1", "user_agent": weirdUA,
		"ssl_cipher": "-", "ssl_protocol": "-", "target_group_arn": st.tgARN, "domain_name": "-", "chosen_cert_arn": "-",
		"matched_rule_priority": "0", "request_creation_time": "2024-03-05T12:03:30.000000Z", "actions_executed": "forward",
		"redirect_url": "-", "error_reason": "-", "target:port_list": target, "target_status_code_list": "200",
		"classification": "-", "classification_reason": "-",
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("first line %s = %q, want %q", k, first[k], v)
		}
	}
	if !strings.HasPrefix(first["client:port"], "127.0.0.1:") {
		t.Errorf("client:port %q", first["client:port"])
	}
	if !strings.HasPrefix(first["trace_id"], "Self=1-") || !strings.HasSuffix(first["trace_id"], ";Root=1-65e70a00-000000000000000000000001") {
		t.Errorf("trace_id %q does not keep the client's Root", first["trace_id"])
	}
	if n, err := strconv.Atoi(first["received_bytes"]); err != nil || n < len("hello")+len("POST /items?id=7 HTTP/1.1") {
		t.Errorf("received_bytes %q", first["received_bytes"])
	}
	if n, err := strconv.Atoi(first["sent_bytes"]); err != nil || n <= len("i-logged") {
		t.Errorf("sent_bytes %q", first["sent_bytes"])
	}
	if !strings.HasPrefix(first["conn_trace_id"], "TID_") {
		t.Errorf("conn_trace_id %q", first["conn_trace_id"])
	}
	for k, v := range map[string]string{
		"elb_status_code": "503", "target_status_code": "-", "target:port": "-", "target_group_arn": "-",
		"request_processing_time": "-1", "target_processing_time": "-1", "response_processing_time": "-1",
		"target:port_list": "-", "target_status_code_list": "-", "user_agent": "Go-http-client/1.1",
	} {
		if third[k] != v {
			t.Errorf("503 line %s = %q, want %q", k, third[k], v)
		}
	}

	// Flushed lines are gone; a failed write keeps them for the next flush.
	get(t, st.url+"/fourth")
	e.s3.mu.Lock()
	e.s3.NextErr = errors.New("SlowDown")
	e.s3.mu.Unlock()
	if err := e.svc.FlushLogs(ctx); err == nil {
		t.Fatal("FlushLogs hid a failed write")
	}
	fc.Advance(10 * time.Minute)
	if err := e.svc.FlushLogs(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, v := range e.s3.Objects("logs") {
		if strings.Contains(k, "_20240305T1214Z_") {
			n += len(gunzipLines(t, v))
		}
	}
	if n != 1 {
		t.Errorf("retried flush wrote %d lines, want 1", n)
	}
}

func TestAccessLogsFlushPeriodically(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLogFlush(50*time.Millisecond))
	ctx := context.Background()
	st := e.newStack(t, "periodic")
	if _, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN),
		Attributes: []types.LoadBalancerAttribute{
			{Key: aws.String(attrAccessLogsEnabled), Value: aws.String("true")},
			{Key: aws.String(attrAccessLogsBucket), Value: aws.String("logs")},
		}}); err != nil {
		t.Fatal(err)
	}
	get(t, st.url+"/")
	eventually(t, 5*time.Second, func() bool {
		for k := range e.s3.Objects("logs") {
			if strings.HasPrefix(k, "AWSLogs/123456789012/elasticloadbalancing/us-east-1/") && strings.HasSuffix(k, ".log.gz") {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no log object; bucket holds %d objects", len(e.s3.Objects("logs"))) })
}

func TestAccessLogsNeedS3(t *testing.T) {
	t.Parallel()
	inst := newFakeInstances()
	svc, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: inst})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	lb, err := svc.createLoadBalancer(context.Background(), createLBInput{Name: "nos3"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.modifyLBAttributes(context.Background(), lb.ARN, []kv{{attrAccessLogsEnabled, "true"}, {attrAccessLogsBucket, "b"}})
	if !hasCode(err, "InvalidConfigurationRequest") {
		t.Fatalf("enabling logs without S3: %v, want InvalidConfigurationRequest", err)
	}
}

func gunzipLines(t *testing.T, body []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("log object is not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// FuzzLogLine checks that whatever a client sends, its line splits into
// exactly the documented fields and gives the user agent and path back.
func FuzzLogLine(f *testing.F) {
	f.Add("curl/8.0", "/index.html", "GET")
	f.Add(`a "quoted" \ agent`, "/a%20b?x=\"1\"", "POST")
	f.Add("\x00\xff\n", "/", "DELETE")
	f.Fuzz(func(t *testing.T, ua, target, method string) {
		r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/", nil)
		if err != nil {
			t.Skip()
		}
		r.Method = method
		r.Header.Set("User-Agent", ua)
		r.URL.Path, r.URL.RawQuery, _ = strings.Cut(target, "?")
		r.RemoteAddr = "127.0.0.1:5555"
		now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		line := formatLogLine(logEntry{r: r, ex: &exchange{received: now, traceID: "Root=1-00000000-000000000000000000000000"}, elbID: "app/fuzz/0123456789abcdef",
			listenerPort: 80, elbStatus: 503, done: now, connTraceID: "TID_0"})
		fields, err := parseLogLine(line)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		wantUA := ua
		if wantUA == "" {
			wantUA = "-"
		}
		if fields["user_agent"] != wantUA {
			t.Fatalf("user agent %q came back as %q", ua, fields["user_agent"])
		}
		if !strings.Contains(fields["request"], r.URL.RequestURI()) {
			t.Fatalf("request %q lacks %q", fields["request"], r.URL.RequestURI())
		}
	})
}

func TestClientThatLeavesIsLogged460(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "leaver")
	b := newBackend(t, e.inst, "i-slow")
	e.register(t, st.tgARN, b)
	e.waitState(t, st.tgARN, "i-slow", stateHealthy)
	if _, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN),
		Attributes: []types.LoadBalancerAttribute{
			{Key: aws.String(attrAccessLogsEnabled), Value: aws.String("true")},
			{Key: aws.String(attrAccessLogsBucket), Value: aws.String("logs")},
		}}); err != nil {
		t.Fatal(err)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, st.url+"/slow", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := lbClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, func() bool { return b.hits.Load() == 1 }, func() string { return "the request did not arrive" })
	cancel()
	<-done
	var lines []string
	eventually(t, 5*time.Second, func() bool {
		if err := e.svc.FlushLogs(ctx); err != nil {
			t.Fatal(err)
		}
		for k, v := range e.s3.Objects("logs") {
			if strings.HasSuffix(k, ".log.gz") {
				lines = gunzipLines(t, v)
			}
		}
		return len(lines) > 0
	}, func() string { return "no log line" })
	f, err := parseLogLine(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	if f["elb_status_code"] != "460" || f["target_status_code"] != "-" {
		t.Errorf("client that left: elb %s target %s, want 460 -", f["elb_status_code"], f["target_status_code"])
	}
}
