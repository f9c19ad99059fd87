package sqs

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// These tests send the exact form requests the AWS CLI 2.9.19 (botocore's
// Query serializer for SQS) sends, and read the answers the way botocore's
// Query parser does: a <ActionResponse> root in SQS's namespace, the result
// in <ActionResult>, flattened lists and maps as repeated elements.

// query sends form (Action and Version added) and decodes the XML answer
// into out, checking the status and the root element.
func query(t *testing.T, e *env, action string, form url.Values, wantStatus int, out any) string {
	t.Helper()
	form.Set("Action", action)
	form.Set("Version", "2012-11-05")
	resp := postForm(t, e.srv.URL, form)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s: status %d, want %d: %s", action, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("%s: Content-Type %q", action, ct)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(body, &root); err != nil {
		t.Fatalf("%s: answer is not XML: %v\n%s", action, err, body)
	}
	wantRoot := action + "Response"
	if wantStatus != http.StatusOK {
		wantRoot = "ErrorResponse"
	}
	if root.XMLName.Local != wantRoot || root.XMLName.Space != queryXMLNS {
		t.Fatalf("%s: root element %v, want %s in %s", action, root.XMLName, wantRoot, queryXMLNS)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: decoding: %v\n%s", action, err, body)
		}
	}
	return string(body)
}

type xmlAttrOut struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

func attrMap(in []xmlAttrOut) map[string]string {
	out := map[string]string{}
	for _, a := range in {
		out[a.Name] = a.Value
	}
	return out
}

