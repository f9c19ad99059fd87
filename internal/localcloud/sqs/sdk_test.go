package sqs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestQueueLifecycle(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	attrs := map[string]string{"VisibilityTimeout": "45", "MessageRetentionPeriod": "3600", "DelaySeconds": "0"}
	u := e.createQueue(t, "jobs", attrs)
	if want := e.srv.URL + "/000000000000/jobs"; u != want {
		t.Fatalf("queue URL = %q, want %q", u, want)
	}

	// Same attributes: the same queue. Different ones: QueueNameExists.
	if again := e.createQueue(t, "jobs", attrs); again != u {
		t.Fatalf("repeated CreateQueue URL = %q, want %q", again, u)
	}
	_, err := e.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "46"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) {
		t.Fatalf("CreateQueue with other attributes: err = %v, want QueueNameExists", err)
	}
	wantAPIError(t, err, "QueueAlreadyExists")

	got, err := e.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	if err != nil || aws.ToString(got.QueueUrl) != u {
		t.Fatalf("GetQueueUrl = %v, %v", got, err)
	}

	e.createQueue(t, "jobs-dlq", nil)
	e.createQueue(t, "other", nil)
	list, err := e.client.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String("jobs")})
	if err != nil || len(list.QueueUrls) != 2 {
		t.Fatalf("ListQueues(jobs) = %v, %v; want 2 URLs", list, err)
	}
	page, err := e.client.ListQueues(ctx, &awssqs.ListQueuesInput{MaxResults: aws.Int32(2)})
	if err != nil || len(page.QueueUrls) != 2 || page.NextToken == nil {
		t.Fatalf("ListQueues page 1 = %+v, %v", page, err)
	}
	page2, err := e.client.ListQueues(ctx, &awssqs.ListQueuesInput{MaxResults: aws.Int32(2), NextToken: page.NextToken})
	if err != nil || len(page2.QueueUrls) != 1 || page2.NextToken != nil {
		t.Fatalf("ListQueues page 2 = %+v, %v", page2, err)
	}

	a := e.attrs(t, u)
	for k, want := range map[string]string{
		"VisibilityTimeout": "45", "MessageRetentionPeriod": "3600", "ApproximateNumberOfMessages": "0",
		"ApproximateNumberOfMessagesNotVisible": "0", "QueueArn": "arn:aws:sqs:us-east-1:000000000000:jobs",
		"ReceiveMessageWaitTimeSeconds": "0", "MaximumMessageSize": "262144",
	} {
		if a[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, a[k], want)
		}
	}

	redrive := `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:jobs-dlq","maxReceiveCount":"3"}`
	if _, err := e.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(u), Attributes: map[string]string{"RedrivePolicy": redrive, "VisibilityTimeout": "10"}}); err != nil {
		t.Fatalf("SetQueueAttributes: %v", err)
	}
	named, err := e.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy, types.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		t.Fatalf("GetQueueAttributes named: %v", err)
	}
	if want := `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:jobs-dlq","maxReceiveCount":3}`; named.Attributes["RedrivePolicy"] != want || named.Attributes["VisibilityTimeout"] != "10" || len(named.Attributes) != 2 {
		t.Fatalf("named attributes = %v", named.Attributes)
	}
	srcs, err := e.client.ListDeadLetterSourceQueues(ctx, &awssqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String(e.srv.URL + "/000000000000/jobs-dlq")})
	if err != nil || len(srcs.QueueUrls) != 1 || srcs.QueueUrls[0] != u {
		t.Fatalf("ListDeadLetterSourceQueues = %v, %v", srcs, err)
	}

	if _, err := e.client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	_, err = e.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("GetQueueUrl after delete: err = %v, want QueueDoesNotExist", err)
	}
	wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")
}

func TestCreateQueueValidation(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		code  string
	}{
		{"bad name!", nil, "InvalidParameterValue"},
		{"q1", map[string]string{"VisibilityTimeout": "43201"}, "InvalidAttributeValue"},
		{"q2", map[string]string{"NoSuchAttribute": "1"}, "InvalidAttributeName"},
		{"q3", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":1}`}, "InvalidParameterValue"},
		{"q4", map[string]string{"RedrivePolicy": `{"maxReceiveCount":1}`}, "InvalidParameterValue"},
		{"q5.fifo", map[string]string{"FifoQueue": "true"}, "AWS.SimpleQueueService.UnsupportedOperation"},
	} {
		_, err := e.client.CreateQueue(ctxT(t), &awssqs.CreateQueueInput{QueueName: aws.String(tc.name), Attributes: tc.attrs})
		wantAPIError(t, err, tc.code)
	}
}

