package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"regexp"
	"testing"
)

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
	b.SetBytes(int64(len(data) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Parse(FormatALB, data); err != nil {
			b.Fatal(err)
		}
		buf = AppendAction(buf[:0], &l, "elb-logs", "0123456789abcdef0123", 123456)
		buf = AppendDoc(buf, &l, "s3://my-logs/AWSLogs/key.log.gz", 123456)
	}
}

func gzObject(b *testing.B) []byte {
	b.Helper()
	return gz(albLines(20000))
}

func drain(b *testing.B, r io.Reader) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		b.Fatal(err)
	}
}

// The decompressors alone, over the same object.
func BenchmarkGunzipStdlib(b *testing.B) {
	obj := gzObject(b)
	raw := albLines(20000)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		zr, _ := gzip.NewReader(bytes.NewReader(obj))
		drain(b, zr)
	}
}

func BenchmarkGunzipKlauspost(b *testing.B) {
	obj := gzObject(b)
	raw := albLines(20000)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		zr, _ := NewGzipReader(bytes.NewReader(obj))
		drain(b, zr)
	}
}

func BenchmarkPipelineGzipALB(b *testing.B) {
	obj := gzObject(b)
	raw := albLines(20000)
	store := memStore{"b/" + albKey: obj}
	p := New(Config{}, store, okBulk{}, &memDead{})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type okBulk struct{}

func (okBulk) Bulk(_ context.Context, body []byte) ([]ItemResult, error) {
	n := bytes.Count(body, []byte("\n")) / 2
	out := make([]ItemResult, n)
	for i := range out {
		out[i].Status = 201
	}
	return out, nil
}
