package sqs

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strconv"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file is SQS's older Query protocol, which the AWS CLI v2 in Debian
// (2.9.x) still speaks: form-encoded Action=...&Version=2012-11-05,
// flattened lists and maps (AttributeName.1, Attribute.1.Name,
// MessageAttribute.1.Value.StringValue), XML answers under SQS's namespace,
// and the awsquery error document with the Query error codes.

const queryXMLNS = "http://queue.amazonaws.com/doc/2012-11-05/"

type queryHandler func(s *Service, r *http.Request, v awsproto.Values) (any, error)

var queryOps map[string]queryHandler

func init() {
	queryOps = map[string]queryHandler{
		"CreateQueue":                  queryCreateQueue,
		"GetQueueUrl":                  queryGetQueueURL,
		"GetQueueAttributes":           queryGetQueueAttributes,
		"SetQueueAttributes":           querySetQueueAttributes,
		"DeleteQueue":                  queryDeleteQueue,
		"PurgeQueue":                   queryPurgeQueue,
		"ListQueues":                   queryListQueues,
		"ListDeadLetterSourceQueues":   queryListDeadLetterSourceQueues,
		"TagQueue":                     queryTagQueue,
		"UntagQueue":                   queryUntagQueue,
		"ListQueueTags":                queryListQueueTags,
		"SendMessage":                  querySendMessage,
		"SendMessageBatch":             querySendMessageBatch,
		"ReceiveMessage":               queryReceiveMessage,
		"DeleteMessage":                queryDeleteMessage,
		"DeleteMessageBatch":           queryDeleteMessageBatch,
		"ChangeMessageVisibility":      queryChangeMessageVisibility,
		"ChangeMessageVisibilityBatch": queryChangeMessageVisibilityBatch,
	}
}

// queryEnvelope is <ActionResponse><ActionResult>…</ActionResult>
// <ResponseMetadata/></ActionResponse>; Result's own XMLName names it.
type queryEnvelope struct {
	XMLName xml.Name
	Xmlns   string                    `xml:"xmlns,attr"`
	Result  any                       `xml:",omitempty"`
	Meta    awsproto.ResponseMetadata `xml:"ResponseMetadata"`
}

func (s *Service) serveQuery(w http.ResponseWriter, r *http.Request) {
	v, err := awsproto.ParseQuery(r)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	action := v.Action()
	h := queryOps[action]
	if h == nil {
		if action == "" {
			writeQueryError(w, errMissingParameter("Action"))
			return
		}
		writeQueryError(w, newErr("InvalidAction", "", http.StatusBadRequest, "The action %s is not valid for this endpoint.", action))
		return
	}
	out, err := h(s, r, v)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	awsproto.WriteXML(w, http.StatusOK, queryEnvelope{
		XMLName: xml.Name{Local: action + "Response"},
		Xmlns:   queryXMLNS,
		Result:  out,
		Meta:    awsproto.NewResponseMetadata(),
	})
}

func writeQueryError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	awsproto.WriteQueryError(w, queryXMLNS, &awsproto.Error{Code: e.queryCode, Message: e.message, Status: e.status, Receiver: e.receiver})
}

// queryQueue resolves the queue a request is about: QueueUrl, or the
// request path, which older clients post to instead.
func (s *Service) queryQueue(r *http.Request, v awsproto.Values) (string, error) {
	if u := v.Get("QueueUrl"); u != "" {
		return s.nameFromURL(u)
	}
	if r.URL.Path != "" && r.URL.Path != "/" {
		return s.nameFromURL(r.URL.Path)
	}
	return "", errMissingParameter("QueueUrl")
}

// pairs reads a flattened map: prefix.N.<key>=K&prefix.N.<value>=V.
func pairs(v awsproto.Values, prefix, key, value string) map[string]string {
	var out map[string]string
	for _, e := range v.Structs(prefix) {
		if out == nil {
			out = map[string]string{}
		}
		out[e.Get(key)] = e.Get(value)
	}
	return out
}

