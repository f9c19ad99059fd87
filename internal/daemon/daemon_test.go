package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

func newDaemon(t *testing.T, eng Engine, q Queue, tweak ...func(*Config)) *Daemon {
	t.Helper()
	cfg := DefaultConfig()
	cfg.QueueURL = "https://sqs.local/000000000000/events"
	for _, f := range tweak {
		f(&cfg)
	}
	d, err := New(cfg, eng, q, memory.New(), clock.NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHandleDeletesOnlyCommitted: a message is deleted once its effect is
// committed; one whose effect failed stays for redelivery; poison goes to
// the dead-letter queue with its reason, then off the queue.
func TestHandleDeletesOnlyCommitted(t *testing.T) {
	tests := []struct {
		name        string
		answer      error
		dlq         string
		wantDeleted bool
		wantSent    bool
	}{
		{name: "committed", wantDeleted: true},
		{name: "ledger down", answer: errLedgerDown},
		{name: "poison with a dead-letter queue", answer: &handover.PoisonError{Reason: errLedgerDown}, dlq: "https://sqs.local/000000000000/dlq", wantDeleted: true, wantSent: true},
		{name: "poison without a dead-letter queue", answer: &handover.PoisonError{Reason: errLedgerDown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{}
			eng := &fakeEngine{answers: map[string]error{"body": tt.answer}, ids: map[string][]string{"body": {"m-1"}}}
			d := newDaemon(t, eng, q, func(c *Config) { c.DeadLetterURL = tt.dlq })
			q.Push("1", "body")
			out, _ := q.ReceiveMessage(t.Context(), nil)
			d.handle(t.Context(), out.Messages[0])
			if got := len(q.deleted) == 1; got != tt.wantDeleted {
				t.Errorf("deleted = %v, want %v", q.deleted, tt.wantDeleted)
			}
			if got := len(q.sent) == 1; got != tt.wantSent {
				t.Fatalf("sent to DLQ = %d messages, want %v", len(q.sent), tt.wantSent)
			}
			if tt.wantSent {
				s := q.sent[0]
				if aws.ToString(s.QueueUrl) != tt.dlq || aws.ToString(s.MessageBody) != "body" ||
					aws.ToString(s.MessageAttributes["handover-reason"].StringValue) != errLedgerDown.Error() {
					t.Errorf("dead-lettered %+v", s)
				}
			}
			if tt.answer == nil {
				select {
				case id := <-d.work:
					if id != "m-1" {
						t.Errorf("kicked %q, want m-1", id)
					}
				default:
					t.Error("the committed message's migration was not queued for advancing")
				}
			}
		})
	}
}

func TestDeadLetterFromRedrivePolicy(t *testing.T) {
	tests := []struct{ policy, want string }{
		{`{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:handover-dlq","maxReceiveCount":"5"}`, "https://sqs.local/000000000000/handover-dlq"},
		{"", ""},
		{"not json", ""},
	}
	for _, tt := range tests {
		d := newDaemon(t, &fakeEngine{}, &fakeQueue{redrive: tt.policy})
		if got := d.discoverDeadLetter(t.Context()); got != tt.want {
			t.Errorf("policy %q: dead-letter queue %q, want %q", tt.policy, got, tt.want)
		}
	}
}

// TestRunConsumesAndStops: Run handles what arrives, survives a failed
// receive, reconciles, and returns when its context ends.
func TestRunConsumesAndStops(t *testing.T) {
	q := &fakeQueue{NextErr: errLedgerDown}
	eng := &fakeEngine{ids: map[string][]string{"a": {"m-a"}, "b": {"m-b"}}}
	d := newDaemon(t, eng, q, func(c *Config) {
		c.AdvanceEvery, c.ReconcileEvery, c.WaitTime = 10*time.Millisecond, 10*time.Millisecond, 0
	})
	q.Push("1", "a")
	q.Push("2", "b")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	deadline := time.After(20 * time.Second)
	for {
		q.mu.Lock()
		n := len(q.deleted)
		q.mu.Unlock()
		eng.mu.Lock()
		adv := slices.Clone(eng.advanced)
		recons := eng.recons
		eng.mu.Unlock()
		if n == 2 && slices.Contains(adv, "m-a") && slices.Contains(adv, "m-b") && recons > 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("after 20s: deleted %d, advanced %v, reconciled %d times", n, adv, recons)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := DefaultConfig()
	bad.WaitTime = 30 * time.Second
	bad.Workers = 0
	if err := bad.Validate(); err == nil {
		t.Fatal("want errors for a missing queue, a 30s wait and no workers")
	}
	good := DefaultConfig()
	good.QueueURL = "q"
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}
