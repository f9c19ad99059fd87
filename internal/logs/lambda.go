package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/clock"
)

// Lambda is the pipeline as an AWS Lambda function, invoked by S3 event
// notifications directly or through an SQS queue (an event source
// mapping with ReportBatchItemFailures).
//
// It must never let a record out of batchItemFailures (so Lambda deletes
// it), nor return from a direct event, before every line the record names
// is indexed or dead-lettered, or what is left of it is in a continuation
// message on the queue.
type Lambda struct {
	p *Pipeline
	q SQSAPI
	// QueueURL receives continuations: the rest of a file, and the
	// records a batch had no time for. Empty: an SQS record's own queue
	// (direct S3 events then cannot be continued, and fail).
	QueueURL string
	// Margin: once the invocation has less than this left, it stops after
	// the bulk in flight and hands the rest on. Work itself ends at half
	// the margin before the deadline, leaving the other half to send the
	// continuation and answer.
	Margin time.Duration
	Clock  clock.Clock
	// EMF, when set, gets one Embedded Metric Format line per invocation
	// (it must also be the pipeline's Observer, for lags and causes).
	EMF *EMF

	mu   sync.Mutex
	urls map[string]string // queue ARN → URL
}

// NewLambda returns the handler; q sends the continuations.
func NewLambda(p *Pipeline, q SQSAPI, queueURL string) *Lambda {
	return &Lambda{p: p, q: q, QueueURL: queueURL, Margin: 30 * time.Second, Clock: clock.Real{}, urls: map[string]string{}}
}

// DirectResult answers a direct S3 invocation.
type DirectResult struct {
	Objects   int `json:"objects"`
	Continued int `json:"continued"`
}

// Invoke handles one invocation: an SQS batch (answered with
// batchItemFailures) or an S3 event notification. Any other payload is an
// error saying what was expected.
func (l *Lambda) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	if l.EMF != nil {
		// Invocations of one function instance never overlap, so the
		// totals' change is this invocation's.
		before := l.p.Stats.Snapshot()
		defer func() {
			if err := l.EMF.Emit(before, l.p.Stats.Snapshot()); err != nil {
				l.p.cfg.Logger.Warn("invocation metrics lost", "err", err)
			}
		}()
	}
	return l.invoke(ctx, payload)
}

func (l *Lambda) invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("invocation payload is not JSON: %w", err)
	}
	source := ""
	if len(probe.Records) > 0 {
		source = probe.Records[0].EventSource
	}
	switch source {
	case "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decoding the SQS batch: %w", err)
		}
		return l.Batch(ctx, ev), nil
	case "aws:s3":
		return l.Direct(ctx, payload)
	}
	return nil, errors.New("unrecognised invocation: expected an SQS batch of S3 notifications (eventSource aws:sqs) or an S3 event notification (eventSource aws:s3)")
}

// clocks returns the context work runs under (ending half the margin
// before the deadline) and the stop hook (true once less than the margin
// is left).
func (l *Lambda) clocks(ctx context.Context) (context.Context, context.CancelFunc, func() bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		work, cancel := context.WithCancel(ctx)
		return work, cancel, func() bool { return false }
	}
	work, cancel := context.WithDeadline(ctx, dl.Add(-l.Margin/2))
	return work, cancel, func() bool { return dl.Sub(l.Clock.Now()) < l.Margin }
}

