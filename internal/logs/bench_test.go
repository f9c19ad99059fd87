package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time so far (user + system, every thread).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports, beside the wall-clock MB/s, the MB of decompressed
// text per second of CPU the process used for them (all its goroutines,
// GC included): what one core's worth of work does, which a machine
// shared with other jobs changes less than the wall clock.
func reportCPU(b *testing.B, raw int64, start time.Duration) {
	if used := cpuTime(b) - start; used > 0 {
		b.ReportMetric(float64(raw)*float64(b.N)/1e6/used.Seconds(), "MB/cpu-s")
	}
}

// albRegexp is the kind of expression users of the anchors write for ALB
// lines (one group per field, quoted fields as "[^"]*"): the baseline.
var albRegexp = regexp.MustCompile(`^(\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) "([^"]*)" "([^"]*)" (\S+) (\S+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" (\S+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" (\S+)`)

func benchLines(b *testing.B, f Format, line string) {
	data := []byte(line)
	var l Line
	b.SetBytes(int64(len(data) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Parse(f, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseALB(b *testing.B)     { benchLines(b, FormatALB, albLine(30)) }
func BenchmarkParseClassic(b *testing.B) { benchLines(b, FormatClassic, goldenLines[10].line) }
func BenchmarkParseNLB(b *testing.B)     { benchLines(b, FormatNLB, goldenLines[14].line) }

func BenchmarkRegexpALB(b *testing.B) {
	data := []byte(albLine(30))
	b.SetBytes(int64(len(data) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if m := albRegexp.FindSubmatchIndex(data); m == nil {
			b.Fatal("no match")
		}
	}
}

// Parse and encode to bulk NDJSON (action and document lines).
func BenchmarkParseEncodeALB(b *testing.B) {
	data := []byte(albLine(30))
	var l Line
	buf := make([]byte, 0, 8192)
	objField := objectField("s3://my-logs/AWSLogs/key.log.gz")
	b.SetBytes(int64(len(data) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Parse(FormatALB, data); err != nil {
			b.Fatal(err)
		}
		buf = AppendAction(buf[:0], &l, "elb-logs", "0123456789abcdef0123", 123456)
		buf = appendDoc(buf, &l, objField, 123456) // as the pipeline does
	}
}

// benchLinesN is how many lines the gzip benchmarks' object has (about
// 12 MB of text).
const benchLinesN = 20000

// realALBLines returns n ALB lines as a busy load balancer writes them:
// clients, targets, times, methods, paths, statuses, sizes, user agents
// and trace ids all vary (deterministically, from a fixed seed), so the
// object compresses about as well as real logs do (8x), not like one
// repeated line (~250x), which gunzips unrealistically fast.
func realALBLines(n int) []byte {
	rng := rand.New(rand.NewPCG(17, 42))
	agents := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
		"curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "okhttp/4.12.0", "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2",
		"Googlebot/2.1 (+http://www.google.com/bot.html)", "ELB-HealthChecker/2.0", "kube-probe/1.29", "-",
	}
	methods := []string{"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"}
	paths := []string{"/", "/api/v1/users/%d", "/api/v1/orders/%d/items", "/static/js/app.%x.js", "/static/css/site.%x.css",
		"/search?q=%x&page=%d", "/images/p/%d.jpg", "/login", "/healthz", "/api/v2/carts/%x?expand=items", "/favicon.ico"}
	statuses := []string{"200", "200", "200", "200", "200", "200", "201", "204", "301", "304", "400", "403", "404", "404", "500", "502", "503"}
	ciphers := []string{"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_128_GCM_SHA256"}
	protocols := []string{"TLSv1.2", "TLSv1.2", "TLSv1.3"}
	hosts := []string{"www.example.com", "api.example.com", "shop.example.com", "static.example.com"}
	t := time.Date(2025, 8, 14, 22, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	for range n {
		t = t.Add(time.Duration(rng.IntN(2000)) * time.Microsecond)
		typ, cipher, proto, port := "https", ciphers[rng.IntN(len(ciphers))], protocols[rng.IntN(len(protocols))], 443
		switch rng.IntN(10) {
		case 0:
			typ, cipher, proto, port = "http", "-", "-", 80
		case 1:
			typ = "h2"
		}
		host := hosts[rng.IntN(len(hosts))]
		path := paths[rng.IntN(len(paths))]
		switch strings.Count(path, "%") {
		case 1:
			path = fmt.Sprintf(path, rng.IntN(1<<20))
		case 2:
			path = fmt.Sprintf(path, rng.IntN(1<<20), rng.IntN(20))
		}
		target := fmt.Sprintf("10.0.%d.%d:8080", rng.IntN(4), 10+rng.IntN(20))
		status := statuses[rng.IntN(len(statuses))]
		fmt.Fprintf(&b, `%s %s app/my-loadbalancer/50dc6c495c0c9188 %d.%d.%d.%d:%d %s %.3f %.3f %.3f %s %s %d %d "%s %s://%s:%d%s HTTP/%s" "%s" %s %s arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-%d/73e2d6bc24d8a067 "Root=1-%08x-%024x" "%s" "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012" %d %s "forward" "-" "-" "%s" "%s" "-" "-" TID_%016x`+"\n",
			typ, t.Format("2006-01-02T15:04:05.000000Z"), 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254), 1024+rng.IntN(64000), target,
			rng.Float64()/1000, rng.Float64()/5, rng.Float64()/1000, status, status, rng.IntN(4000), rng.IntN(200000),
			methods[rng.IntN(len(methods))], map[bool]string{true: "https", false: "http"}[port == 443], host, port, path, map[bool]string{true: "2.0", false: "1.1"}[typ == "h2"],
			agents[rng.IntN(len(agents))], cipher, proto, rng.IntN(3), uint32(t.Unix()), rng.Uint64(), host,
			rng.IntN(5), t.Add(-time.Duration(rng.IntN(50))*time.Millisecond).Format("2006-01-02T15:04:05.000000Z"), target, status, rng.Uint64())
	}
	return b.Bytes()
}

// gzObject is the gzip benchmarks' object: realistic lines in two gzip
// members, as ALB may write them, and its decompressed size.
func gzObject(b *testing.B) (obj []byte, raw int64) {
	b.Helper()
	lines := realALBLines(benchLinesN)
	half := bytes.IndexByte(lines[len(lines)/2:], '\n') + len(lines)/2 + 1
	return gz(lines[:half], lines[half:]), int64(len(lines))
}

func drain(b *testing.B, r io.Reader) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		b.Fatal(err)
	}
}

// The decompressors alone, over the same object.
func BenchmarkGunzipStdlib(b *testing.B) {
	obj, raw := gzObject(b)
	b.SetBytes(raw)
	var cpu time.Duration
	for b.Loop() {
		if cpu == 0 {
			cpu = cpuTime(b)
		}
		zr, _ := gzip.NewReader(bytes.NewReader(obj))
		drain(b, zr)
	}
	reportCPU(b, raw, cpu)
}

func BenchmarkGunzipKlauspost(b *testing.B) {
	obj, raw := gzObject(b)
	b.SetBytes(raw)
	var cpu time.Duration
	for b.Loop() {
		if cpu == 0 {
			cpu = cpuTime(b)
		}
		zr, _ := NewGzipReader(bytes.NewReader(obj))
		drain(b, zr)
	}
	reportCPU(b, raw, cpu)
	b.ReportMetric(float64(raw)/float64(len(obj)), "x-compression")
}

// The whole pipeline on the same object (decompress → split into lines →
// parse → encode bulk NDJSON → bulks to a store that answers 201): as it
// runs by default (with GOMAXPROCS > 1, the parallel path: gunzip and
// splitting on one goroutine, parse + encode on GOMAXPROCS workers; with
// 1, the serial loop), and the serial loop (the code before the parallel
// path) with gunzip on a read-ahead goroutine or inline, for comparison.
func BenchmarkPipelineGzipALB(b *testing.B) {
	defer func(n int) { gzipReadAhead = n }(gzipReadAhead)
	for _, c := range []struct {
		name      string
		readAhead int
		workers   int
	}{{"default", 4, 0}, {"serial-readahead", 4, 1}, {"serial-inline", 0, 1}} {
		b.Run(c.name, func(b *testing.B) {
			gzipReadAhead = c.readAhead
			obj, raw := gzObject(b)
			benchPipeline(b, Config{ParseWorkers: c.workers}, obj, raw)
		})
	}
}

// BenchmarkPipelinePlainALB is the whole pipeline on the same lines
// uncompressed: parse + encode + bulks as the pipeline runs them, the
// ceiling of the gzip pipeline when gunzip has a core of its own.
func BenchmarkPipelinePlainALB(b *testing.B) {
	lines := realALBLines(benchLinesN)
	for _, c := range []struct {
		name    string
		workers int
	}{{"default", 0}, {"serial", 1}} {
		b.Run(c.name, func(b *testing.B) {
			benchPipeline(b, Config{ParseWorkers: c.workers}, lines, int64(len(lines)))
		})
	}
}

func benchPipeline(b *testing.B, cfg Config, obj []byte, raw int64) {
	store := memStore{"b/" + albKey: obj}
	dead := &memDead{}
	p := New(cfg, store, &okBulk{}, dead)
	b.SetBytes(raw)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		if cpu == 0 {
			cpu = cpuTime(b)
		}
		res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Indexed != benchLinesN {
			b.Fatalf("%d of %d lines indexed (dead letters: %v)", res.Indexed, benchLinesN, dead)
		}
	}
	reportCPU(b, raw, cpu)
}

// okBulk is a null store: every item created. It keeps its answer's
// slice (the pipeline is done with it when Bulk is called again), so that
// the store's allocations are not counted as the pipeline's.
type okBulk struct{ out []ItemResult }

func (o *okBulk) Bulk(_ context.Context, body []byte) ([]ItemResult, error) {
	n := bytes.Count(body, []byte("\n")) / 2
	for len(o.out) < n {
		o.out = append(o.out, ItemResult{Status: 201})
	}
	return o.out[:n], nil
}
