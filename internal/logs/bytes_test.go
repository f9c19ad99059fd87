package logs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// encodedCorpusSHA256 is the SHA-256 of the bulk NDJSON the encoder wrote
// for encodedCorpus before it was made faster (the byte-at-a-time string
// scan, keys built per line, the spec map): speeding it up must not change
// one byte of what is indexed, ids included.
const encodedCorpusSHA256 = "b3fcdf817d98ea086634123b182e3d4fe73aa965dd456bf156082e973de23dc8"

// encodedCorpus is every golden line, ALB lines whose quoted fields need
// each kind of care (escaped quotes and backslashes, \xHH escapes of
// UTF-8 and of invalid bytes, raw UTF-8, invalid UTF-8, control bytes) at
// every position around eight-byte boundaries, and 2,000 realistic lines.
func encodedCorpus() (lines [][]byte, formats []Format) {
	for _, g := range goldenLines {
		lines, formats = append(lines, []byte(g.line)), append(formats, g.format)
	}
	base := albLine(30)
	const ua = `"curl/7.46.0 caf\xc3\xa9"`
	if !strings.Contains(base, ua) {
		panic("albLine(30) has no curl user agent to replace")
	}
	for _, care := range []string{`\"`, `\\`, `\x22`, `\xc3\xa9`, `\xff`, `\xe2\x82`, "é", "\xff", "\xe2\x82\xac", "\t", "\x01", "\x7f"} {
		for pos := 0; pos <= 17; pos++ {
			v := strings.Repeat("a", pos) + care + strings.Repeat("b", 17-pos)
			lines = append(lines, []byte(strings.Replace(base, ua, `"`+v+`"`, 1)))
			formats = append(formats, FormatALB)
		}
	}
	for _, l := range bytes.SplitAfter(realALBLines(2000), []byte("\n")) {
		if len(l) > 0 {
			lines, formats = append(lines, bytes.TrimRight(l, "\n")), append(formats, FormatALB)
		}
	}
	return lines, formats
}

func TestEncodedBytesUnchanged(t *testing.T) {
	lines, formats := encodedCorpus()
	base := DocID("my-logs", "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2025/08/14/app.log.gz")
	objField := objectField("s3://my-logs/AWSLogs/app.log.gz")
	var l Line
	var buf []byte
	offset := int64(0)
	for i, line := range lines {
		if err := l.Parse(formats[i], line); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, line)
		}
		buf = AppendAction(buf, &l, "elb-logs", base, offset)
		start := len(buf)
		buf = AppendDoc(buf, &l, "s3://my-logs/AWSLogs/app.log.gz", offset)
		// The pipeline's path, the object's member encoded once.
		if again := appendDoc(nil, &l, objField, offset); !bytes.Equal(again, buf[start:]) {
			t.Fatalf("line %d: appendDoc wrote\n%s\nAppendDoc\n%s", i, again, buf[start:])
		}
		buf = append(buf, '\n')
		offset += int64(len(line) + 1)
	}
	sum := sha256.Sum256(buf)
	if got := hex.EncodeToString(sum[:]); got != encodedCorpusSHA256 {
		t.Errorf("the encoder's output changed: SHA-256 %s, want %s (%d lines, %d bytes)", got, encodedCorpusSHA256, len(lines), len(buf))
	}
}
