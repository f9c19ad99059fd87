package logs

import (
	"bytes"
	"encoding/json"
	"testing"
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
