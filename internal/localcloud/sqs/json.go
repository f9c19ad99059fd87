package sqs

import (
	"net/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file is the AWS JSON 1.0 protocol that current SDKs speak to SQS:
// POST with X-Amz-Target "AmazonSQS.<Operation>", JSON bodies named as in
// the service model, errors as {"__type": "com.amazonaws.sqs#<Shape>"} with
// the Query code in x-amzn-query-error (the SDKs in query-compatible mode
// report that code).

const jsonContentType = "application/x-amz-json-1.0"

type jsonHandler func(s *Service, r *http.Request, body []byte) (any, error)

// jsonOp decodes the request body into In and calls fn.
func jsonOp[In any](fn func(s *Service, r *http.Request, in *In) (any, error)) jsonHandler {
	return func(s *Service, r *http.Request, body []byte) (any, error) {
		var in In
		if err := awsproto.DecodeJSON(body, &in); err != nil {
			return nil, err
		}
		return fn(s, r, &in)
	}
}

var jsonOps map[string]jsonHandler

func init() {
	jsonOps = map[string]jsonHandler{
		"CreateQueue":                  jsonOp(jsonCreateQueue),
		"GetQueueUrl":                  jsonOp(jsonGetQueueURL),
		"GetQueueAttributes":           jsonOp(jsonGetQueueAttributes),
		"SetQueueAttributes":           jsonOp(jsonSetQueueAttributes),
		"DeleteQueue":                  jsonOp(jsonDeleteQueue),
		"PurgeQueue":                   jsonOp(jsonPurgeQueue),
		"ListQueues":                   jsonOp(jsonListQueues),
		"ListDeadLetterSourceQueues":   jsonOp(jsonListDeadLetterSourceQueues),
		"TagQueue":                     jsonOp(jsonTagQueue),
		"UntagQueue":                   jsonOp(jsonUntagQueue),
		"ListQueueTags":                jsonOp(jsonListQueueTags),
		"SendMessage":                  jsonOp(jsonSendMessage),
		"SendMessageBatch":             jsonOp(jsonSendMessageBatch),
		"ReceiveMessage":               jsonOp(jsonReceiveMessage),
		"DeleteMessage":                jsonOp(jsonDeleteMessage),
		"DeleteMessageBatch":           jsonOp(jsonDeleteMessageBatch),
		"ChangeMessageVisibility":      jsonOp(jsonChangeMessageVisibility),
		"ChangeMessageVisibilityBatch": jsonOp(jsonChangeMessageVisibilityBatch),
	}
}

func (s *Service) serveJSON(w http.ResponseWriter, r *http.Request) {
	_, op, body, err := awsproto.JSONTarget(r)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	h := jsonOps[op]
	if h == nil {
		writeJSONError(w, newErr("UnknownOperationException", "InvalidAction", http.StatusBadRequest,
			"The action %s is not valid for this endpoint.", op))
		return
	}
	out, err := h(s, r, body)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	awsproto.WriteJSON(w, jsonContentType, out)
}

func writeJSONError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	awsproto.WriteJSONError(w, jsonContentType, "com.amazonaws.sqs#",
		&awsproto.Error{Code: e.jsonType, Message: e.message, Status: e.status, Receiver: e.receiver}, e.queryCode)
}

type jsonQueueURL struct {
	QueueURL string `json:"QueueUrl"`
}

type jsonAttrValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

func fromJSONAttrs(in map[string]jsonAttrValue) map[string]attrValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]attrValue, len(in))
	for k, v := range in {
		out[k] = attrValue{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue}
	}
	return out
}

func toJSONAttrs(in map[string]attrValue) map[string]jsonAttrValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]jsonAttrValue, len(in))
	for k, v := range in {
		out[k] = jsonAttrValue{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue}
	}
	return out
}

func traceHeader(sys map[string]jsonAttrValue) string {
	if v, ok := sys["AWSTraceHeader"]; ok && v.StringValue != nil {
		return *v.StringValue
	}
	return ""
}

func jsonCreateQueue(s *Service, r *http.Request, in *struct {
	QueueName  string
	Attributes map[string]string
	Tags       map[string]string `json:"tags"`
}) (any, error) {
	if err := s.createQueue(in.QueueName, in.Attributes, in.Tags); err != nil {
		return nil, err
	}
	return jsonQueueURL{s.queueURL(r, in.QueueName)}, nil
}

