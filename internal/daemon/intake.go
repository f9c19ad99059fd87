package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/handover"
)

// intake receives messages until ctx ends. A failed receive backs off; a
// message whose effect cannot be committed now stays on the queue and comes
// back after its visibility timeout.
func (d *Daemon) intake(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		out, err := d.queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(d.cfg.QueueURL), MaxNumberOfMessages: 10,
			WaitTimeSeconds: int32(d.cfg.WaitTime / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameSentTimestamp, sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.metrics.message("receive-error")
			d.log.Warn("receiving from the events queue", "queue", d.cfg.QueueURL, "err", err, "retry-in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		d.handleBatch(ctx, out.Messages)
	}
}

// handleBatch handles the messages of one receive at once. Events are
// hints whose effects are idempotent compare-and-sets, and a standard queue
// keeps no order anyway, so nothing depends on handling them one after
// another; at once, their ledger writes share a group commit (one fsync for
// the batch instead of one per message), which is what bounds a single
// intake on a disk-backed ledger.
func (d *Daemon) handleBatch(ctx context.Context, ms []sqstypes.Message) {
	if len(ms) == 1 {
		d.handle(ctx, ms[0])
		return
	}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { d.handle(ctx, m) })
	}
	wg.Wait()
}

// handle processes one message and deletes it only once its effect is
// committed (or it is known poison and safely in the dead-letter queue).
func (d *Daemon) handle(ctx context.Context, m sqstypes.Message) {
	now := d.clk.Now()
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		lag := now.Sub(time.UnixMilli(ms)).Seconds()
		d.metrics.lag(lag)
		d.mu.Lock()
		d.status.lag = lag
		d.mu.Unlock()
	}
	log := d.log.With("message-id", aws.ToString(m.MessageId))
	ids, err := d.eng.HandleMessage(ctx, aws.ToString(m.Body))
	var poison *handover.PoisonError
	switch {
	case errors.As(err, &poison):
		d.metrics.message("poison")
		d.mu.Lock()
		d.status.poison++
		d.mu.Unlock()
		if err := d.deadLetter(ctx, m, poison.Reason.Error()); err != nil {
			log.Error("poison message left on the queue", "reason", poison.Reason, "err", err)
			return
		}
		log.Warn("poison message moved to the dead-letter queue", "reason", poison.Reason, "dead-letter-queue", d.cfg.DeadLetterURL)
	case err != nil:
		d.metrics.message("retry")
		log.Warn("message not processed; it will be redelivered", "err", err)
		return
	default:
		d.metrics.message("handled")
		d.mu.Lock()
		d.status.handled++
		d.status.lastMessage = now
		d.mu.Unlock()
	}
	// Deleting is best effort: a message that comes back is a duplicate
	// the ledger recognises.
	if _, err := d.queue.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(d.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil && ctx.Err() == nil {
		log.Warn("deleting a processed message", "err", err)
	}
	for _, id := range ids {
		d.kick(id)
	}
}

// deadLetter copies a poison message, with the reason, to the dead-letter
// queue.
func (d *Daemon) deadLetter(ctx context.Context, m sqstypes.Message, reason string) error {
	return SendToDeadLetter(ctx, d.queue, d.cfg.DeadLetterURL, aws.ToString(m.Body), aws.ToString(m.MessageId), reason)
}

// Sender is the part of *sqs.Client that sends.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// SendToDeadLetter copies a poison message body to the dead-letter queue at
// url, with the reason and the original message id as attributes. The
// Lambda handler shares it, so both deployments dead-letter alike.
func SendToDeadLetter(ctx context.Context, q Sender, url, body, messageID, reason string) error {
	if url == "" {
		return errors.New("no dead-letter queue: give --dead-letter-queue-url (HANDOVER_DEAD_LETTER_QUEUE_URL) or a redrive policy on the queue")
	}
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	_, err := q.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"handover-reason":     {DataType: aws.String("String"), StringValue: aws.String(reason)},
			"handover-message-id": {DataType: aws.String("String"), StringValue: aws.String(messageID)},
		},
	})
	if err != nil {
		return fmt.Errorf("sending to dead-letter queue %s: %w", url, err)
	}
	return nil
}

// discoverDeadLetter reads the queue's redrive policy for its dead-letter
// queue. Failing that there is none, which is logged.
func (d *Daemon) discoverDeadLetter(ctx context.Context) string {
	u, err := FindDeadLetter(ctx, d.queue, d.cfg.QueueURL)
	if err != nil {
		d.log.Warn("poison messages stay on the events queue until they expire", "queue", d.cfg.QueueURL, "err", err)
	}
	return u
}

// Redrive is the part of *sqs.Client FindDeadLetter reads.
type Redrive interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

// FindDeadLetter returns the URL of the dead-letter queue queueURL's
// redrive policy names.
func FindDeadLetter(ctx context.Context, q Redrive, queueURL string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", fmt.Errorf("reading the redrive policy of %s: %w", queueURL, err)
	}
	arn := deadLetterARN(out.Attributes[string(sqstypes.QueueAttributeNameRedrivePolicy)])
	if arn == "" {
		return "", fmt.Errorf("queue %s has no redrive policy naming a dead-letter queue", queueURL)
	}
	name := arn[strings.LastIndex(arn, ":")+1:]
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("finding the dead-letter queue %s: %w", arn, err)
	}
	return aws.ToString(u.QueueUrl), nil
}
