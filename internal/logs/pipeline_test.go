package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an ObjectStore over a map.
type memStore map[string][]byte

func (m memStore) Get(_ context.Context, bucket, key string) (io.ReadCloser, error) {
	b, ok := m[bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("s3://%s/%s: %w", bucket, key, ErrNoObject)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// fakeIndex is a Bulker that keeps ids like a store: create of a known id
// is 409. Reject, when set, decides a status for an item before that.
type fakeIndex struct {
	mu      sync.Mutex
	ids     map[string]int
	bodies  [][]byte
	Reject  func(call, item int, id string) int
	NextErr error
}

func (f *fakeIndex) Bulk(_ context.Context, body []byte) ([]ItemResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[string]int{}
	}
	f.bodies = append(f.bodies, append([]byte(nil), body...))
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	var out []ItemResult
	for i := 0; i+1 < len(lines); i += 2 {
		act := string(lines[i])
		id := act[strings.Index(act, `"_id":"`)+7 : strings.LastIndex(act, `"`)]
		if f.Reject != nil {
			if st := f.Reject(len(f.bodies), i/2, id); st != 0 {
				out = append(out, ItemResult{Status: st, Type: "rejected", Reason: "by the test"})
				continue
			}
		}
		if f.ids[id] > 0 {
			out = append(out, ItemResult{Status: 409, Type: "version_conflict_engine_exception"})
			continue
		}
		f.ids[id]++
		out = append(out, ItemResult{Status: 201})
	}
	return out, nil
}

type memDead struct {
	mu      sync.Mutex
	letters []DeadLetter
}

func (d *memDead) Send(_ context.Context, l []DeadLetter) error {
	d.mu.Lock()
	d.letters = append(d.letters, l...)
	d.mu.Unlock()
	return nil
}

const albKey = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2025/08/14/123456789012_elasticloadbalancing_us-east-1_app.my-lb.50dc6c495c0c9188_20250814T2225Z_10.0.0.1_5xxd2b1k.log.gz"

func albLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		l := strings.Replace(albLine(30), "192.168.131.39:2817", fmt.Sprintf("192.168.1.%d:%d", i%250, 1000+i), 1)
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}

func gz(parts ...[]byte) []byte {
	var out bytes.Buffer
	for _, p := range parts { // one gzip member per part, concatenated
		zw := gzip.NewWriter(&out)
		zw.Write(p)
		zw.Close()
	}
	return out.Bytes()
}

func noSleep(context.Context, time.Duration) error { return nil }

func newTest(store memStore, cfg Config) (*Pipeline, *fakeIndex, *memDead) {
	idx, dead := &fakeIndex{}, &memDead{}
	cfg.Sleep = noSleep
	return New(cfg, store, idx, dead), idx, dead
}