func TestSendReceiveDeleteWithAttributes(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	u := e.createQueue(t, "q", nil)
	sent, err := e.client.SendMessage(ctx, &awssqs.SendMessageInput{
		QueueUrl:    aws.String(u),
		MessageBody: aws.String("foobar2"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"AtTimestamp": {DataType: aws.String("String"), StringValue: aws.String("2021-02-15T12:00:33+09:00")},
		},
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793")},
		},
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err) // the SDK checks MD5OfMessageBody
	}
	// Checksums of a message received from AWS itself.
	if got := aws.ToString(sent.MD5OfMessageBody); got != "cbac77acf401ef89c3297bd9fc41ec0b" {
		t.Errorf("MD5OfMessageBody = %s", got)
	}
	if got := aws.ToString(sent.MD5OfMessageAttributes); got != "9fd5e217089075be61cd1d67e35e5117" {
		t.Errorf("MD5OfMessageAttributes = %s", got)
	}
	if sent.MD5OfMessageSystemAttributes == nil {
		t.Errorf("MD5OfMessageSystemAttributes missing")
	}

	out := e.receive(t, u, 10)
	if len(out.Messages) != 1 {
		t.Fatalf("received %d messages, want 1", len(out.Messages))
	}
	m := out.Messages[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != "foobar2" {
		t.Fatalf("received %+v", m)
	}
	if aws.ToString(m.MD5OfMessageAttributes) != "9fd5e217089075be61cd1d67e35e5117" {
		t.Errorf("received MD5OfMessageAttributes = %s", aws.ToString(m.MD5OfMessageAttributes))
	}
	if v := m.MessageAttributes["AtTimestamp"]; aws.ToString(v.StringValue) != "2021-02-15T12:00:33+09:00" || aws.ToString(v.DataType) != "String" {
		t.Errorf("message attribute = %+v", v)
	}
	want := map[string]string{
		"ApproximateReceiveCount":          "1",
		"SentTimestamp":                    fmt.Sprint(epoch.UnixMilli()),
		"ApproximateFirstReceiveTimestamp": fmt.Sprint(epoch.UnixMilli()),
		"SenderId":                         "000000000000",
		"AWSTraceHeader":                   "Root=1-5759e988-bd862e3fe1be46a994272793",
	}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("system attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
	if a := e.attrs(t, u); a["ApproximateNumberOfMessagesNotVisible"] != "1" || a["ApproximateNumberOfMessages"] != "0" {
		t.Errorf("counts after receive = %s visible, %s not visible", a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"])
	}
	if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if a := e.attrs(t, u); a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("message still in flight after delete")
	}
	_, err = e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: aws.String("garbage")})
	var invalid *types.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Fatalf("DeleteMessage(garbage): err = %v, want ReceiptHandleIsInvalid", err)
	}
}

func TestSendValidation(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "q", nil)
	for name, in := range map[string]*awssqs.SendMessageInput{
		"InvalidParameterValue":  {QueueUrl: aws.String(u), MessageBody: aws.String("x"), DelaySeconds: 901},
		"InvalidMessageContents": {QueueUrl: aws.String(u), MessageBody: aws.String("bad \x00 byte")},
		"MissingParameter":       {QueueUrl: aws.String(u), MessageBody: aws.String("")},
	} {
		_, err := e.client.SendMessage(ctxT(t), in)
		wantAPIError(t, err, name)
	}
	_, err := e.client.SendMessage(ctxT(t), &awssqs.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String("abc")}}})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.client.ReceiveMessage(ctxT(t), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), MaxNumberOfMessages: 11})
	wantAPIError(t, err, "InvalidParameterValue")
	_, err = e.client.SendMessage(ctxT(t), &awssqs.SendMessageInput{QueueUrl: aws.String(e.srv.URL + "/000000000000/nope"), MessageBody: aws.String("x")})
	wantAPIError(t, err, "AWS.SimpleQueueService.NonExistentQueue")
}

func TestLongPollReturnsWhenMessageArrives(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "q", nil)
	type result struct {
		out *awssqs.ReceiveMessageOutput
		err error
		in  time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		out, err := e.client.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), WaitTimeSeconds: 20})
		done <- result{out, err, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("long poll returned before any message: %+v", r)
	default:
	}
	e.send(t, u, "hello")
	select {
	case r := <-done:
		if r.err != nil || len(r.out.Messages) != 1 || aws.ToString(r.out.Messages[0].Body) != "hello" {
			t.Fatalf("long poll = %+v, %v", r.out, r.err)
		}
		if r.in > 5*time.Second {
			t.Fatalf("long poll took %v after the send", r.in)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return after a message arrived")
	}
}

