package sqs

import (
	"context"
	"testing"
)

// A receive whose client has gone takes nothing: the message stays
// visible for the next consumer instead of sitting in flight for the
// visibility timeout, received by nobody.
func TestReceiveAfterClientGone(t *testing.T) {
	e := newEnv(t, Config{})
	if err := e.svc.createQueue("q", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.send("q", sendInput{Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	wait := 20
	if got, err := e.svc.receive(gone, "q", receiveInput{MaxMessages: 1, Wait: &wait}); err != nil || len(got) != 0 {
		t.Fatalf("receive for a client that has gone = %d messages, %v; want none", len(got), err)
	}
	zero := 0
	got, err := e.svc.receive(ctxT(t), "q", receiveInput{MaxMessages: 1, Wait: &zero})
	if err != nil || len(got) != 1 {
		t.Fatalf("the next receive = %d messages, %v; want the message, still visible", len(got), err)
	}
}