type receiveResponse struct {
	Result struct {
		Messages []struct {
			MessageID              string       `xml:"MessageId"`
			ReceiptHandle          string       `xml:"ReceiptHandle"`
			MD5OfBody              string       `xml:"MD5OfBody"`
			Body                   string       `xml:"Body"`
			Attributes             []xmlAttrOut `xml:"Attribute"`
			MD5OfMessageAttributes string       `xml:"MD5OfMessageAttributes"`
			MessageAttributes      []struct {
				Name  string `xml:"Name"`
				Value struct {
					StringValue string `xml:"StringValue"`
					BinaryValue string `xml:"BinaryValue"`
					DataType    string `xml:"DataType"`
				} `xml:"Value"`
			} `xml:"MessageAttribute"`
		} `xml:"Message"`
	} `xml:"ReceiveMessageResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	Type      string `xml:"Error>Type"`
	Code      string `xml:"Error>Code"`
	Message   string `xml:"Error>Message"`
	RequestID string `xml:"RequestId"`
}

func TestQueryProtocolAsAWSCLI(t *testing.T) {
	e := newEnv(t, Config{})

	var created struct {
		QueueURL string `xml:"CreateQueueResult>QueueUrl"`
	}
	query(t, e, "CreateQueue", url.Values{"QueueName": {"cli"}, "Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {"30"},
		"Attribute.2.Name": {"ReceiveMessageWaitTimeSeconds"}, "Attribute.2.Value": {"0"}, "Tag.1.Key": {"team"}, "Tag.1.Value": {"ops"}}, http.StatusOK, &created)
	if want := e.srv.URL + "/000000000000/cli"; created.QueueURL != want {
		t.Fatalf("QueueUrl = %q, want %q", created.QueueURL, want)
	}
	qurl := created.QueueURL

	var gotURL struct {
		QueueURL string `xml:"GetQueueUrlResult>QueueUrl"`
	}
	query(t, e, "GetQueueUrl", url.Values{"QueueName": {"cli"}}, http.StatusOK, &gotURL)
	if gotURL.QueueURL != qurl {
		t.Fatalf("GetQueueUrl = %q", gotURL.QueueURL)
	}

	var list struct {
		URLs []string `xml:"ListQueuesResult>QueueUrl"`
	}
	query(t, e, "ListQueues", url.Values{}, http.StatusOK, &list)
	if len(list.URLs) != 1 || list.URLs[0] != qurl {
		t.Fatalf("ListQueues = %v", list.URLs)
	}

	var sent struct {
		MessageID        string `xml:"SendMessageResult>MessageId"`
		MD5OfMessageBody string `xml:"SendMessageResult>MD5OfMessageBody"`
		MD5OfAttrs       string `xml:"SendMessageResult>MD5OfMessageAttributes"`
	}
	body := "line one\r\nline <two> & \"three\""
	query(t, e, "SendMessage", url.Values{"QueueUrl": {qurl}, "MessageBody": {body},
		"MessageAttribute.1.Name": {"AtTimestamp"}, "MessageAttribute.1.Value.StringValue": {"2021-02-15T12:00:33+09:00"}, "MessageAttribute.1.Value.DataType": {"String"},
		"MessageAttribute.2.Name": {"blob"}, "MessageAttribute.2.Value.BinaryValue": {"AAEC"}, "MessageAttribute.2.Value.DataType": {"Binary"},
	}, http.StatusOK, &sent)
	if sent.MessageID == "" || sent.MD5OfMessageBody != md5Hex([]byte(body)) || sent.MD5OfAttrs == "" {
		t.Fatalf("SendMessage = %+v", sent)
	}

	var batch struct {
		OK []struct {
			ID string `xml:"Id"`
		} `xml:"SendMessageBatchResult>SendMessageBatchResultEntry"`
		Failed []struct {
			ID          string `xml:"Id"`
			SenderFault bool   `xml:"SenderFault"`
			Code        string `xml:"Code"`
		} `xml:"SendMessageBatchResult>BatchResultErrorEntry"`
	}
	query(t, e, "SendMessageBatch", url.Values{"QueueUrl": {qurl},
		"SendMessageBatchRequestEntry.1.Id": {"m1"}, "SendMessageBatchRequestEntry.1.MessageBody": {"second"},
		"SendMessageBatchRequestEntry.2.Id": {"m2"}, "SendMessageBatchRequestEntry.2.MessageBody": {"third"}, "SendMessageBatchRequestEntry.2.DelaySeconds": {"901"},
	}, http.StatusOK, &batch)
	if len(batch.OK) != 1 || batch.OK[0].ID != "m1" || len(batch.Failed) != 1 || batch.Failed[0].Code != "InvalidParameterValue" || !batch.Failed[0].SenderFault {
		t.Fatalf("SendMessageBatch = %+v", batch)
	}

	var attrs struct {
		Attributes []xmlAttrOut `xml:"GetQueueAttributesResult>Attribute"`
	}
	query(t, e, "GetQueueAttributes", url.Values{"QueueUrl": {qurl}, "AttributeName.1": {"All"}}, http.StatusOK, &attrs)
	if a := attrMap(attrs.Attributes); a["ApproximateNumberOfMessages"] != "2" || a["VisibilityTimeout"] != "30" || a["QueueArn"] != "arn:aws:sqs:us-east-1:000000000000:cli" {
		t.Fatalf("GetQueueAttributes = %v", a)
	}

	var recv receiveResponse
	query(t, e, "ReceiveMessage", url.Values{"QueueUrl": {qurl}, "AttributeName.1": {"All"}, "MessageAttributeName.1": {"All"},
		"MaxNumberOfMessages": {"10"}, "WaitTimeSeconds": {"1"}}, http.StatusOK, &recv)
	if len(recv.Result.Messages) != 2 || recv.RequestID == "" {
		t.Fatalf("ReceiveMessage = %+v", recv)
	}
	m := recv.Result.Messages[0]
	if m.MessageID != sent.MessageID || m.Body != body || m.MD5OfBody != md5Hex([]byte(body)) || m.ReceiptHandle == "" {
		t.Fatalf("first message = %+v", m)
	}
	if m.MD5OfMessageAttributes != sent.MD5OfAttrs || len(m.MessageAttributes) != 2 {
		t.Fatalf("message attributes = %+v (MD5 %s, sent %s)", m.MessageAttributes, m.MD5OfMessageAttributes, sent.MD5OfAttrs)
	}
	for _, a := range m.MessageAttributes {
		switch a.Name {
		case "AtTimestamp":
			if a.Value.StringValue != "2021-02-15T12:00:33+09:00" || a.Value.DataType != "String" {
				t.Errorf("AtTimestamp = %+v", a.Value)
			}
		case "blob":
			if a.Value.BinaryValue != "AAEC" || a.Value.DataType != "Binary" {
				t.Errorf("blob = %+v", a.Value)
			}
		}
	}
	if a := attrMap(m.Attributes); a["ApproximateReceiveCount"] != "1" || a["SentTimestamp"] == "" || a["SenderId"] == "" {
		t.Fatalf("system attributes = %v", a)
	}

	var vis struct {
		OK []struct {
			ID string `xml:"Id"`
		} `xml:"ChangeMessageVisibilityBatchResult>ChangeMessageVisibilityBatchResultEntry"`
	}
	query(t, e, "ChangeMessageVisibilityBatch", url.Values{"QueueUrl": {qurl},
		"ChangeMessageVisibilityBatchRequestEntry.1.Id": {"v1"}, "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle": {recv.Result.Messages[1].ReceiptHandle},
		"ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout": {"120"}}, http.StatusOK, &vis)
	if len(vis.OK) != 1 {
		t.Fatalf("ChangeMessageVisibilityBatch = %+v", vis)
	}
	query(t, e, "ChangeMessageVisibility", url.Values{"QueueUrl": {qurl}, "ReceiptHandle": {m.ReceiptHandle}, "VisibilityTimeout": {"0"}}, http.StatusOK, nil)
	query(t, e, "DeleteMessage", url.Values{"QueueUrl": {qurl}, "ReceiptHandle": {m.ReceiptHandle}}, http.StatusOK, nil)

	var del struct {
		OK []struct {
			ID string `xml:"Id"`
		} `xml:"DeleteMessageBatchResult>DeleteMessageBatchResultEntry"`
		Failed []struct {
			ID   string `xml:"Id"`
			Code string `xml:"Code"`
		} `xml:"DeleteMessageBatchResult>BatchResultErrorEntry"`
	}
	query(t, e, "DeleteMessageBatch", url.Values{"QueueUrl": {qurl},
		"DeleteMessageBatchRequestEntry.1.Id": {"d1"}, "DeleteMessageBatchRequestEntry.1.ReceiptHandle": {recv.Result.Messages[1].ReceiptHandle},
		"DeleteMessageBatchRequestEntry.2.Id": {"d2"}, "DeleteMessageBatchRequestEntry.2.ReceiptHandle": {"bogus"},
	}, http.StatusOK, &del)
	if len(del.OK) != 1 || del.OK[0].ID != "d1" || len(del.Failed) != 1 || del.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessageBatch = %+v", del)
	}
	attrs.Attributes = nil
	query(t, e, "GetQueueAttributes", url.Values{"QueueUrl": {qurl}, "AttributeName.1": {"ApproximateNumberOfMessages"}, "AttributeName.2": {"ApproximateNumberOfMessagesNotVisible"}}, http.StatusOK, &attrs)
	if a := attrMap(attrs.Attributes); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" || len(a) != 2 {
		t.Fatalf("after deletes = %v", a)
	}

	query(t, e, "SetQueueAttributes", url.Values{"QueueUrl": {qurl}, "Attribute.1.Name": {"DelaySeconds"}, "Attribute.1.Value": {"3"}}, http.StatusOK, nil)
	var tags struct {
		Tags []struct {
			Key   string `xml:"Key"`
			Value string `xml:"Value"`
		} `xml:"ListQueueTagsResult>Tag"`
	}
	query(t, e, "ListQueueTags", url.Values{"QueueUrl": {qurl}}, http.StatusOK, &tags)
	if len(tags.Tags) != 1 || tags.Tags[0].Key != "team" || tags.Tags[0].Value != "ops" {
		t.Fatalf("ListQueueTags = %+v", tags)
	}
	query(t, e, "PurgeQueue", url.Values{"QueueUrl": {qurl}}, http.StatusOK, nil)
	query(t, e, "DeleteQueue", url.Values{"QueueUrl": {qurl}}, http.StatusOK, nil)
}

func TestQueryProtocolErrors(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		action string
		form   url.Values
		status int
		code   string
	}{
		{"GetQueueUrl", url.Values{"QueueName": {"nope"}}, http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue"},
		{"ReceiveMessage", url.Values{"QueueUrl": {e.srv.URL + "/000000000000/nope"}}, http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue"},
		{"CreateQueue", url.Values{}, http.StatusBadRequest, "MissingParameter"},
		{"CreateQueue", url.Values{"QueueName": {"x"}, "Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {"-1"}}, http.StatusBadRequest, "InvalidAttributeValue"},
		{"NoSuchAction", url.Values{}, http.StatusBadRequest, "InvalidAction"},
		{"ReceiveMessage", url.Values{"QueueUrl": {e.srv.URL + "/000000000000/x"}, "MaxNumberOfMessages": {"abc"}}, http.StatusBadRequest, "InvalidParameterValue"},
	} {
		var er errorResponse
		query(t, e, tc.action, tc.form, tc.status, &er)
		if er.Code != tc.code || er.Type != "Sender" || er.Message == "" || er.RequestID == "" {
			t.Errorf("%s: error = %+v, want code %s", tc.action, er, tc.code)
		}
	}

	// Names must be unique with other attributes: QueueAlreadyExists over Query.
	query(t, e, "CreateQueue", url.Values{"QueueName": {"dup"}}, http.StatusOK, nil)
	var er errorResponse
	query(t, e, "CreateQueue", url.Values{"QueueName": {"dup"}, "Attribute.1.Name": {"DelaySeconds"}, "Attribute.1.Value": {"7"}}, http.StatusBadRequest, &er)
	if er.Code != "QueueAlreadyExists" {
		t.Fatalf("conflicting CreateQueue code = %q", er.Code)
	}
	var rh errorResponse
	query(t, e, "DeleteMessage", url.Values{"QueueUrl": {e.srv.URL + "/000000000000/dup"}, "ReceiptHandle": {"zzz"}}, http.StatusNotFound, &rh)
	if rh.Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessage(bad handle) code = %q", rh.Code)
	}
}

// Older SDKs post to the queue URL itself, without a QueueUrl parameter.
func TestQueryProtocolQueueInPath(t *testing.T) {
	e := newEnv(t, Config{})
	e.createQueue(t, "p", nil)
	form := url.Values{"Action": {"SendMessage"}, "MessageBody": {"via path"}}
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, e.srv.URL+"/000000000000/p", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var recv receiveResponse
	query(t, e, "ReceiveMessage", url.Values{"QueueUrl": {e.srv.URL + "/000000000000/p"}}, http.StatusOK, &recv)
	if len(recv.Result.Messages) != 1 || recv.Result.Messages[0].Body != "via path" {
		t.Fatalf("received %+v", recv)
	}
}

func TestQueryLongPoll(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.createQueue(t, "lp", nil)
	done := make(chan receiveResponse, 1)
	go func() {
		var recv receiveResponse
		form := url.Values{"Action": {"ReceiveMessage"}, "Version": {"2012-11-05"}, "QueueUrl": {u}, "WaitTimeSeconds": {"10"}}
		resp, err := http.PostForm(e.srv.URL+"/", form)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = xml.Unmarshal(b, &recv)
		}
		done <- recv
	}()
	time.Sleep(100 * time.Millisecond)
	e.send(t, u, "wake")
	select {
	case r := <-done:
		if len(r.Result.Messages) != 1 || r.Result.Messages[0].Body != "wake" {
			t.Fatalf("long poll = %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Query long poll did not return when a message arrived")
	}
}