// optInt reads an optional integer parameter.
func optInt(v awsproto.Values, key string) (*int, error) {
	if v.Get(key) == "" {
		return nil, nil
	}
	n, err := v.Int(key, 0)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// messageAttributes reads prefix.N.Name and prefix.N.Value.{DataType,
// StringValue, BinaryValue} (binary values in base64).
func messageAttributes(v awsproto.Values, prefix string) (map[string]attrValue, error) {
	var out map[string]attrValue
	for _, e := range v.Structs(prefix) {
		a := attrValue{DataType: e.Get("Value.DataType")}
		if _, ok := e.Values["Value.StringValue"]; ok {
			s := e.Get("Value.StringValue")
			a.StringValue = &s
		}
		if b64 := e.Get("Value.BinaryValue"); b64 != "" {
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				return nil, errInvalidParameterValue("The message attribute '%s' has an invalid binary value: not base64.", e.Get("Name"))
			}
			a.BinaryValue = b
		}
		if out == nil {
			out = map[string]attrValue{}
		}
		out[e.Get("Name")] = a
	}
	return out, nil
}

type queryURLResult struct {
	QueueURL string `xml:"QueueUrl"`
}

type xmlAttr struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

func xmlAttrs(m map[string]string) []xmlAttr {
	var out []xmlAttr
	for _, k := range sortedKeys(m) {
		out = append(out, xmlAttr{k, m[k]})
	}
	return out
}

func queryCreateQueue(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name := v.Get("QueueName")
	if err := s.createQueue(name, pairs(v, "Attribute", "Name", "Value"), pairs(v, "Tag", "Key", "Value")); err != nil {
		return nil, err
	}
	return struct {
		XMLName xml.Name `xml:"CreateQueueResult"`
		queryURLResult
	}{queryURLResult: queryURLResult{s.queueURL(r, name)}}, nil
}

func queryGetQueueURL(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name := v.Get("QueueName")
	if name == "" {
		return nil, errMissingParameter("QueueName")
	}
	if owner := v.Get("QueueOwnerAWSAccountId"); owner != "" && owner != s.cfg.AccountID {
		return nil, errQueueDoesNotExist()
	}
	if err := s.queueExists(name); err != nil {
		return nil, err
	}
	return struct {
		XMLName xml.Name `xml:"GetQueueUrlResult"`
		queryURLResult
	}{queryURLResult: queryURLResult{s.queueURL(r, name)}}, nil
}

func queryGetQueueAttributes(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	attrs, err := s.getAttributes(name, v.List("AttributeName"))
	if err != nil {
		return nil, err
	}
	return struct {
		XMLName   xml.Name  `xml:"GetQueueAttributesResult"`
		Attribute []xmlAttr `xml:"Attribute"`
	}{Attribute: xmlAttrs(attrs)}, nil
}

func querySetQueueAttributes(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.setAttributes(name, pairs(v, "Attribute", "Name", "Value"))
}

func queryDeleteQueue(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.deleteQueue(name)
}

func queryPurgeQueue(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.purgeQueue(name)
}

func queryListQueues(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	max, err := v.Int("MaxResults", 0)
	if err != nil {
		return nil, err
	}
	names, next, err := s.listQueues(v.Get("QueueNamePrefix"), max, v.Get("NextToken"))
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName   xml.Name `xml:"ListQueuesResult"`
		QueueURL  []string `xml:"QueueUrl"`
		NextToken string   `xml:"NextToken,omitempty"`
	}{NextToken: next}
	for _, n := range names {
		out.QueueURL = append(out.QueueURL, s.queueURL(r, n))
	}
	return out, nil
}

func queryListDeadLetterSourceQueues(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	names, err := s.deadLetterSources(name)
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName  xml.Name `xml:"ListDeadLetterSourceQueuesResult"`
		QueueURL []string `xml:"QueueUrl"`
	}{}
	for _, n := range names {
		out.QueueURL = append(out.QueueURL, s.queueURL(r, n))
	}
	return out, nil
}

func queryTagQueue(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.tagQueue(name, pairs(v, "Tag", "Key", "Value"))
}

func queryUntagQueue(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.untagQueue(name, v.List("TagKey"))
}

func queryListQueueTags(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	tags, err := s.listQueueTags(name)
	if err != nil {
		return nil, err
	}
	type tag struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	}
	out := struct {
		XMLName xml.Name `xml:"ListQueueTagsResult"`
		Tag     []tag    `xml:"Tag"`
	}{}
	for _, k := range sortedKeys(tags) {
		out.Tag = append(out.Tag, tag{k, tags[k]})
	}
	return out, nil
}