func jsonGetQueueURL(s *Service, r *http.Request, in *struct {
	QueueName              string
	QueueOwnerAWSAccountID string `json:"QueueOwnerAWSAccountId"`
}) (any, error) {
	if in.QueueName == "" {
		return nil, errMissingParameter("QueueName")
	}
	if in.QueueOwnerAWSAccountID != "" && in.QueueOwnerAWSAccountID != s.cfg.AccountID {
		return nil, errQueueDoesNotExist()
	}
	if err := s.queueExists(in.QueueName); err != nil {
		return nil, err
	}
	return jsonQueueURL{s.queueURL(r, in.QueueName)}, nil
}

func jsonGetQueueAttributes(s *Service, r *http.Request, in *struct {
	QueueURL       string `json:"QueueUrl"`
	AttributeNames []string
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	attrs, err := s.getAttributes(name, in.AttributeNames)
	if err != nil {
		return nil, err
	}
	return struct {
		Attributes map[string]string `json:",omitempty"`
	}{attrs}, nil
}

func jsonSetQueueAttributes(s *Service, r *http.Request, in *struct {
	QueueURL   string `json:"QueueUrl"`
	Attributes map[string]string
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.setAttributes(name, in.Attributes)
}

type jsonQueueRequest struct {
	QueueURL string `json:"QueueUrl"`
}

func jsonDeleteQueue(s *Service, r *http.Request, in *jsonQueueRequest) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deleteQueue(name)
}

func jsonPurgeQueue(s *Service, r *http.Request, in *jsonQueueRequest) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.purgeQueue(name)
}

type jsonQueueList struct {
	QueueURLs []string `json:"QueueUrls,omitempty"`
	NextToken string   `json:",omitempty"`
}

func jsonListQueues(s *Service, r *http.Request, in *struct {
	QueueNamePrefix string
	MaxResults      int
	NextToken       string
}) (any, error) {
	names, next, err := s.listQueues(in.QueueNamePrefix, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := jsonQueueList{NextToken: next}
	for _, n := range names {
		out.QueueURLs = append(out.QueueURLs, s.queueURL(r, n))
	}
	return out, nil
}

func jsonListDeadLetterSourceQueues(s *Service, r *http.Request, in *jsonQueueRequest) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	names, err := s.deadLetterSources(name)
	if err != nil {
		return nil, err
	}
	urls := []string{} // required member: always present
	for _, n := range names {
		urls = append(urls, s.queueURL(r, n))
	}
	return struct {
		QueueURLs []string `json:"queueUrls"`
	}{urls}, nil
}

func jsonTagQueue(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	Tags     map[string]string
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.tagQueue(name, in.Tags)
}

func jsonUntagQueue(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	TagKeys  []string
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.untagQueue(name, in.TagKeys)
}

func jsonListQueueTags(s *Service, r *http.Request, in *jsonQueueRequest) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	tags, err := s.listQueueTags(name)
	if err != nil {
		return nil, err
	}
	return struct {
		Tags map[string]string `json:",omitempty"`
	}{tags}, nil
}

type jsonSendEntry struct {
	MessageBody             string
	DelaySeconds            *int
	MessageAttributes       map[string]jsonAttrValue
	MessageSystemAttributes map[string]jsonAttrValue
	MessageDeduplicationID  string `json:"MessageDeduplicationId"`
	MessageGroupID          string `json:"MessageGroupId"`
}

func (e jsonSendEntry) input() sendInput {
	return sendInput{Body: e.MessageBody, Delay: e.DelaySeconds, Attributes: fromJSONAttrs(e.MessageAttributes), TraceHeader: traceHeader(e.MessageSystemAttributes)}
}

type jsonSendResult struct {
	ID                           string `json:"Id,omitempty"`
	MessageID                    string `json:"MessageId"`
	MD5OfMessageBody             string
	MD5OfMessageAttributes       string `json:",omitempty"`
	MD5OfMessageSystemAttributes string `json:",omitempty"`
}

func toJSONSendResult(id string, r sendResult) jsonSendResult {
	return jsonSendResult{ID: id, MessageID: r.MessageID, MD5OfMessageBody: r.MD5Body, MD5OfMessageAttributes: r.MD5Attrs, MD5OfMessageSystemAttributes: r.MD5SysAttrs}
}

func jsonSendMessage(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	jsonSendEntry
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	res, err := s.send(name, in.input())
	if err != nil {
		return nil, err
	}
	return toJSONSendResult("", res), nil
}

type jsonBatchFailure struct {
	ID          string `json:"Id"`
	SenderFault bool
	Code        string
	Message     string `json:",omitempty"`
}

func toJSONFailures(in []batchFailure) []jsonBatchFailure {
	out := []jsonBatchFailure{} // required member: always present
	for _, f := range in {
		out = append(out, jsonBatchFailure{ID: f.ID, SenderFault: f.SenderFault, Code: f.Code, Message: f.Message})
	}
	return out
}

