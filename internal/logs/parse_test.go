package logs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// albFull is an ALB line in the documented shape with every field through
// request_transform_status (33).
var albFull = []string{
	"https", "2025-08-14T22:23:00.186641Z", "app/my-loadbalancer/50dc6c495c0c9188", "192.168.131.39:2817", "10.0.0.1:80",
	"0.086", "0.048", "0.037", "200", "200", "0", "57",
	`"GET https://www.example.com:443/search?q=\x22a b\x22 HTTP/1.1"`, `"curl/7.46.0 caf\xc3\xa9"`,
	"ECDHE-RSA-AES128-GCM-SHA256", "TLSv1.2",
	"arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067",
	`"Root=1-58337281-1d84f3d73c47ec4e58577259"`,
	`"www.example.com"`, `"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"`,
	"1", "2025-08-14T22:22:48.364000Z", `"authenticate,forward"`, `"-"`,
	`"-"`,
	`"10.0.0.1:80"`, `"200"`, `"-"`, `"-"`,
	"TID_1234abcd5678ef90",
	`"www.example.org"`, `"/rewritten?q=1"`, `"TRANSFORMED"`,
}

func albLine(n int, extra ...string) string {
	return strings.Join(append(append([]string(nil), albFull[:n]...), extra...), " ")
}

var goldenLines = []struct {
	name   string
	format Format
	line   string
	fields int
}{
	// Each historical ALB field addition: a line written before it still
	// parses, and one written after it too.
	{"alb-2016-18-fields", FormatALB, albLine(18), 18},
	{"alb-sni-20-fields", FormatALB, albLine(20), 20},
	{"alb-2018-24-fields", FormatALB, albLine(24), 24},
	{"alb-2019-error-reason-25-fields", FormatALB, albLine(25), 25},
	{"alb-2020-classification-29-fields", FormatALB, albLine(29), 29},
	{"alb-2024-conn-trace-id-30-fields", FormatALB, albLine(30), 30},
	{"alb-2025-transforms-33-fields", FormatALB, albLine(33), 33},
	{"alb-future-fields-kept", FormatALB, albLine(33, `"a future field"`, "42"), 35},
	{"alb-http-no-target", FormatALB, `http 2024-05-01T10:00:00.000000Z app/web/abc 10.1.2.3:5000 - -1 -1 -1 503 - 120 0 "POST http://web:80/upload HTTP/1.1" "-" - - - "Root=1-abc" "-" "-" 0 2024-05-01T09:59:59.990000Z "forward" "-" "-" "-" "-" "-" "-" -`, 30},
	{"alb-escaped-quote-backslash", FormatALB, albLine(12) + ` "GET http://h:80/a\"b\\c HTTP/1.1" "ua\x00x" - - - "-"`, 18},
	{"classic-http", FormatClassic, `2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -`, 15},
	{"classic-tcp", FormatClassic, `2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001069 0.000028 0.000041 - - 82 305 "- - - " "-" - -`, 15},
	{"classic-ssl", FormatClassic, `2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001065 0.000015 0.000023 - - 57 502 "- - - " "-" ECDHE-ECDSA-AES128-GCM-SHA256 TLSv1.2`, 15},
	{"classic-no-backend", FormatClassic, `2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 - -1 -1 -1 504 0 0 0 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -`, 15},
	{"nlb-tls-2.0", FormatNLB, `tls 2.0 2018-12-20T02:59:40 net/my-network-loadbalancer/c6e77e28c25b2234 g3d4b5e8bb8464cd 72.21.218.154:51341 172.100.100.185:443 5 2 98 246 - arn:aws:acm:us-east-2:671290407336:certificate/2a108f19-aded-46b0-8493-c63eb1ef4a99 - ECDHE-RSA-AES128-SHA tlsv12 - my-network-loadbalancer-c6e77e28c25b2234.elb.us-east-2.amazonaws.com - - - 2018-12-20T02:59:30`, 22},
	{"alb-connection-log", FormatConnection, `2023-10-04T17:22:21.000000Z 203.0.113.1 1234 443 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 0.101 "CN=client" "NotBefore=2023-09-21T22:43:21Z;NotAfter=2026-09-21T22:43:21Z" FEF257D4A4A2B6FD Success TID_1234`, 12},
}

func TestGolden(t *testing.T) {
	var l Line
	for _, tc := range goldenLines {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Parse(tc.format, []byte(tc.line)); err != nil {
				t.Fatalf("parse: %v\n%s", err, tc.line)
			}
			if l.Fields() != tc.fields {
				t.Errorf("%d fields, want %d", l.Fields(), tc.fields)
			}
			doc := AppendDoc(nil, &l, "s3://bucket/key.log.gz", 1234)
			var v map[string]any
			if err := json.Unmarshal(doc, &v); err != nil {
				t.Fatalf("document is not JSON: %v\n%s", err, doc)
			}
			pretty, _ := json.MarshalIndent(v, "", "  ")
			pretty = append(pretty, '\n')
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, pretty, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/logs -run TestGolden -update)", err)
			}
			if !bytes.Equal(pretty, want) {
				t.Errorf("document differs from %s:\n%s", path, pretty)
			}
		})
	}
}