// querySendInput reads one message's parameters, relative to its prefix.
func querySendInput(v awsproto.Values) (sendInput, error) {
	in := sendInput{Body: v.Get("MessageBody")}
	var err error
	if in.Delay, err = optInt(v, "DelaySeconds"); err != nil {
		return in, err
	}
	if in.Attributes, err = messageAttributes(v, "MessageAttribute"); err != nil {
		return in, err
	}
	sys, err := messageAttributes(v, "MessageSystemAttribute")
	if err != nil {
		return in, err
	}
	if t, ok := sys["AWSTraceHeader"]; ok && t.StringValue != nil {
		in.TraceHeader = *t.StringValue
	}
	return in, nil
}

type xmlSendResult struct {
	ID                           string `xml:"Id,omitempty"`
	MessageID                    string `xml:"MessageId"`
	MD5OfMessageBody             string `xml:"MD5OfMessageBody"`
	MD5OfMessageAttributes       string `xml:"MD5OfMessageAttributes,omitempty"`
	MD5OfMessageSystemAttributes string `xml:"MD5OfMessageSystemAttributes,omitempty"`
}

func toXMLSendResult(id string, r sendResult) xmlSendResult {
	return xmlSendResult{ID: id, MessageID: r.MessageID, MD5OfMessageBody: r.MD5Body, MD5OfMessageAttributes: r.MD5Attrs, MD5OfMessageSystemAttributes: r.MD5SysAttrs}
}

func querySendMessage(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	in, err := querySendInput(v)
	if err != nil {
		return nil, err
	}
	res, err := s.send(name, in)
	if err != nil {
		return nil, err
	}
	return struct {
		XMLName xml.Name `xml:"SendMessageResult"`
		xmlSendResult
	}{xmlSendResult: toXMLSendResult("", res)}, nil
}

type xmlBatchFailure struct {
	ID          string `xml:"Id"`
	SenderFault bool   `xml:"SenderFault"`
	Code        string `xml:"Code"`
	Message     string `xml:"Message,omitempty"`
}

func toXMLFailures(in []batchFailure) []xmlBatchFailure {
	var out []xmlBatchFailure
	for _, f := range in {
		out = append(out, xmlBatchFailure{ID: f.ID, SenderFault: f.SenderFault, Code: f.Code, Message: f.Message})
	}
	return out
}

func querySendMessageBatch(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	var entries []sendBatchEntry
	for _, e := range v.Structs("SendMessageBatchRequestEntry") {
		in, err := querySendInput(e)
		if err != nil {
			return nil, err
		}
		entries = append(entries, sendBatchEntry{ID: e.Get("Id"), sendInput: in})
	}
	ok, failed, err := s.sendBatch(name, entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName    xml.Name          `xml:"SendMessageBatchResult"`
		Successful []xmlSendResult   `xml:"SendMessageBatchResultEntry"`
		Failed     []xmlBatchFailure `xml:"BatchResultErrorEntry"`
	}{Failed: toXMLFailures(failed)}
	for _, e := range entries {
		if res, found := ok[e.ID]; found {
			out.Successful = append(out.Successful, toXMLSendResult(e.ID, res))
		}
	}
	return out, nil
}

type xmlAttrValue struct {
	StringValue string `xml:"StringValue,omitempty"`
	BinaryValue string `xml:"BinaryValue,omitempty"`
	DataType    string `xml:"DataType"`
}

type xmlMessageAttr struct {
	Name  string       `xml:"Name"`
	Value xmlAttrValue `xml:"Value"`
}

type xmlMessage struct {
	MessageID              string           `xml:"MessageId"`
	ReceiptHandle          string           `xml:"ReceiptHandle"`
	MD5OfBody              string           `xml:"MD5OfBody"`
	Body                   string           `xml:"Body"`
	Attribute              []xmlAttr        `xml:"Attribute"`
	MD5OfMessageAttributes string           `xml:"MD5OfMessageAttributes,omitempty"`
	MessageAttribute       []xmlMessageAttr `xml:"MessageAttribute"`
}

