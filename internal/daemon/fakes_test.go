package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/handover"
)

// fakeQueue is an in-memory queue: ReceiveMessage hands out what Push
// queued (once each), and records deletes and sends.
type fakeQueue struct {
	mu       sync.Mutex
	pending  []sqstypes.Message
	deleted  []string
	sent     []*sqs.SendMessageInput
	redrive  string
	NextErr  error
	receives int
}

var _ Queue = (*fakeQueue)(nil)

func (q *fakeQueue) Push(id, body string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, sqstypes.Message{MessageId: aws.String(id), Body: aws.String(body), ReceiptHandle: aws.String("rh-" + id),
		Attributes: map[string]string{"SentTimestamp": "1700000000000"}})
}

func (q *fakeQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	q.receives++
	if err := q.NextErr; err != nil {
		q.NextErr = nil
		q.mu.Unlock()
		return nil, err
	}
	msgs := q.pending
	q.pending = nil
	q.mu.Unlock()
	if len(msgs) == 0 {
		select { // a short long-poll
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return &sqs.ReceiveMessageOutput{Messages: msgs}, nil
}

func (q *fakeQueue) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleted = append(q.deleted, aws.ToString(in.ReceiptHandle))
	return &sqs.DeleteMessageOutput{}, nil
}

func (q *fakeQueue) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sent = append(q.sent, in)
	return &sqs.SendMessageOutput{MessageId: aws.String(fmt.Sprint(len(q.sent)))}, nil
}

func (q *fakeQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"RedrivePolicy": q.redrive}}, nil
}

func (q *fakeQueue) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String("https://sqs.local/000000000000/" + aws.ToString(in.QueueName))}, nil
}

// fakeEngine answers HandleMessage from a table keyed by body.
type fakeEngine struct {
	mu       sync.Mutex
	answers  map[string]error
	ids      map[string][]string
	advanced []string
	recons   int
}

var _ Engine = (*fakeEngine)(nil)

func (e *fakeEngine) HandleMessage(_ context.Context, body string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ids[body], e.answers[body]
}

func (e *fakeEngine) Advance(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanced = append(e.advanced, id)
	return nil
}

func (e *fakeEngine) Reconcile(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recons++
	return nil
}

func (e *fakeEngine) Sweep(context.Context) (handover.SweepResult, error) {
	return handover.SweepResult{}, nil
}

var errLedgerDown = errors.New("ledger down")