func TestBadLines(t *testing.T) {
	var l Line
	for _, tc := range []struct {
		name   string
		format Format
		line   string
		want   string
	}{
		{"too few fields", FormatALB, albLine(17), "at least 18 fields; this one has 17"},
		{"not an ALB type", FormatALB, "tls" + albLine(18)[5:], "not an ALB line"},
		{"bad time", FormatALB, strings.Replace(albLine(18), "2025-08-14T22:23:00.186641Z", "2025-08-14 22:23:00", 1), "field time"},
		{"bad time shape", FormatALB, strings.Replace(albLine(18), "2025-08-14T22:23:00.186641Z", "2025-08-14X22:23:00Z", 1), "field time"},
		{"absent time", FormatClassic, strings.Replace(goldenLines[10].line, "2015-05-13T23:39:43.945958Z", "-", 1), "time is required"},
		{"absent client", FormatALB, strings.Replace(albLine(18), "192.168.131.39:2817", "-", 1), "client_ip:client_port is required"},
		{"bad port", FormatALB, strings.Replace(albLine(18), "192.168.131.39:2817", "192.168.131.39:x", 1), "not a valid ip:port"},
		{"bad number", FormatALB, strings.Replace(albLine(18), " 0.086 ", " 0.0.86 ", 1), "request_processing_time"},
		{"bad status", FormatALB, strings.Replace(albLine(18), " 200 200 ", " 2x0 200 ", 1), "elb_status_code"},
		{"unclosed quote", FormatALB, albLine(12) + ` "GET http://x HTTP/1.1`, "never closed"},
		{"junk after quote", FormatALB, albLine(12) + ` "GET / HTTP/1.1"x "ua" - - - "-"`, "follows a closing quote"},
		{"nlb type", FormatNLB, strings.Replace(goldenLines[14].line, "tls 2.0", "tcp 2.0", 1), "not an NLB TLS line"},
		{"classic line as ALB", FormatALB, goldenLines[10].line, "not an ALB line"},
		{"too many fields", FormatALB, albLine(33) + strings.Repeat(" x", 40), "more than 64 fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Parse(tc.format, []byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDetectKey(t *testing.T) {
	for _, tc := range []struct {
		key    string
		conn   bool
		format Format
		skip   bool
		err    string
	}{
		{"AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01/123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20240501T1005Z_10.0.0.1_5xxd2b1k.log.gz", false, FormatALB, false, ""},
		{"p/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01/123456789012_elasticloadbalancing_us-east-1_net.my-nlb.c6e77e28c25b2234_20240501T1005Z_f1a2b3c4.log.gz", false, FormatNLB, false, ""},
		{"AWSLogs/123456789012/elasticloadbalancing/us-east-1/2014/02/15/123456789012_elasticloadbalancing_us-east-1_my-loadbalancer_20140215T2340Z_172.160.001.192_20sg8hgm.log", false, FormatClassic, false, ""},
		{"AWSLogs/123456789012/ELBAccessLogTestFile", false, FormatUnknown, true, ""},
		{"AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01/conn_log.123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20240501T1005Z_10.0.0.1_5xxd2b1k.log.gz", false, FormatConnection, true, ""},
		{"AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01/conn_log.123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20240501T1005Z_10.0.0.1_5xxd2b1k.log.gz", true, FormatConnection, false, ""},
		{"photos/cat.jpg", false, FormatUnknown, false, "not an ELB access-log key"},
		{"x/123_elasticloadbalancing_us-east-1_thing.csv", false, FormatUnknown, false, "does not end in .log"},
	} {
		k, err := DetectKey(tc.key, tc.conn)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.key, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.key, err)
		case k.Format != tc.format || (k.Skip != "") != tc.skip:
			t.Errorf("%s: %+v, want format %s skip %v", tc.key, k, tc.format, tc.skip)
		}
	}
}

func TestTemplateIsStable(t *testing.T) {
	a, b := Template("elb-logs"), Template("elb-logs")
	if !bytes.Equal(a, b) {
		t.Fatal("the template differs between calls")
	}
	var v map[string]any
	if err := json.Unmarshal(a, &v); err != nil {
		t.Fatal(err)
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	line := []byte(albLine(33))
	var l Line
	buf := make([]byte, 0, 4096)
	n := testing.AllocsPerRun(200, func() {
		if err := l.Parse(FormatALB, line); err != nil {
			t.Fatal(err)
		}
		buf = AppendAction(buf[:0], &l, "elb-logs", "0123456789abcdef0123", 42)
		buf = AppendDoc(buf, &l, "s3://b/k", 42)
	})
	if n != 0 {
		t.Errorf("%v allocations per line, want 0", n)
	}
}