func jsonSendMessageBatch(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []struct {
		ID string `json:"Id"`
		jsonSendEntry
	}
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	entries := make([]sendBatchEntry, len(in.Entries))
	for i, e := range in.Entries {
		entries[i] = sendBatchEntry{ID: e.ID, sendInput: e.input()}
	}
	ok, failed, err := s.sendBatch(name, entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		Successful []jsonSendResult
		Failed     []jsonBatchFailure
	}{Successful: []jsonSendResult{}, Failed: toJSONFailures(failed)}
	for _, e := range in.Entries {
		if res, found := ok[e.ID]; found {
			out.Successful = append(out.Successful, toJSONSendResult(e.ID, res))
		}
	}
	return out, nil
}

type jsonMessage struct {
	MessageID              string                   `json:"MessageId"`
	ReceiptHandle          string                   `json:"ReceiptHandle"`
	MD5OfBody              string                   `json:"MD5OfBody"`
	Body                   string                   `json:"Body"`
	Attributes             map[string]string        `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string                   `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]jsonAttrValue `json:"MessageAttributes,omitempty"`
}

func jsonReceiveMessage(s *Service, r *http.Request, in *struct {
	QueueURL                    string `json:"QueueUrl"`
	AttributeNames              []string
	MessageSystemAttributeNames []string
	MessageAttributeNames       []string
	MaxNumberOfMessages         int
	VisibilityTimeout           *int
	WaitTimeSeconds             *int
	ReceiveRequestAttemptID     string `json:"ReceiveRequestAttemptId"`
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	msgs, err := s.receive(r.Context(), name, receiveInput{
		MaxMessages:       in.MaxNumberOfMessages,
		Visibility:        in.VisibilityTimeout,
		Wait:              in.WaitTimeSeconds,
		SystemAttributes:  append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...),
		MessageAttributes: in.MessageAttributeNames,
	})
	if err != nil {
		return nil, err
	}
	out := struct {
		Messages []jsonMessage `json:",omitempty"`
	}{}
	for _, m := range msgs {
		out.Messages = append(out.Messages, jsonMessage{
			MessageID: m.ID, ReceiptHandle: m.Receipt, MD5OfBody: m.MD5Body, Body: m.Body,
			Attributes: m.SystemAttributes, MD5OfMessageAttributes: m.MD5Attrs, MessageAttributes: toJSONAttrs(m.MessageAttributes),
		})
	}
	return out, nil
}

func jsonDeleteMessage(s *Service, r *http.Request, in *struct {
	QueueURL      string `json:"QueueUrl"`
	ReceiptHandle string
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.deleteMessage(name, in.ReceiptHandle)
}

type jsonHandleEntry struct {
	ID                string `json:"Id"`
	ReceiptHandle     string
	VisibilityTimeout int
}

type jsonBatchOK struct {
	ID string `json:"Id"`
}

func jsonHandleBatch(s *Service, queueURL string, in []jsonHandleEntry, do func(string, []handleEntry) ([]string, []batchFailure, error)) (any, error) {
	name, err := s.nameFromURL(queueURL)
	if err != nil {
		return nil, err
	}
	entries := make([]handleEntry, len(in))
	for i, e := range in {
		entries[i] = handleEntry{ID: e.ID, Handle: e.ReceiptHandle, Timeout: e.VisibilityTimeout}
	}
	ok, failed, err := do(name, entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		Successful []jsonBatchOK
		Failed     []jsonBatchFailure
	}{Successful: []jsonBatchOK{}, Failed: toJSONFailures(failed)}
	for _, id := range ok {
		out.Successful = append(out.Successful, jsonBatchOK{id})
	}
	return out, nil
}

func jsonDeleteMessageBatch(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []jsonHandleEntry
}) (any, error) {
	return jsonHandleBatch(s, in.QueueURL, in.Entries, s.deleteBatch)
}

func jsonChangeMessageVisibility(s *Service, r *http.Request, in *struct {
	QueueURL          string `json:"QueueUrl"`
	ReceiptHandle     string
	VisibilityTimeout *int
}) (any, error) {
	name, err := s.nameFromURL(in.QueueURL)
	if err != nil {
		return nil, err
	}
	if in.VisibilityTimeout == nil {
		return nil, errMissingParameter("VisibilityTimeout")
	}
	return struct{}{}, s.changeVisibility(name, in.ReceiptHandle, *in.VisibilityTimeout)
}

func jsonChangeMessageVisibilityBatch(s *Service, r *http.Request, in *struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []jsonHandleEntry
}) (any, error) {
	return jsonHandleBatch(s, in.QueueURL, in.Entries, s.changeVisibilityBatch)
}