func TestConcatenatedGzipAndRedelivery(t *testing.T) {
	ctx := context.Background()
	store := memStore{"b/" + albKey: gz(albLines(300), albLines(200), albLines(1))}
	p, idx, dead := newTest(store, Config{BulkBytes: 16 << 10})
	res, err := p.ProcessObject(ctx, Object{Bucket: "b", Key: albKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 501 || res.Indexed != 501 || !res.Done || len(dead.letters) != 0 {
		t.Fatalf("first delivery: %+v, dead %v", res, dead.letters)
	}
	if len(idx.bodies) < 3 {
		t.Errorf("%d bulks; bodies should be bounded by BulkBytes", len(idx.bodies))
	}
	for _, b := range idx.bodies {
		if len(b) > 16<<10+4096 {
			t.Errorf("a bulk of %d bytes, over the bound", len(b))
		}
	}
	// A redelivery (an SQS duplicate, or a run killed before its delete)
	// indexes nothing twice.
	res, err = p.ProcessObject(ctx, Object{Bucket: "b", Key: albKey}, nil)
	if err != nil || res.Indexed != 0 || res.Duplicates != 501 {
		t.Fatalf("redelivery: %v %+v", err, res)
	}
	if len(idx.ids) != 501 {
		t.Errorf("%d documents, want 501", len(idx.ids))
	}
}

func TestRetriesOnlyFailedItems(t *testing.T) {
	ctx := context.Background()
	store := memStore{"b/" + albKey: albLines(10)}
	p, idx, dead := newTest(store, Config{})
	// First call: items 1, 4 and 7 throttled, 8 a 503; second call: the
	// first of the four throttled again.
	idx.Reject = func(call, item int, _ string) int {
		switch {
		case call == 1 && (item == 1 || item == 4 || item == 7):
			return 429
		case call == 1 && item == 8:
			return 503
		case call == 2 && item == 0:
			return 429
		}
		return 0
	}
	res, err := p.ProcessObject(ctx, Object{Bucket: "b", Key: albKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed != 10 || res.Retries != 5 || len(dead.letters) != 0 {
		t.Fatalf("%+v dead %v", res, dead.letters)
	}
	if n := bytes.Count(idx.bodies[1], []byte("\n")) / 2; n != 4 {
		t.Errorf("second bulk resent %d items, want only the 4 failed", n)
	}
	if n := bytes.Count(idx.bodies[2], []byte("\n")) / 2; n != 1 {
		t.Errorf("third bulk resent %d items, want 1", n)
	}
}

func TestGivesUpWithoutDropping(t *testing.T) {
	store := memStore{"b/" + albKey: albLines(3)}
	p, idx, dead := newTest(store, Config{MaxAttempts: 3})
	idx.Reject = func(_, item int, _ string) int {
		if item == 0 {
			return 429
		}
		return 0
	}
	_, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey}, nil)
	if err == nil || !strings.Contains(err.Error(), "still failing after 3 attempts") {
		t.Fatalf("error %v", err)
	}
	if len(dead.letters) != 0 {
		t.Errorf("a throttled line was dead-lettered: %v", dead.letters)
	}
	idx.Reject = nil
	res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey}, nil)
	if err != nil || res.Indexed != 1 || res.Duplicates != 2 {
		t.Fatalf("the redelivery after the store recovered: %v %+v", err, res)
	}
}

func TestBadInput(t *testing.T) {
	good := albLines(4)
	lines := bytes.SplitAfter(good, []byte("\n"))
	withBad := bytes.Join([][]byte{lines[0], []byte("this is not a log line\n"), lines[1], []byte(albLine(12) + "\n"), lines[2], lines[3]}, nil)
	full := gz(good)
	for _, tc := range []struct {
		name       string
		key        string
		body       []byte
		missing    bool
		indexed    int64
		deadReason []string
	}{
		{"bad lines go on", albKey, gz(withBad), false, 4, []string{"not an ALB line", "at least 18 fields"}},
		{"truncated gzip", albKey, full[:len(full)-30], false, -1, []string{"truncated or corrupt"}},
		{"binary object", albKey, []byte("\x00\x01\x02\x03binary\x00"), false, 0, []string{"the object is binary"}},
		{"non-ELB key", "photos/cat.jpg", good, false, 0, []string{"not an ELB access-log key"}},
		{"missing object", albKey, nil, true, 0, []string{"does not exist"}},
		{"store refuses a document", albKey, good, false, 3, []string{"the store refused the document: 400"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memStore{}
			if !tc.missing {
				store["b/"+tc.key] = tc.body
			}
			p, idx, dead := newTest(store, Config{})
			if tc.name == "store refuses a document" {
				idx.Reject = func(_, item int, _ string) int {
					if item == 2 {
						return 400
					}
					return 0
				}
			}
			res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: tc.key}, nil)
			if err != nil {
				t.Fatalf("the pipeline must go on: %v", err)
			}
			if tc.indexed >= 0 && res.Indexed != tc.indexed {
				t.Errorf("indexed %d, want %d", res.Indexed, tc.indexed)
			}
			if len(dead.letters) != len(tc.deadReason) {
				t.Fatalf("dead letters %+v, want %d", dead.letters, len(tc.deadReason))
			}
			for i, want := range tc.deadReason {
				if !strings.Contains(dead.letters[i].Reason, want) {
					t.Errorf("dead letter %d: %q, want %q", i, dead.letters[i].Reason, want)
				}
			}
			if tc.name == "bad lines go on" && (dead.letters[0].Offset != int64(len(lines[0])) || dead.letters[0].Line != "this is not a log line") {
				t.Errorf("dead letter without its offset or line: %+v", dead.letters[0])
			}
			if tc.name == "truncated gzip" && res.Indexed+int64(len(idx.ids)) == 0 {
				t.Errorf("nothing before the truncation was indexed")
			}
		})
	}
}

