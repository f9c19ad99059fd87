package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/logs"
	"github.com/handover-dev/handover/internal/logs/logstest"
)

// slowBulks makes each bulk take a minute of the fake clock, so an
// invocation's deadline comes after a known number of bulks, on any
// machine.
type slowBulks struct {
	logs.Bulker
	clk   *clock.Fake
	calls atomic.Int64
}

func (s *slowBulks) Bulk(ctx context.Context, body []byte) ([]logs.ItemResult, error) {
	s.calls.Add(1)
	s.clk.Advance(time.Minute)
	return s.Bulker.Bulk(ctx, body)
}

type lambdaFixture struct {
	env   *logstest.Env
	clk   *clock.Fake
	bulks *slowBulks
	p     *logs.Pipeline
	h     *logs.Lambda
	emf   *bytes.Buffer // the invocations' Embedded Metric Format lines
	// invocations counts invoke's calls.
	invocations int
}

func newLambdaFixture(t *testing.T) *lambdaFixture {
	env := logstest.Start(t, logstest.Options{Visibility: time.Second})
	clk := clock.NewFake(time.Now())
	bulks := &slowBulks{Bulker: env.Store, clk: clk}
	out := &bytes.Buffer{}
	emf := &logs.EMF{W: out, Function: "elb-logs", Clock: clk}
	p := logs.New(logs.Config{BulkBytes: 16 << 10, MaxAttempts: 2, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Observer: emf},
		logs.S3Store{Client: env.S3}, bulks, logs.SQSDeadLetters{Client: env.SQS, QueueURL: env.DeadURL})
	h := logs.NewLambda(p, env.SQS, "")
	h.Clock, h.Margin, h.EMF = clk, 2*time.Minute, emf
	return &lambdaFixture{env: env, clk: clk, bulks: bulks, p: p, h: h, emf: out}
}

// invoke calls the handler as Lambda does: the payload as JSON, under a
// deadline five (fake) minutes away: less than the two minutes of margin
// is left after the fourth bulk.
func (f *lambdaFixture) invoke(t *testing.T, payload any) (any, error) {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), f.clk.Now().Add(5*time.Minute))
	defer cancel()
	f.invocations++
	return f.h.Invoke(ctx, b)
}

// drain is the event source mapping: batches of up to ten messages of the
// queue, the failures left for redelivery and the rest deleted, until the
// queue is empty. It returns the records handled and the failures.
func (f *lambdaFixture) drain(t *testing.T) (records, failures int) {
	t.Helper()
	ctx := context.Background()
	for range 200 {
		if f.env.Depth(t, f.env.QueueURL) == 0 {
			return records, failures
		}
		msgs := f.env.Receive(t, f.env.QueueURL, 10, time.Second)
		if len(msgs) == 0 {
			continue // failed ones come back after the visibility timeout
		}
		ev := events.SQSEvent{}
		for _, m := range msgs {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), EventSource: "aws:sqs", EventSourceARN: logstest.QueueARN, AWSRegion: "us-east-1"})
		}
		out, err := f.invoke(t, ev)
		if err != nil {
			t.Fatalf("batch invocation: %v", err)
		}
		resp := out.(events.SQSEventResponse)
		failed := map[string]bool{}
		for _, fl := range resp.BatchItemFailures {
			failed[fl.ItemIdentifier] = true
		}
		records += len(msgs)
		failures += len(failed)
		for _, m := range msgs {
			if !failed[aws.ToString(m.MessageId)] {
				if _, err := f.env.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(f.env.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Fatalf("the queue still holds %d messages after 200 batches", f.env.Depth(t, f.env.QueueURL))
	return
}

func (f *lambdaFixture) continuations(t *testing.T) int {
	t.Helper()
	n := 0
	for _, m := range f.env.Receive(t, f.env.QueueURL, 10, 0) {
		if strings.Contains(aws.ToString(m.Body), "handover_logs_continuation") {
			n++
		}
		// Back to the queue at once, for drain.
		_, _ = f.env.SQS.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(f.env.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	return n
}

// Through SQS: S3 notifications of a long ALB file, a Classic file and
// S3's test event, plus a message that is no notification, in batches as
// the event source mapping delivers them. The deadline comes after four
// bulks, so the long file is finished by continuations; the store fails
// the first two bulks, so one record is reported in batchItemFailures and
// comes again. Every line is indexed exactly once, the poison message is
// the only dead letter, and the queue ends empty.
func TestLambdaSQSBatches(t *testing.T) {
	f := newLambdaFixture(t)
	const albN, classicN = 400, 50
	f.env.Put(t, logstest.ALBKey("long"), logstest.Gzip(logstest.ALBLines(250), logstest.ALBLines(albN-250)))
	f.env.Put(t, logstest.ClassicKey("classic"), logstest.ClassicLines(classicN))
	if _, err := f.env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(f.env.QueueURL), MessageBody: aws.String("not a notification")}); err != nil {
		t.Fatal(err)
	}
	f.env.Fault(t, `{"service":"es","action":"Bulk","kind":"error","count":2}`)

	records, failures := f.drain(t)
	if got := f.env.Count(t); got != albN+classicN {
		t.Fatalf("%d documents, want %d", got, albN+classicN)
	}
	if d := f.p.Stats.Duplicates.Load(); d != 0 {
		t.Errorf("%d lines were sent twice: a continuation did not start where its run stopped", d)
	}
	if failures != 1 {
		t.Errorf("%d records reported failed, want 1 (the one whose bulks the store failed)", failures)
	}
	// 3 notifications (S3's test event among them) + 1 poison + the
	// failed record again + at least four continuations of a file of ~30
	// bulks at four bulks an invocation.
	if records < 3+1+1+4 {
		t.Errorf("%d records handled: the long file was not continued", records)
	}
	dead := f.env.Receive(t, f.env.DeadURL, 10, 0)
	if len(dead) != 1 || !strings.Contains(aws.ToString(dead[0].Body), "not a log notification") {
		t.Errorf("dead letters: %d, want the poison message alone", len(dead))
	}

	// The invocations' metric lines (CloudWatch Embedded Metric Format):
	// one per invocation, adding up to what was done.
	sum := map[string]float64{}
	lines, lags := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(f.emf.String()), "\n") {
		var doc struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Namespace string
					Metrics   []struct{ Name, Unit string }
				}
			} `json:"_aws"`
			FunctionName string
			Lag          []float64
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil || len(doc.AWS.CloudWatchMetrics) != 1 || doc.FunctionName != "elb-logs" {
			t.Fatalf("not an EMF line of this function: %s (%v)", line, err)
		}
		var members map[string]any
		_ = json.Unmarshal([]byte(line), &members)
		for _, m := range doc.AWS.CloudWatchMetrics[0].Metrics {
			if v, ok := members[m.Name].(float64); ok {
				sum[m.Name] += v
			}
		}
		if _, counts := members["Indexed"]; counts {
			lines++
		}
		lags += len(doc.Lag)
	}
	if lines != f.invocations {
		t.Errorf("%d EMF lines with counts for %d invocations", lines, f.invocations)
	}
	if sum["Indexed"] != albN+classicN || sum["Duplicates"] != 0 || sum["DeadLetters"] != 1 {
		t.Errorf("EMF totals %v: want %d indexed, 0 duplicates, 1 dead letter", sum, albN+classicN)
	}
	if lags != 2 {
		t.Errorf("%d lags reported, want 2 (the two log files, once each when finished)", lags)
	}
}

