package lambdahandler

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/handover"
)

// fakeEngine answers HandleMessage from a table keyed by body.
type fakeEngine struct {
	mu       sync.Mutex
	answers  map[string]error
	ids      map[string][]string
	advanced []string
	recons   int
}

func (e *fakeEngine) HandleMessage(_ context.Context, body string) ([]string, error) {
	return e.ids[body], e.answers[body]
}
func (e *fakeEngine) Advance(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanced = append(e.advanced, id)
	return nil
}
func (e *fakeEngine) Reconcile(context.Context) error {
	e.recons++
	return errors.New("group g: throttled")
}
func (e *fakeEngine) Sweep(context.Context) (handover.SweepResult, error) {
	return handover.SweepResult{DeletedVolumes: []string{"vol-1"}}, nil
}

type fakeSender struct {
	sent    []*sqs.SendMessageInput
	NextErr error
}

func (s *fakeSender) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if s.NextErr != nil {
		return nil, s.NextErr
	}
	s.sent = append(s.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

func batch(bodies ...string) events.SQSEvent {
	var ev events.SQSEvent
	for i, b := range bodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "m" + string(rune('1'+i)), Body: b, EventSource: "aws:sqs"})
	}
	return ev
}

func TestBatch(t *testing.T) {
	poison := &handover.PoisonError{Reason: errors.New("launch event without a token")}
	tests := []struct {
		name         string
		dlqURL       string
		sendErr      error
		wantFailures []string
		wantSent     int
		wantAdvanced []string
	}{
		{name: "dead-letter queue", dlqURL: "https://sqs/dlq", wantFailures: []string{"m2"}, wantSent: 1, wantAdvanced: []string{"mig-a"}},
		{name: "no dead-letter queue", wantFailures: []string{"m2", "m3"}, wantAdvanced: []string{"mig-a"}},
		{name: "dead-letter queue failing", dlqURL: "https://sqs/dlq", sendErr: errors.New("AccessDenied"), wantFailures: []string{"m2", "m3"}, wantAdvanced: []string{"mig-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := &fakeEngine{
				answers: map[string]error{"ledger-down": errors.New("ledger down"), "poison": poison},
				ids:     map[string][]string{"ok": {"mig-a"}, "dup": {"mig-a"}},
			}
			s := &fakeSender{NextErr: tt.sendErr}
			h := New(eng, s, tt.dlqURL, nil)
			resp := h.Batch(t.Context(), batch("ok", "ledger-down", "poison", "dup"))
			var got []string
			for _, f := range resp.BatchItemFailures {
				got = append(got, f.ItemIdentifier)
			}
			if !slices.Equal(got, tt.wantFailures) {
				t.Errorf("batchItemFailures = %v, want %v", got, tt.wantFailures)
			}
			if len(s.sent) != tt.wantSent {
				t.Fatalf("dead-lettered %d, want %d", len(s.sent), tt.wantSent)
			}
			if tt.wantSent > 0 && (aws.ToString(s.sent[0].MessageBody) != "poison" || aws.ToString(s.sent[0].MessageAttributes["handover-reason"].StringValue) != poison.Reason.Error()) {
				t.Errorf("dead-lettered %+v", s.sent[0])
			}
			if !slices.Equal(eng.advanced, tt.wantAdvanced) {
				t.Errorf("advanced %v, want %v (once each)", eng.advanced, tt.wantAdvanced)
			}
		})
	}
}

// TestBatchLeavesAdvancingWhenTimeIsShort: near the invocation's deadline
// the handler answers instead of advancing.
func TestBatchLeavesAdvancingWhenTimeIsShort(t *testing.T) {
	eng := &fakeEngine{ids: map[string][]string{"ok": {"mig-a"}}}
	h := New(eng, &fakeSender{}, "", nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if resp := h.Batch(ctx, batch("ok")); len(resp.BatchItemFailures) != 0 || len(eng.advanced) != 0 {
		t.Errorf("failures %v, advanced %v; want none of either", resp.BatchItemFailures, eng.advanced)
	}
}

func TestInvokeDispatch(t *testing.T) {
	eng := &fakeEngine{ids: map[string][]string{"ok": {"mig-a"}}}
	h := New(eng, &fakeSender{}, "", nil)
	sqsPayload, _ := json.Marshal(batch("ok"))
	out, err := h.Invoke(t.Context(), sqsPayload)
	if resp, ok := out.(events.SQSEventResponse); err != nil || !ok || len(resp.BatchItemFailures) != 0 {
		t.Errorf("SQS batch: %#v, %v", out, err)
	}
	// The JSON answer Lambda sends back names batchItemFailures, even when empty.
	b, _ := json.Marshal(out)
	if !strings.Contains(string(b), `"batchItemFailures":[]`) {
		t.Errorf("answer %s", b)
	}
	scheduled := `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-26T09:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/handover-reconcile"],"detail":{}}`
	out, err = h.Invoke(t.Context(), json.RawMessage(scheduled))
	res, ok := out.(Result)
	if err != nil || !ok || !res.Reconciled || res.ReconcileError == "" || !slices.Equal(res.DeletedVolumes, []string{"vol-1"}) || eng.recons != 1 {
		t.Errorf("scheduled: %#v, %v", out, err)
	}
	for _, bad := range []string{`{"hello":"world"}`, `not json`, `{"Records":[{"eventSource":"aws:s3"}]}`} {
		if _, err := h.Invoke(t.Context(), json.RawMessage(bad)); err == nil {
			t.Errorf("payload %s: want an error", bad)
		}
	}
}
