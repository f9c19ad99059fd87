package lambdahandler

import (
	"encoding/json"
	"testing"
)

// FuzzInvoke: whatever payload Lambda hands over, the handler answers or
// errs; it never panics, and an SQS batch always gets a response.
func FuzzInvoke(f *testing.F) {
	f.Add([]byte(`{"Records":[{"messageId":"1","eventSource":"aws:sqs","body":"{}"}]}`))
	f.Add([]byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
	f.Add([]byte(`{"Records":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		eng := &fakeEngine{ids: map[string][]string{"{}": {"m"}}}
		h := New(eng, &fakeSender{}, "", nil)
		out, err := h.Invoke(t.Context(), json.RawMessage(payload))
		if err == nil && out == nil {
			t.Fatalf("no answer and no error for %q", payload)
		}
	})
}