func TestLongPollEndsWithWaitOrClient(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "q", nil)
	start := time.Now()
	out, err := e.client.ReceiveMessage(ctxT(t), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 0 {
		t.Fatalf("empty long poll = %+v, %v", out, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("WaitTimeSeconds=1 waited %v", d)
	}

	// A client that goes away ends the wait; the message sent afterwards
	// must not have been taken by the abandoned poll.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), WaitTimeSeconds: 20})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled long poll: err = %v after %v", err, time.Since(start))
	}
	time.Sleep(2 * pollInterval) // let the server notice the disconnect
	e.send(t, u, "after")
	if got := e.receive(t, u, 1); len(got.Messages) != 1 {
		t.Fatalf("message sent after an abandoned poll was lost")
	}
}

func TestLongPollSeesFakeClockAdvance(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "q", nil)
	if _, err := e.client.SendMessage(ctxT(t), &awssqs.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String("later"), DelaySeconds: 60}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		out, err := e.client.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), WaitTimeSeconds: 10})
		if err != nil {
			done <- -1
			return
		}
		done <- len(out.Messages)
	}()
	time.Sleep(150 * time.Millisecond)
	e.clock.Advance(61 * time.Second)
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("long poll got %d messages after the delay passed", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll did not notice the delayed message becoming visible")
	}
}

func TestVisibilityTimeoutAndRedelivery(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	u := e.createQueue(t, "q", map[string]string{"VisibilityTimeout": "30"})
	id := e.send(t, u, "work")

	first := e.receive(t, u, 1)
	if len(first.Messages) != 1 || first.Messages[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("first receive = %+v", first.Messages)
	}
	if again := e.receive(t, u, 1); len(again.Messages) != 0 {
		t.Fatalf("in-flight message received again")
	}
	e.clock.Advance(29 * time.Second)
	if again := e.receive(t, u, 1); len(again.Messages) != 0 {
		t.Fatalf("message visible before its timeout")
	}
	e.clock.Advance(2 * time.Second)
	second := e.receive(t, u, 1)
	if len(second.Messages) != 1 {
		t.Fatalf("message not redelivered after its visibility timeout")
	}
	m := second.Messages[0]
	if aws.ToString(m.MessageId) != id || m.Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("redelivery = id %s count %s", aws.ToString(m.MessageId), m.Attributes["ApproximateReceiveCount"])
	}
	if m.Attributes["ApproximateFirstReceiveTimestamp"] != fmt.Sprint(epoch.UnixMilli()) {
		t.Errorf("ApproximateFirstReceiveTimestamp changed on redelivery")
	}
	if aws.ToString(m.ReceiptHandle) == aws.ToString(first.Messages[0].ReceiptHandle) {
		t.Fatalf("redelivery reused the receipt handle")
	}

	// The stale handle succeeds without deleting, as AWS documents.
	if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: first.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage(stale handle): %v", err)
	}
	if a := e.attrs(t, u); a["ApproximateNumberOfMessagesNotVisible"] != "1" {
		t.Fatalf("stale receipt handle deleted the message")
	}
	// Per-receive VisibilityTimeout overrides the queue's.
	e.clock.Advance(31 * time.Second)
	out, err := e.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), VisibilityTimeout: 5})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("third receive = %+v, %v", out, err)
	}
	e.clock.Advance(6 * time.Second)
	latest := e.receive(t, u, 1)
	if len(latest.Messages) != 1 || latest.Messages[0].Attributes["ApproximateReceiveCount"] != "4" {
		t.Fatalf("fourth receive = %+v", latest.Messages)
	}
	if _, err := e.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: latest.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	e.clock.Advance(time.Hour)
	if left := e.receive(t, u, 10); len(left.Messages) != 0 {
		t.Fatalf("deleted message came back")
	}
}

func TestChangeMessageVisibility(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	u := e.createQueue(t, "q", nil)
	e.send(t, u, "a")
	m := e.receive(t, u, 1).Messages[0]
	if _, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(u), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatalf("ChangeMessageVisibility(0): %v", err)
	}
	// Visible again: not in flight, so another change fails.
	_, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(u), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 10})
	var notInflight *types.MessageNotInflight
	if !errors.As(err, &notInflight) {
		t.Fatalf("change on a visible message: err = %v, want MessageNotInflight", err)
	}
	m2 := e.receive(t, u, 1).Messages[0]
	_, err = e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(u), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 10})
	wantAPIError(t, err, "InvalidParameterValue")
	if _, err := e.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(u), ReceiptHandle: m2.ReceiptHandle, VisibilityTimeout: 100}); err != nil {
		t.Fatalf("ChangeMessageVisibility(100): %v", err)
	}
	e.clock.Advance(99 * time.Second)
	if got := e.receive(t, u, 1); len(got.Messages) != 0 {
		t.Fatalf("message visible before its extended timeout")
	}
	e.clock.Advance(2 * time.Second)
	if got := e.receive(t, u, 1); len(got.Messages) != 1 {
		t.Fatalf("message not visible after its extended timeout")
	}
}