func queryReceiveMessage(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	in := receiveInput{
		SystemAttributes:  append(v.List("AttributeName"), v.List("MessageSystemAttributeName")...),
		MessageAttributes: v.List("MessageAttributeName"),
	}
	if in.MaxMessages, err = v.Int("MaxNumberOfMessages", 0); err != nil {
		return nil, err
	}
	if in.Visibility, err = optInt(v, "VisibilityTimeout"); err != nil {
		return nil, err
	}
	if in.Wait, err = optInt(v, "WaitTimeSeconds"); err != nil {
		return nil, err
	}
	msgs, err := s.receive(r.Context(), name, in)
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName xml.Name     `xml:"ReceiveMessageResult"`
		Message []xmlMessage `xml:"Message"`
	}{}
	for _, m := range msgs {
		x := xmlMessage{MessageID: m.ID, ReceiptHandle: m.Receipt, MD5OfBody: m.MD5Body, Body: m.Body,
			Attribute: xmlAttrs(m.SystemAttributes), MD5OfMessageAttributes: m.MD5Attrs}
		for _, k := range sortedKeys(m.MessageAttributes) {
			a := m.MessageAttributes[k]
			xv := xmlAttrValue{DataType: a.DataType}
			if a.StringValue != nil {
				xv.StringValue = *a.StringValue
			} else {
				xv.BinaryValue = base64.StdEncoding.EncodeToString(a.BinaryValue)
			}
			x.MessageAttribute = append(x.MessageAttribute, xmlMessageAttr{Name: k, Value: xv})
		}
		out.Message = append(out.Message, x)
	}
	return out, nil
}

func queryDeleteMessage(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	return nil, s.deleteMessage(name, v.Get("ReceiptHandle"))
}

type xmlBatchOK struct {
	ID string `xml:"Id"`
}

// queryHandleEntries reads prefix.N.{Id,ReceiptHandle,VisibilityTimeout}.
func queryHandleEntries(v awsproto.Values, prefix string) ([]handleEntry, error) {
	var out []handleEntry
	for _, e := range v.Structs(prefix) {
		t, err := e.Int("VisibilityTimeout", 0)
		if err != nil {
			return nil, err
		}
		out = append(out, handleEntry{ID: e.Get("Id"), Handle: e.Get("ReceiptHandle"), Timeout: t})
	}
	return out, nil
}

func queryDeleteMessageBatch(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	entries, err := queryHandleEntries(v, "DeleteMessageBatchRequestEntry")
	if err != nil {
		return nil, err
	}
	ok, failed, err := s.deleteBatch(name, entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName    xml.Name          `xml:"DeleteMessageBatchResult"`
		Successful []xmlBatchOK      `xml:"DeleteMessageBatchResultEntry"`
		Failed     []xmlBatchFailure `xml:"BatchResultErrorEntry"`
	}{Failed: toXMLFailures(failed)}
	for _, id := range ok {
		out.Successful = append(out.Successful, xmlBatchOK{id})
	}
	return out, nil
}

func queryChangeMessageVisibility(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	if v.Get("VisibilityTimeout") == "" {
		return nil, errMissingParameter("VisibilityTimeout")
	}
	t, err := strconv.Atoi(v.Get("VisibilityTimeout"))
	if err != nil {
		return nil, errInvalidParameterValue("Value %s for parameter VisibilityTimeout is invalid. Reason: Must be an integer.", v.Get("VisibilityTimeout"))
	}
	return nil, s.changeVisibility(name, v.Get("ReceiptHandle"), t)
}

func queryChangeMessageVisibilityBatch(s *Service, r *http.Request, v awsproto.Values) (any, error) {
	name, err := s.queryQueue(r, v)
	if err != nil {
		return nil, err
	}
	entries, err := queryHandleEntries(v, "ChangeMessageVisibilityBatchRequestEntry")
	if err != nil {
		return nil, err
	}
	ok, failed, err := s.changeVisibilityBatch(name, entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		XMLName    xml.Name          `xml:"ChangeMessageVisibilityBatchResult"`
		Successful []xmlBatchOK      `xml:"ChangeMessageVisibilityBatchResultEntry"`
		Failed     []xmlBatchFailure `xml:"BatchResultErrorEntry"`
	}{Failed: toXMLFailures(failed)}
	for _, id := range ok {
		out.Successful = append(out.Successful, xmlBatchOK{id})
	}
	return out, nil
}
