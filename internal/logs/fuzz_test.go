package logs

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzTokenize: any input splits without panicking, into fields that lie
// inside the line.
func FuzzTokenize(f *testing.F) {
	for _, g := range goldenLines {
		f.Add([]byte(g.line))
	}
	f.Add([]byte(`"a\" b" "\\" ""`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var l Line
		if err := l.Tokenize(in); err != nil {
			return
		}
		for i := 0; i < l.Fields(); i++ {
			if len(l.Field(i)) > len(in) {
				t.Fatalf("field %d longer than the line", i)
			}
		}
	})
}

// fuzzFormat checks that every line a parser accepts encodes to valid
// JSON documents and actions.
func fuzzFormat(f *testing.F, format Format) {
	for _, g := range goldenLines {
		f.Add([]byte(g.line))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var l Line
		if err := l.Parse(format, in); err != nil {
			return
		}
		doc := AppendDoc(nil, &l, "s3://b/k", 7)
		if !json.Valid(doc) {
			t.Fatalf("invalid document for %q:\n%s", in, doc)
		}
		act := AppendAction(nil, &l, "elb-logs", DocID("b", "k"), 7)
		if !json.Valid(bytes.TrimSpace(act)) {
			t.Fatalf("invalid action for %q:\n%s", in, act)
		}
	})
}

func FuzzALB(f *testing.F)        { fuzzFormat(f, FormatALB) }
func FuzzClassic(f *testing.F)    { fuzzFormat(f, FormatClassic) }
func FuzzNLB(f *testing.F)        { fuzzFormat(f, FormatNLB) }
func FuzzConnection(f *testing.F) { fuzzFormat(f, FormatConnection) }

// FuzzDetectKey: any key is classified or refused, never a panic.
func FuzzDetectKey(f *testing.F) {
	f.Add("AWSLogs/1/elasticloadbalancing/r/2024/05/01/1_elasticloadbalancing_r_app.a.b_c_d_e.log.gz")
	f.Add("x")
	f.Fuzz(func(t *testing.T, key string) { _, _ = DetectKey(key, true) })
}

// FuzzParseMessage: any queue message is read or refused, never a panic;
// a continuation carries its object back unchanged.
func FuzzParseMessage(f *testing.F) {
	f.Add(`{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2025-08-14T22:25:01.123Z","s3":{"bucket":{"name":"l"},"object":{"key":"a+b%2B"}}}]}`, "b", "k", int64(5))
	f.Add(`{"Type":"Notification","Message":"{\"Event\":\"s3:TestEvent\"}"}`, "b", "a b", int64(0))
	f.Add(`{"detail-type":"Object Created","time":"2025-08-14T22:25:01Z","detail":{"bucket":{"name":"l"},"object":{"key":"k"}}}`, "", "", int64(-1))
	f.Fuzz(func(t *testing.T, body, bucket, key string, offset int64) {
		_, _ = ParseMessage(body)
		if !utf8.ValidString(bucket) || !utf8.ValidString(key) {
			return // S3 names are UTF-8; JSON would replace the rest
		}
		o := Object{Bucket: bucket, Key: key, From: offset}
		got, err := ParseMessage(ContinuationBody(o))
		if bucket == "" || key == "" || offset < 0 {
			if err == nil {
				t.Fatalf("a continuation of %+v was accepted", o)
			}
			return
		}
		if err != nil || len(got) != 1 || got[0].Bucket != bucket || got[0].Key != key || got[0].From != offset {
			t.Fatalf("continuation of %+v read back as %+v (%v)", o, got, err)
		}
	})
}
