package eventbridge

import (
	"errors"
	"testing"
)

// sampleEvent is Event Ruler's README event, with extra fields for the
// cases AWS's docs describe (null, empty string, arrays, objects in arrays).
const sampleEvent = `{
  "version": "0",
  "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
  "detail-type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "account": "012345679012",
  "time": "2017-10-02T16:24:49Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
  "detail": {
    "c-count": 5,
    "d-count": 3,
    "x-limit": 301.8,
    "source-ip": "10.0.0.33",
    "ipv6": "2001:db8::1",
    "instance-id": "i-000000aaaaaa00000",
    "state": "running",
    "file": "photo.PNG",
    "path": "/usr/lib/x*y",
    "empty": "",
    "nothing": null,
    "flag": true,
    "tags": ["Custom_Alert", "Insider"],
    "nested": {"deep": {"value": "x"}},
    "items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]
  }
}`

func TestPatternMatching(t *testing.T) {
	for _, tc := range []struct {
		name, pattern string
		want          bool
	}{
		// Exact values, AND across fields, OR within arrays.
		{"exact", `{"source": ["aws.ec2"]}`, true},
		{"exact miss", `{"source": ["aws.s3"]}`, false},
		{"one of several", `{"source": ["aws.s3", "aws.ec2"]}`, true},
		{"and across fields", `{"source": ["aws.ec2"], "detail": {"state": ["stopped"]}}`, false},
		{"nested", `{"detail": {"state": ["running"]}}`, true},
		{"deeply nested", `{"detail": {"nested": {"deep": {"value": ["x"]}}}}`, true},
		{"deeply nested miss", `{"detail": {"nested": {"deep": {"value": ["y"]}}}}`, false},
		{"missing field", `{"detail": {"missing": ["x"]}}`, false},
		{"leaf pattern on an object", `{"detail": ["x"]}`, false},
		{"number", `{"detail": {"c-count": [5]}}`, true},
		{"number is not a string", `{"detail": {"c-count": ["5"]}}`, false},
		{"number by its text", `{"detail": {"c-count": [5.0]}}`, false},
		{"event array intersects", `{"detail": {"tags": ["Insider"]}}`, true},
		{"event array misses", `{"detail": {"tags": ["Outsider"]}}`, false},
		{"resources", `{"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"]}`, true},
		{"empty string", `{"detail": {"empty": [""]}}`, true},
		{"null", `{"detail": {"nothing": [null]}}`, true},
		{"null is not empty", `{"detail": {"empty": [null]}}`, false},
		{"empty is not null", `{"detail": {"nothing": [""]}}`, false},
		{"true", `{"detail": {"flag": [true]}}`, true},
		{"false", `{"detail": {"flag": [false]}}`, false},
		{"objects in arrays", `{"detail": {"items": {"name": ["b"]}}}`, true},
		{"same array element", `{"detail": {"items": {"name": ["b"], "size": [2]}}}`, true},
		{"different array elements", `{"detail": {"items": {"name": ["a"], "size": [2]}}}`, false},

		{"prefix", `{"time": [{"prefix": "2017-10-02"}]}`, true},
		{"prefix miss", `{"time": [{"prefix": "2018"}]}`, false},
		{"prefix on a number", `{"detail": {"c-count": [{"prefix": "5"}]}}`, false},
		{"prefix ignoring case", `{"detail": {"state": [{"prefix": {"equals-ignore-case": "RUN"}}]}}`, true},
		{"prefix with case", `{"detail": {"state": [{"prefix": "RUN"}]}}`, false},
		{"suffix", `{"detail": {"file": [{"suffix": ".PNG"}]}}`, true},
		{"suffix with case", `{"detail": {"file": [{"suffix": ".png"}]}}`, false},
		{"suffix ignoring case", `{"detail": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}}`, true},
		{"equals-ignore-case", `{"detail": {"state": [{"equals-ignore-case": "RUNNING"}]}}`, true},
		{"equals-ignore-case miss", `{"detail": {"state": [{"equals-ignore-case": "stopped"}]}}`, false},
		{"wildcard", `{"detail": {"instance-id": [{"wildcard": "i-*aaaa*0"}]}}`, true},
		{"wildcard miss", `{"detail": {"instance-id": [{"wildcard": "i-*bbbb*"}]}}`, false},
		{"wildcard without star", `{"source": [{"wildcard": "aws.ec"}]}`, false},
		{"wildcard escaped star", `{"detail": {"path": [{"wildcard": "*/x\\*y"}]}}`, true},
		{"wildcard escaped star is literal", `{"detail": {"instance-id": [{"wildcard": "i-\\*"}]}}`, false},

		{"anything-but", `{"detail": {"state": [{"anything-but": "initializing"}]}}`, true},
		{"anything-but the value", `{"detail": {"state": [{"anything-but": "running"}]}}`, false},
		{"anything-but list", `{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}`, true},
		{"anything-but list with the value", `{"detail": {"state": [{"anything-but": ["running", "stopped"]}]}}`, false},
		{"anything-but numbers", `{"detail": {"c-count": [{"anything-but": [100, 200, 300]}]}}`, true},
		{"anything-but the number", `{"detail": {"c-count": [{"anything-but": 5}]}}`, false},
		{"anything-but prefix", `{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}`, true},
		{"anything-but its prefix", `{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}`, false},
		{"anything-but suffix", `{"detail": {"file": [{"anything-but": {"suffix": ".PNG"}}]}}`, false},
		{"anything-but ignoring case", `{"detail": {"state": [{"anything-but": {"equals-ignore-case": ["RUNNING"]}}]}}`, false},
		{"anything-but other case", `{"detail": {"state": [{"anything-but": {"equals-ignore-case": "STOPPED"}}]}}`, true},
		{"anything-but wildcard", `{"detail": {"state": [{"anything-but": {"wildcard": "run*"}}]}}`, false},
		{"anything-but needs the field", `{"detail": {"missing": [{"anything-but": "x"}]}}`, false},
		{"anything-but in an array", `{"detail": {"tags": [{"anything-but": "Insider"}]}}`, true},

		{"numeric range", `{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}`, true},
		{"numeric open bound", `{"detail": {"c-count": [{"numeric": [">", 5]}]}}`, false},
		{"numeric upper", `{"detail": {"d-count": [{"numeric": ["<", 10]}]}}`, true},
		{"numeric equals", `{"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}}`, true},
		{"numeric equals miss", `{"detail": {"x-limit": [{"numeric": ["=", 301]}]}}`, false},
		{"numeric closed bottom", `{"detail": {"c-count": [{"numeric": [">=", 5, "<", 5.5]}]}}`, true},
		{"numeric on a string", `{"detail": {"state": [{"numeric": [">", 0]}]}}`, false},

		{"exists", `{"detail": {"c-count": [{"exists": true}]}}`, true},
		{"exists false on present", `{"detail": {"c-count": [{"exists": false}]}}`, false},
		{"exists false on missing", `{"detail": {"missing": [{"exists": false}]}}`, true},
		{"exists true on missing", `{"detail": {"missing": [{"exists": true}]}}`, false},
		{"exists false on an object", `{"detail": {"nested": [{"exists": false}]}}`, true},
		{"exists true on an object", `{"detail": {"nested": [{"exists": true}]}}`, false},
		{"exists true on null", `{"detail": {"nothing": [{"exists": true}]}}`, true},
		{"exists false under a missing object", `{"missing": {"x": [{"exists": false}]}}`, true},
		{"exists or value", `{"detail": {"missing": [{"exists": false}, "x"]}}`, true},

		{"cidr", `{"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}`, true},
		{"cidr miss", `{"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}`, false},
		{"cidr ipv6", `{"detail": {"ipv6": [{"cidr": "2001:db8::/32"}]}}`, true},
		{"cidr on a non-address", `{"detail": {"state": [{"cidr": "10.0.0.0/8"}]}}`, false},

		{"$or", `{"$or": [{"source": ["aws.s3"]}, {"detail": {"state": ["running"]}}]}`, true},
		{"$or none", `{"$or": [{"source": ["aws.s3"]}, {"detail": {"state": ["stopped"]}}]}`, false},
		{"$or nested", `{"detail": {"$or": [{"c-count": [{"numeric": [">", 100]}]}, {"d-count": [3]}]}}`, true},
		{"$or and a field", `{"source": ["aws.s3"], "$or": [{"region": ["us-east-1"]}, {"account": ["x"]}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePattern(tc.pattern)
			if err != nil {
				t.Fatalf("ParsePattern(%s): %v", tc.pattern, err)
			}
			got, err := p.MatchJSON([]byte(sampleEvent))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("%s matches = %v, want %v", tc.pattern, got, tc.want)
			}
		})
	}
}

func TestInvalidPatterns(t *testing.T) {
	for _, p := range []string{
		`not json`, `[]`, `"x"`, `{}`, `{"a": ["x"]} {}`,
		`{"source": "aws.ec2"}`, `{"source": 1}`, `{"source": []}`, `{"a": {}}`, `{"a": [["x"]]}`,
		`{"source": [{"prefix": 1}]}`, `{"source": [{"nope": "x"}]}`, `{"source": [{"prefix": "a", "suffix": "b"}]}`,
		`{"a": [{"numeric": [">", 5, ">", 6]}]}`, `{"a": [{"numeric": ["<", 5, ">", 1]}]}`, `{"a": [{"numeric": [">", 5, "<", 1]}]}`,
		`{"a": [{"numeric": ["=", "5"]}]}`, `{"a": [{"numeric": [">"]}]}`, `{"a": [{"numeric": ["=", 1, "<", 2]}]}`,
		`{"a": [{"exists": "yes"}]}`, `{"a": [{"cidr": "10.0.0.0/33"}]}`, `{"a": [{"cidr": "x"}]}`,
		`{"a": [{"wildcard": "a**b"}]}`, `{"a": [{"wildcard": "a\\b"}]}`, `{"a": [{"equals-ignore-case": 1}]}`,
		`{"a": [{"anything-but": []}]}`, `{"a": [{"anything-but": ["a", 1]}]}`, `{"a": [{"anything-but": {"foo": "x"}}]}`,
		`{"a": [{"anything-but": null}]}`, `{"$or": [{"a": ["x"]}]}`, `{"$or": [{"a": ["x"]}, {}]}`,
	} {
		_, err := ParsePattern(p)
		var pe *PatternError
		if !errors.As(err, &pe) {
			t.Errorf("ParsePattern(%s) = %v, want a PatternError", p, err)
		}
	}
}

// FuzzPattern checks that no pattern or event makes compiling or matching
// panic, and that matching is deterministic.
func FuzzPattern(f *testing.F) {
	for _, s := range []struct{ pattern, event string }{
		{`{"source": ["aws.ec2"], "detail": {"state": [{"anything-but": {"prefix": "init"}}]}}`, sampleEvent},
		{`{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "items": {"name": ["b"]}}}`, sampleEvent},
		{`{"$or": [{"a": [{"exists": false}]}, {"b": [{"cidr": "::/0"}]}]}`, `{"b": "::1"}`},
		{`{"a": [{"wildcard": "*x\\**"}, {"suffix": {"equals-ignore-case": "Q"}}]}`, `{"a": ["yx*z", "q", null, 1e400]}`},
	} {
		f.Add(s.pattern, s.event)
	}
	f.Fuzz(func(t *testing.T, pattern, event string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("ParsePattern error %v is not a PatternError", err)
			}
			return
		}
		first, err := p.MatchJSON([]byte(event))
		if err != nil {
			return
		}
		if again, _ := p.MatchJSON([]byte(event)); again != first {
			t.Fatalf("matching %s against %s is not deterministic", pattern, event)
		}
	})
}