func TestRedriveToDeadLetterQueue(t *testing.T) {
	e := newEnv(t, Config{})
	dlq := e.createQueue(t, "work-dlq", nil)
	u := e.createQueue(t, "work", map[string]string{
		"VisibilityTimeout": "10",
		"RedrivePolicy":     `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:work-dlq","maxReceiveCount":2}`,
	})
	id := e.send(t, u, "poison")
	for i := 1; i <= 2; i++ {
		got := e.receive(t, u, 1)
		if len(got.Messages) != 1 || got.Messages[0].Attributes["ApproximateReceiveCount"] != fmt.Sprint(i) {
			t.Fatalf("receive %d = %+v", i, got.Messages)
		}
		e.clock.Advance(11 * time.Second)
	}
	// Received maxReceiveCount times: the next receive moves it instead.
	if got := e.receive(t, u, 1); len(got.Messages) != 0 {
		t.Fatalf("message delivered a third time: %+v", got.Messages)
	}
	if a := e.attrs(t, u); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("source queue still holds the message: %v", a)
	}
	got := e.receive(t, dlq, 10)
	if len(got.Messages) != 1 {
		t.Fatalf("dead-letter queue has %d messages, want 1", len(got.Messages))
	}
	m := got.Messages[0]
	if aws.ToString(m.MessageId) != id || aws.ToString(m.Body) != "poison" {
		t.Fatalf("dead letter = %+v", m)
	}
	if m.Attributes["DeadLetterQueueSourceArn"] != "arn:aws:sqs:us-east-1:000000000000:work" {
		t.Errorf("DeadLetterQueueSourceArn = %q", m.Attributes["DeadLetterQueueSourceArn"])
	}
	if m.Attributes["SentTimestamp"] != fmt.Sprint(epoch.UnixMilli()) {
		t.Errorf("SentTimestamp changed in the move")
	}
}

func TestRetentionAndDelay(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "q", map[string]string{"MessageRetentionPeriod": "60", "DelaySeconds": "5"})
	e.send(t, u, "a")
	a := e.attrs(t, u)
	if a["ApproximateNumberOfMessagesDelayed"] != "1" || a["ApproximateNumberOfMessages"] != "0" {
		t.Fatalf("counts while delayed = %v", a)
	}
	if got := e.receive(t, u, 1); len(got.Messages) != 0 {
		t.Fatalf("delayed message received early")
	}
	e.clock.Advance(5 * time.Second)
	if a := e.attrs(t, u); a["ApproximateNumberOfMessages"] != "1" {
		t.Fatalf("message not visible after its delay: %v", a)
	}
	e.clock.Advance(55 * time.Second)
	if a := e.attrs(t, u); a["ApproximateNumberOfMessages"] != "0" {
		t.Fatalf("message kept past its retention period: %v", a)
	}
	if got := e.receive(t, u, 1); len(got.Messages) != 0 {
		t.Fatalf("expired message received")
	}
}

