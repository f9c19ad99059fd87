package sqs

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

func fuzzService(f *testing.F) *Service {
	svc, err := New(Config{Clock: clock.NewFake(epoch)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { svc.Close() })
	if err := svc.createQueue("q", nil, nil); err != nil {
		f.Fatal(err)
	}
	return svc
}

// serveBriefly serves req with a short deadline, so fuzzed long polls end.
func serveBriefly(svc *Service, req *http.Request) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, req.WithContext(ctx))
	return rec
}

// FuzzQueryRequest feeds arbitrary Query-protocol forms: the answer must
// always be a well-formed XML document.
func FuzzQueryRequest(f *testing.F) {
	for _, s := range []string{
		"Action=SendMessage&QueueUrl=http://h/000000000000/q&MessageBody=hi&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v",
		"Action=ReceiveMessage&QueueUrl=http://h/000000000000/q&AttributeName.1=All&MessageAttributeName.1=All&MaxNumberOfMessages=10&WaitTimeSeconds=1",
		"Action=CreateQueue&QueueName=x&Attribute.1.Name=RedrivePolicy&Attribute.1.Value=%7B%7D",
		"Action=DeleteMessageBatch&QueueUrl=/000000000000/q&DeleteMessageBatchRequestEntry.1.Id=a&DeleteMessageBatchRequestEntry.1.ReceiptHandle=cQptCng",
		"Action=SendMessageBatch&QueueUrl=/000000000000/q&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=%00",
	} {
		f.Add(s)
	}
	svc := fuzzService(f)
	f.Fuzz(func(t *testing.T, form string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := serveBriefly(svc, req)
		var doc struct{ XMLName xml.Name }
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("answer to %q is not XML: %v\n%s", form, err, rec.Body.String())
		}
	})
}

// FuzzJSONRequest feeds arbitrary JSON bodies to each operation: the
// answer must always be JSON, and an error must carry __type.
func FuzzJSONRequest(f *testing.F) {
	for _, s := range []struct{ op, body string }{
		{"SendMessage", `{"QueueUrl":"http://h/000000000000/q","MessageBody":"x","MessageAttributes":{"a":{"DataType":"Binary","BinaryValue":"AAE="}}}`},
		{"ReceiveMessage", `{"QueueUrl":"http://h/000000000000/q","MaxNumberOfMessages":10,"VisibilityTimeout":0}`},
		{"ChangeMessageVisibilityBatch", `{"QueueUrl":"http://h/000000000000/q","Entries":[{"Id":"a","ReceiptHandle":"x","VisibilityTimeout":1}]}`},
		{"CreateQueue", `{"QueueName":"n","Attributes":{"MaximumMessageSize":"1024"}}`},
	} {
		f.Add(s.op, s.body)
	}
	svc := fuzzService(f)
	f.Fuzz(func(t *testing.T, op, body string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
		req.Header.Set("Content-Type", jsonContentType)
		rec := serveBriefly(svc, req)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("answer to %s %q is not JSON: %v\n%s", op, body, err, rec.Body.String())
		}
		if rec.Code != http.StatusOK && doc["__type"] == nil {
			t.Fatalf("error answer without __type: %s", rec.Body.String())
		}
	})
}

// FuzzParseReceipt checks that receipt handles round-trip and that no
// input makes parsing panic.
func FuzzParseReceipt(f *testing.F) {
	f.Add("q", "id")
	f.Add("", "\n")
	f.Fuzz(func(t *testing.T, q, id string) {
		qn, mid, ok := parseReceipt(newReceipt(q, id))
		valid := q != "" && id != "" && !strings.Contains(q, "\n") && !strings.Contains(id, "\n")
		if ok != valid || ok && (qn != q || mid != id) {
			t.Fatalf("parseReceipt(newReceipt(%q, %q)) = %q, %q, %v", q, id, qn, mid, ok)
		}
		parseReceipt(q + id)
	})
}