// Batch indexes each record's objects in turn and reports the records to
// redeliver: those that failed and whose rest could not be handed on.
func (l *Lambda) Batch(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	work, cancel, stop := l.clocks(ctx)
	defer cancel()
	log := l.p.cfg.Logger
	for i, r := range ev.Records {
		fail := func() {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
		if i > 0 && stop() {
			// No time for this record: a new message carries it, as it
			// came, so its receive count starts again.
			if err := l.send(ctx, r.EventSourceARN, []string{r.Body}); err != nil {
				log.Warn("record left for redelivery: no time for it and handing it on failed", "message-id", r.MessageId, "err", err)
				fail()
			}
			continue
		}
		rest, err := l.p.indexMessage(work, r.Body, r.MessageId, stop)
		// Out of time inside a bulk: the lines before rest are indexed,
		// so the rest is handed on as after a stop.
		if err != nil && (rest == nil || work.Err() == nil || ctx.Err() != nil) {
			log.Warn("record not indexed; it will be redelivered", "message-id", r.MessageId, "err", err)
			fail()
			continue
		}
		if len(rest) > 0 {
			if err := l.send(ctx, r.EventSourceARN, continuations(rest)); err != nil {
				log.Warn("record left for redelivery: handing its rest on failed (what is indexed will answer 409)", "message-id", r.MessageId, "err", err)
				fail()
				continue
			}
			log.Info("rest of the record handed to a continuation", "message-id", r.MessageId, "bucket", rest[0].Bucket, "key", rest[0].Key, "offset", rest[0].From, "objects", len(rest))
		}
	}
	return resp
}

// Direct indexes the objects of an S3 event notification. What it cannot
// finish, out of time or because the store failed, goes to the queue as
// continuations; only if that fails does the invocation fail (and Lambda
// retry it).
func (l *Lambda) Direct(ctx context.Context, payload json.RawMessage) (DirectResult, error) {
	objs, err := ParseMessage(string(payload))
	if err != nil {
		return DirectResult{}, fmt.Errorf("decoding the S3 event: %w", err)
	}
	res := DirectResult{Objects: len(objs)}
	work, cancel, stop := l.clocks(ctx)
	defer cancel()
	for i, o := range objs {
		if i > 0 && stop() {
			return res, l.handOn(ctx, objs[i:], &res)
		}
		r, err := l.p.ProcessObject(work, o, stop)
		switch {
		case err != nil:
			// Indexed lines stay indexed; the queue's redrive policy
			// bounds how often the rest is tried.
			l.p.cfg.Logger.Warn("log object failed; handing it to the queue", "bucket", o.Bucket, "key", o.Key, "offset", r.Next, "err", err)
			o.From = r.Next
			return res, l.handOn(ctx, append([]Object{o}, objs[i+1:]...), &res)
		case !r.Done:
			o.From = r.Next
			return res, l.handOn(ctx, append([]Object{o}, objs[i+1:]...), &res)
		}
	}
	return res, nil
}

func (l *Lambda) handOn(ctx context.Context, rest []Object, res *DirectResult) error {
	if err := l.send(ctx, "", continuations(rest)); err != nil {
		return fmt.Errorf("handing %d objects on from s3://%s/%s at byte %d: %w", len(rest), rest[0].Bucket, rest[0].Key, rest[0].From, err)
	}
	res.Continued = len(rest)
	l.p.cfg.Logger.Info("rest of the event handed to a continuation", "bucket", rest[0].Bucket, "key", rest[0].Key, "offset", rest[0].From, "objects", len(rest))
	return nil
}

// continuations are the message bodies that carry objs on.
func continuations(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = ContinuationBody(o)
	}
	return out
}

// send puts bodies on the continuation queue: QueueURL, or the queue of
// sourceARN. Every one must be accepted.
func (l *Lambda) send(ctx context.Context, sourceARN string, bodies []string) error {
	url, err := l.queueURL(ctx, sourceARN)
	if err != nil {
		return err
	}
	for i := 0; i < len(bodies); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, b := range bodies[i:min(i+10, len(bodies))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(b)})
		}
		out, err := l.q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return fmt.Errorf("sending continuations to %s: %w", url, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("sending continuations to %s: %d refused (%s: %s)", url, len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

func (l *Lambda) queueURL(ctx context.Context, sourceARN string) (string, error) {
	if l.QueueURL != "" {
		return l.QueueURL, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.urls[sourceARN]; ok {
		return u, nil
	}
	// arn:aws:sqs:REGION:ACCOUNT:NAME
	parts := strings.Split(sourceARN, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", errors.New("no queue for continuations: set HANDOVER_QUEUE_URL (--queue-url), which direct S3 invocations need")
	}
	out, err := l.q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("finding the URL of %s for continuations: %w", sourceARN, err)
	}
	l.urls[sourceARN] = aws.ToString(out.QueueUrl)
	return l.urls[sourceARN], nil
}