func TestSkipped(t *testing.T) {
	p, _, dead := newTest(memStore{}, Config{})
	res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: "AWSLogs/1/ELBAccessLogTestFile"}, nil)
	if err != nil || res.Skipped == "" || !res.Done || len(dead.letters) != 0 {
		t.Fatalf("%v %+v %v", err, res, dead.letters)
	}
}

// A run told to stop leaves the object at a line boundary; the next run
// from Next indexes the rest, every line once.
func TestContinuation(t *testing.T) {
	store := memStore{"b/" + albKey: gz(albLines(400))}
	p, idx, _ := newTest(store, Config{BulkBytes: 32 << 10})
	calls := 0
	res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey}, func() bool { calls++; return calls == 2 })
	if err != nil || res.Done || res.Next == 0 {
		t.Fatalf("%v %+v", err, res)
	}
	first := res.Indexed
	res, err = p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey, From: res.Next}, nil)
	if err != nil || !res.Done || res.Duplicates != 0 || first+res.Indexed != 400 || len(idx.ids) != 400 {
		t.Fatalf("continuation: %v %+v (first run %d)", err, res, first)
	}
}

var eventTime = time.Date(2025, 8, 14, 22, 25, 1, 123e6, time.UTC)

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []Object
		err        string
	}{
		{"s3 event with an encoded key", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{"key":"my+logs/AWSLogs/a%2Bb%3D.log.gz"}}},{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"logs"},"object":{"key":"x"}}}]}`,
			[]Object{{Bucket: "logs", Key: "my logs/AWSLogs/a+b=.log.gz"}}, ""},
		{"test event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}`, nil, ""},
		{"sns wrapped", `{"Type":"Notification","Message":"{\"Records\":[{\"eventName\":\"ObjectCreated:CompleteMultipartUpload\",\"s3\":{\"bucket\":{\"name\":\"l\"},\"object\":{\"key\":\"k\"}}}]}"}`, []Object{{Bucket: "l", Key: "k"}}, ""},
		{"eventbridge", `{"detail-type":"Object Created","detail":{"bucket":{"name":"l"},"object":{"key":"a b"}}}`, []Object{{Bucket: "l", Key: "a b"}}, ""},
		{"continuation", `{"handover_logs_continuation":{"bucket":"l","key":"k","offset":99}}`, []Object{{Bucket: "l", Key: "k", From: 99}}, ""},
		{"continuation round trip", ContinuationBody(Object{Bucket: "l", Key: "a b", From: 7, EventTime: eventTime}), []Object{{Bucket: "l", Key: "a b", From: 7, EventTime: eventTime}}, ""},
		{"event time", `{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2025-08-14T22:25:01.123Z","s3":{"bucket":{"name":"l"},"object":{"key":"k"}}}]}`,
			[]Object{{Bucket: "l", Key: "k", EventTime: eventTime}}, ""},
		{"bad continuation", `{"handover_logs_continuation":{"bucket":"l","offset":-1}}`, nil, "without bucket, key"},
		{"not json", `hello`, nil, "not JSON"},
		{"other json", `{"a":1}`, nil, "neither an S3 event"},
		{"bad encoding", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"l"},"object":{"key":"%zz"}}}]}`, nil, "not URL-encoded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMessage(tc.body)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%v %v, want %v", got, err, tc.want)
			}
		})
	}
}

// A run that fails part-way says up to where every line is indexed, so a
// caller out of time goes on from there without sending a line twice.
func TestNextAfterAnError(t *testing.T) {
	store := memStore{"b/" + albKey: gz(albLines(400))}
	p, idx, _ := newTest(store, Config{BulkBytes: 32 << 10, MaxAttempts: 1})
	idx.Reject = func(call, _ int, _ string) int {
		if call == 3 {
			return 503
		}
		return 0
	}
	res, err := p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey, From: 0}, nil)
	if err == nil || res.Next == 0 {
		t.Fatalf("%v %+v", err, res)
	}
	idx.Reject = nil
	res, err = p.ProcessObject(context.Background(), Object{Bucket: "b", Key: albKey, From: res.Next}, nil)
	if err != nil || !res.Done || res.Duplicates != 0 || len(idx.ids) != 400 {
		t.Fatalf("from Next: %v %+v, %d ids", err, res, len(idx.ids))
	}
}