func TestBatchPartialFailures(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := ctxT(t)
	u := e.createQueue(t, "q", nil)
	sent, err := e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(u), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("one")},
		{Id: aws.String("b"), MessageBody: aws.String("two"), DelaySeconds: 1000},
		{Id: aws.String("c"), MessageBody: aws.String("three"), MessageAttributes: map[string]types.MessageAttributeValue{
			"bin": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
		}},
	}})
	if err != nil {
		t.Fatalf("SendMessageBatch: %v", err) // the SDK checks each MD5OfMessageBody
	}
	if len(sent.Successful) != 2 || len(sent.Failed) != 1 || aws.ToString(sent.Failed[0].Id) != "b" ||
		aws.ToString(sent.Failed[0].Code) != "InvalidParameterValue" || !sent.Failed[0].SenderFault {
		t.Fatalf("SendMessageBatch = %+v", sent)
	}

	got := e.receive(t, u, 10)
	if len(got.Messages) != 2 {
		t.Fatalf("received %d messages, want 2", len(got.Messages))
	}
	for _, m := range got.Messages {
		if aws.ToString(m.Body) == "three" {
			if b := m.MessageAttributes["bin"].BinaryValue; len(b) != 3 || b[2] != 2 {
				t.Errorf("binary attribute = %v", b)
			}
		}
	}
	del, err := e.client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(u), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: got.Messages[0].ReceiptHandle},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("not-a-handle")},
	}})
	if err != nil {
		t.Fatalf("DeleteMessageBatch: %v", err)
	}
	if len(del.Successful) != 1 || aws.ToString(del.Successful[0].Id) != "ok" || len(del.Failed) != 1 || aws.ToString(del.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessageBatch = %+v", del)
	}
	vis, err := e.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(u), Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: got.Messages[1].ReceiptHandle, VisibilityTimeout: 0},
		{Id: aws.String("gone"), ReceiptHandle: got.Messages[0].ReceiptHandle, VisibilityTimeout: 0},
	}})
	if err != nil {
		t.Fatalf("ChangeMessageVisibilityBatch: %v", err)
	}
	if len(vis.Successful) != 1 || len(vis.Failed) != 1 || aws.ToString(vis.Failed[0].Id) != "gone" {
		t.Fatalf("ChangeMessageVisibilityBatch = %+v", vis)
	}
	if again := e.receive(t, u, 10); len(again.Messages) != 1 {
		t.Fatalf("after visibility 0: received %d, want 1", len(again.Messages))
	}

	// Whole-request errors.
	_, err = e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(u), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("x"), MessageBody: aws.String("1")}, {Id: aws.String("x"), MessageBody: aws.String("2")},
	}})
	var notDistinct *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &notDistinct) {
		t.Fatalf("duplicate ids: err = %v", err)
	}
	_, err = e.client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(u), Entries: []types.DeleteMessageBatchRequestEntry{}})
	var empty *types.EmptyBatchRequest
	if !errors.As(err, &empty) {
		t.Fatalf("empty batch: err = %v", err)
	}
	var many []types.SendMessageBatchRequestEntry
	for i := range 11 {
		many = append(many, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("m", i)), MessageBody: aws.String("x")})
	}
	_, err = e.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(u), Entries: many})
	var tooMany *types.TooManyEntriesInBatchRequest
	if !errors.As(err, &tooMany) {
		t.Fatalf("11 entries: err = %v", err)
	}
}

func TestSendByARN(t *testing.T) {
	e := newEnv(t, Config{Region: "eu-west-1"})
	u := e.createQueue(t, "events", nil)
	if err := e.svc.SendByARN(ctxT(t), "arn:aws:sqs:eu-west-1:000000000000:events", `{"k":"v"}`); err != nil {
		t.Fatalf("SendByARN: %v", err)
	}
	got := e.receive(t, u, 1)
	if len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != `{"k":"v"}` {
		t.Fatalf("received %+v", got.Messages)
	}
	for _, arn := range []string{"arn:aws:sqs:eu-west-1:000000000000:nope", "arn:aws:sqs:us-east-1:000000000000:events", "not an arn"} {
		if err := e.svc.SendByARN(ctxT(t), arn, "x"); !errors.Is(err, ErrNoSuchQueue) {
			t.Errorf("SendByARN(%s) = %v, want ErrNoSuchQueue", arn, err)
		}
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	fc := newEnv(t, Config{DataDir: dir})
	u := fc.createQueue(t, "durable", map[string]string{"VisibilityTimeout": "60"})
	fc.send(t, u, "one")
	fc.send(t, u, "two")
	inflight := fc.receive(t, u, 1).Messages[0]
	if err := fc.svc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	svc, err := New(Config{DataDir: dir, Clock: fc.clock})
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := svc.queueExists("durable"); err != nil {
		t.Fatalf("queue lost in restart: %v", err)
	}
	a, err := svc.getAttributes("durable", []string{"All"})
	if err != nil {
		t.Fatal(err)
	}
	if a["ApproximateNumberOfMessages"] != "1" || a["ApproximateNumberOfMessagesNotVisible"] != "1" || a["VisibilityTimeout"] != "60" {
		t.Fatalf("attributes after restart = %v", a)
	}
	// The receipt handle given out before the restart still deletes.
	if err := svc.deleteMessage("durable", aws.ToString(inflight.ReceiptHandle)); err != nil {
		t.Fatalf("deleting with a pre-restart handle: %v", err)
	}
	a, _ = svc.getAttributes("durable", []string{"ApproximateNumberOfMessagesNotVisible"})
	if a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("pre-restart handle did not delete")
	}
}
