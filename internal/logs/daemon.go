package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Continuation is the message a run that stopped early leaves for the
// rest of an object.
type Continuation struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Offset int64  `json:"offset"`
	// EventTime is the original notification's, so lag is measured from
	// the object's arrival, not from the hand-over.
	EventTime time.Time `json:"event_time,omitzero"`
}

// ContinuationBody is the queue message that continues o from its From.
func ContinuationBody(o Object) string {
	b, _ := json.Marshal(map[string]Continuation{"handover_logs_continuation": {Bucket: o.Bucket, Key: o.Key, Offset: o.From, EventTime: o.EventTime}})
	return string(b)
}

// ParseMessage reads the objects a queue message names: an S3 event
// notification (its keys URL-decoded, + being a space), the same wrapped
// in an SNS notification, an EventBridge "Object Created" event, or a
// continuation. S3's test event names none. Anything else is an error
// saying what it is not.
func ParseMessage(body string) ([]Object, error) {
	var m struct {
		Records []struct {
			EventName string    `json:"eventName"`
			EventTime time.Time `json:"eventTime"`
			S3        struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
		Event        string          `json:"Event"`
		Type         string          `json:"Type"`
		Message      string          `json:"Message"`
		DetailType   string          `json:"detail-type"`
		Time         time.Time       `json:"time"`
		Detail       json.RawMessage `json:"detail"`
		Continuation *Continuation   `json:"handover_logs_continuation"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, fmt.Errorf("the message is not JSON: %v", err)
	}
	switch {
	case m.Continuation != nil:
		c := m.Continuation
		if c.Bucket == "" || c.Key == "" || c.Offset < 0 {
			return nil, fmt.Errorf("a continuation without bucket, key or a valid offset: %+v", *c)
		}
		return []Object{{Bucket: c.Bucket, Key: c.Key, From: c.Offset, EventTime: c.EventTime}}, nil
	case m.Event == "s3:TestEvent":
		return nil, nil
	case m.Type == "Notification" && m.Message != "":
		return ParseMessage(m.Message)
	case m.DetailType == "Object Created":
		var d struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		}
		if err := json.Unmarshal(m.Detail, &d); err != nil || d.Bucket.Name == "" {
			return nil, errors.New("an EventBridge Object Created event without bucket and key")
		}
		return []Object{{Bucket: d.Bucket.Name, Key: d.Object.Key, EventTime: m.Time}}, nil
	case m.Records != nil:
		var out []Object
		for _, r := range m.Records {
			if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
				continue
			}
			key, err := url.QueryUnescape(r.S3.Object.Key)
			if err != nil {
				return nil, fmt.Errorf("the record's key %q is not URL-encoded as S3 encodes keys: %v", r.S3.Object.Key, err)
			}
			out = append(out, Object{Bucket: r.S3.Bucket.Name, Key: key, EventTime: r.EventTime})
		}
		return out, nil
	}
	return nil, errors.New("the message is neither an S3 event notification, an SNS-wrapped one, an EventBridge Object Created event nor a continuation")
}

// DaemonConfig configures Run.
type DaemonConfig struct {
	QueueURL string
	// Workers is how many messages are processed at once (default 2).
	Workers int
	// Visibility is the queue's visibility timeout; 0 reads it from the
	// queue. It is extended at half its length while a message is worked.
	Visibility time.Duration
	// WaitTime is the long-poll wait (default 20s).
	WaitTime time.Duration
	// Once stops Run when the queue is found empty (tests, backfills).
	Once bool
}

// Run consumes S3 notifications from the queue until ctx ends: each
// message's objects are indexed, and only then is the message deleted.
// A message that fails stays for redelivery (and the queue's redrive
// policy); one that is not a notification is dead-lettered and deleted.
func (p *Pipeline) Run(ctx context.Context, q SQSAPI, cfg DaemonConfig) error {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = 20 * time.Second
	}
	if cfg.Visibility <= 0 {
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(cfg.QueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout}})
		if err != nil {
			return fmt.Errorf("reading the visibility timeout of %s (does the queue exist?): %w", cfg.QueueURL, err)
		}
		s, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)])
		cfg.Visibility = time.Duration(max(s, 1)) * time.Second
	}
	log := p.cfg.Logger
	log.Info("log pipeline consuming", "queue-url", cfg.QueueURL, "visibility", cfg.Visibility, "workers", cfg.Workers)
	for ctx.Err() == nil {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(cfg.QueueURL), MaxNumberOfMessages: int32(min(cfg.Workers, 10)),
			WaitTimeSeconds: int32(cfg.WaitTime / time.Second), VisibilityTimeout: int32(cfg.Visibility / time.Second)})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("receiving from the queue failed", "queue-url", cfg.QueueURL, "err", err)
			if err := p.cfg.Sleep(ctx, time.Second); err != nil {
				break
			}
			continue
		}
		if len(out.Messages) == 0 && cfg.Once {
			return nil
		}
		var wg sync.WaitGroup
		for _, m := range out.Messages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.handle(ctx, q, cfg, m)
			}()
		}
		wg.Wait()
	}
	return nil
}

func (p *Pipeline) handle(ctx context.Context, q SQSAPI, cfg DaemonConfig, m sqstypes.Message) {
	log := p.cfg.Logger.With("message-id", aws.ToString(m.MessageId))
	// Keep the message invisible while it is worked: a long file must not
	// be handed to a second consumer half-way.
	workCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.Visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-workCtx.Done():
				return
			case <-t.C:
				_, err := q.ChangeMessageVisibility(workCtx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(cfg.QueueURL),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(cfg.Visibility / time.Second)})
				if err != nil && workCtx.Err() == nil {
					log.Warn("extending the message's visibility failed", "err", err)
				}
			}
		}
	}()
	_, err := p.indexMessage(workCtx, aws.ToString(m.Body), aws.ToString(m.MessageId), nil)
	stop()
	wg.Wait()
	if err != nil {
		log.Error("log message failed; it will be delivered again", "err", err)
		return
	}
	p.deleteMessage(q, cfg, m, log)
}

// indexMessage indexes the objects a queue message (or a direct S3
// event) names, in order. A body that is not a log notification is
// dead-lettered, and done. When stop says so, rest is what is left: the
// object being worked from its next line, then those not begun. An error
// means the message must come again (what was indexed answers 409 then);
// rest then says what was left when it came, for a caller out of time.
func (p *Pipeline) indexMessage(ctx context.Context, body, messageID string, stop func() bool) (rest []Object, err error) {
	log := p.cfg.Logger.With("message-id", messageID)
	objs, err := ParseMessage(body)
	if err != nil {
		letter := DeadLetter{Offset: -1, Cause: CauseNotNotification, Reason: "not a log notification: " + err.Error(), Line: string(clipBytes([]byte(body), 4096))}
		if err := p.sendDead(ctx, []DeadLetter{letter}); err != nil {
			return nil, fmt.Errorf("dead-lettering message %s, which is not a log notification: %w", messageID, err)
		}
		log.Warn("message dead-lettered", "reason", letter.Reason)
		return nil, nil
	}
	for i, o := range objs {
		if i > 0 && stop != nil && stop() {
			return objs[i:], nil
		}
		res, err := p.ProcessObject(ctx, o, stop)
		if err != nil {
			o.From = res.Next
			return append([]Object{o}, objs[i+1:]...), err
		}
		if !res.Done {
			log.Info("log object stopped before its end", "bucket", o.Bucket, "key", o.Key, "next", res.Next, "lines", res.Lines, "indexed", res.Indexed)
			o.From = res.Next
			return append([]Object{o}, objs[i+1:]...), nil
		}
		log.Info("log object done", "bucket", o.Bucket, "key", o.Key, "format", res.Format, "lines", res.Lines, "indexed", res.Indexed,
			"duplicates", res.Duplicates, "dead-lettered", res.DeadLettered, "retries", res.Retries, "skipped", res.Skipped)
	}
	return nil, nil
}

func (p *Pipeline) deleteMessage(q SQSAPI, cfg DaemonConfig, m sqstypes.Message, log interface {
	Warn(string, ...any)
}) {
	// Deleting must finish even when the daemon is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(cfg.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		log.Warn("deleting a done message failed; it will come back and be found indexed", "err", err)
	}
}