// Direct: the S3 event as S3 delivers it to a function. The run stops
// before its deadline and hands the rest of the file to the queue; a
// second event's object meets a store that keeps failing, and is handed
// to the queue from where it got to. The queue's records then finish
// both, each line once.
func TestLambdaDirectS3Events(t *testing.T) {
	f := newLambdaFixture(t)
	f.h.QueueURL = f.env.QueueURL
	const n = 400
	f.env.Put(t, logstest.ALBKey("direct"), logstest.Gzip(logstest.ALBLines(n)))
	f.env.Put(t, logstest.ALBKey("second"), logstest.Gzip(logstest.ALBLines(100)))
	// The bucket's notifications, taken off the queue: the same event
	// records S3 gives a function it invokes.
	var s3events []string
	for len(s3events) < 2 {
		for _, m := range f.env.Receive(t, f.env.QueueURL, 10, time.Second) {
			if body := aws.ToString(m.Body); strings.Contains(body, `"aws:s3"`) {
				s3events = append(s3events, body)
			}
			if _, err := f.env.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.env.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}

	out, err := f.invoke(t, json.RawMessage(s3events[0]))
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(logs.DirectResult); r.Objects != 1 || r.Continued != 1 {
		t.Fatalf("first event: %+v, want its object continued", r)
	}
	if got := f.env.Count(t); got == 0 || got >= n {
		t.Fatalf("%d documents after the first invocation; it should have stopped part-way through %d", got, n)
	}
	if c := f.continuations(t); c != 1 {
		t.Fatalf("%d continuation messages on the queue, want 1", c)
	}

	f.env.Fault(t, `{"service":"es","action":"Bulk","kind":"error","count":2}`)
	out, err = f.invoke(t, json.RawMessage(s3events[1]))
	if err != nil {
		t.Fatal(err)
	}
	if r := out.(logs.DirectResult); r.Continued != 1 {
		t.Fatalf("second event with the store failing: %+v, want its object handed on", r)
	}

	f.drain(t)
	if got := f.env.Count(t); got != n+100 {
		t.Fatalf("%d documents, want %d", got, n+100)
	}
	if d := f.p.Stats.Duplicates.Load(); d != 0 {
		t.Errorf("%d lines were sent twice", d)
	}
	if d := f.env.Depth(t, f.env.DeadURL); d != 0 {
		t.Errorf("%d dead letters", d)
	}
}

// Bad invocations are errors that say what was expected.
func TestLambdaBadPayloads(t *testing.T) {
	f := newLambdaFixture(t)
	for _, tc := range []struct{ payload, want string }{
		{`hello`, "not JSON"},
		{`{"source":"aws.events"}`, "expected an SQS batch of S3 notifications"},
		{`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`, "not URL-encoded"},
	} {
		if _, err := f.h.Invoke(context.Background(), json.RawMessage(tc.payload)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.payload, err, tc.want)
		}
	}
	// A direct event needing a continuation with no queue configured
	// fails, so Lambda retries it, rather than dropping the rest.
	f.env.Put(t, logstest.ALBKey("noqueue"), logstest.Gzip(logstest.ALBLines(2000)))
	ev := `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"my-logs"},"object":{"key":"` + logstest.ALBKey("noqueue") + `"}}}]}`
	if _, err := f.invoke(t, json.RawMessage(ev)); err == nil || !strings.Contains(err.Error(), "HANDOVER_QUEUE_URL") {
		t.Errorf("direct event without a continuation queue: %v", err)
	}
}
