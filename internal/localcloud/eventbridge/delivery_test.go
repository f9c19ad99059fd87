package eventbridge

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// faults injects the fault named by the event's detail "fault" field.
type faults struct {
	mu    sync.Mutex
	calls int
}

func (f *faults) Fault(d Delivery) Fault {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	switch {
	case strings.Contains(d.Body, `"fault":"drop"`):
		return Fault{Drop: true}
	case strings.Contains(d.Body, `"fault":"dup"`):
		return Fault{Duplicates: 2}
	case strings.Contains(d.Body, `"fault":"delay"`):
		return Fault{Delay: 150 * time.Millisecond}
	case strings.Contains(d.Body, `"fault":"reorder"`):
		return Fault{Reorder: true}
	}
	return Fault{}
}

var _ EventFaults = (*faults)(nil)

// newRouter returns a Service delivering the detail of events from source
// "s" to rec.
func newRouter(t *testing.T, rec *recorder, f EventFaults) *Service {
	t.Helper()
	s, err := New(Config{Queues: rec, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.putRule(putRuleInput{Name: "r", EventPattern: `{"source":["s"]}`}); err != nil {
		t.Fatal(err)
	}
	if err := s.putTargets("r", "", []target{{ID: "t", ARN: "arn:aws:sqs:us-east-1:000000000000:q", InputPath: "$.detail"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func publish(t *testing.T, s *Service, detail string) {
	t.Helper()
	if err := s.Publish(context.Background(), []byte(`{"source":"s","detail-type":"d","detail":`+detail+`}`)); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveryFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sends []string
		want  []string
	}{
		{"drop", []string{`{"fault":"drop"}`, `{"n":2}`}, []string{`{"n":2}`}},
		{"duplicate", []string{`{"fault":"dup"}`}, []string{`{"fault":"dup"}`, `{"fault":"dup"}`, `{"fault":"dup"}`}},
		{"delay lets later events overtake", []string{`{"fault":"delay"}`, `{"n":2}`}, []string{`{"n":2}`, `{"fault":"delay"}`}},
		{"reorder swaps with the next", []string{`{"fault":"reorder"}`, `{"n":2}`, `{"n":3}`}, []string{`{"n":2}`, `{"fault":"reorder"}`, `{"n":3}`}},
		{"reorder alone still arrives", []string{`{"fault":"reorder"}`}, []string{`{"fault":"reorder"}`}},
		{"no fault keeps order", []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			f := &faults{}
			s := newRouter(t, rec, f)
			for _, d := range tc.sends {
				publish(t, s, d)
			}
			if err := s.Flush(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if got := rec.bodies(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("delivered %q, want %q", got, tc.want)
			}
			if f.calls != len(tc.sends) {
				t.Fatalf("Fault called %d times for %d deliveries", f.calls, len(tc.sends))
			}
		})
	}
}

func TestDeliveryRetriesUntilTheQueueAccepts(t *testing.T) {
	rec := &recorder{failFirst: 2}
	s := newRouter(t, rec, nil)
	publish(t, s, `{"n":1}`)
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := rec.bodies(); !reflect.DeepEqual(got, []string{`{"n":1}`}) || rec.calls != 3 {
		t.Fatalf("delivered %q after %d calls", got, rec.calls)
	}
}

func TestDeliveryGivesUpAfterItsRetryPolicy(t *testing.T) {
	rec := &recorder{failFirst: 100}
	s, err := New(Config{Queues: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.putRule(putRuleInput{Name: "r", EventPattern: `{"source":["s"]}`}); err != nil {
		t.Fatal(err)
	}
	if err := s.putTargets("r", "", []target{{ID: "t", ARN: "arn:aws:sqs:us-east-1:000000000000:q", Retry: &retryPolicy{MaxAttempts: 1, MaxAge: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	publish(t, s, `{}`)
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if rec.calls != 2 {
		t.Fatalf("%d attempts, want 2 (one retry)", rec.calls)
	}
}

func TestCloseStopsDelivery(t *testing.T) {
	rec := &recorder{failFirst: 1000}
	s := newRouter(t, rec, nil)
	publish(t, s, `{}`)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung while a delivery was being retried")
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}
