package sqs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file is SQS's behaviour, shared by both protocols. Every method
// takes the queue's name (the protocols resolve URLs) and returns
// *apiError values.

const maxBatchEntries = 10

var batchIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (s *Service) createQueue(name string, attrs, tags map[string]string) error {
	if err := validateQueueName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exists := func(arn string) bool { return s.queueByARNLocked(arn) != nil }
	if q := s.queues[name]; q != nil {
		if !q.Attrs.sameAs(attrs, exists) {
			return errQueueNameExists(name)
		}
		return nil
	}
	a := defaultAttrs()
	if err := a.apply(attrs, exists); err != nil {
		return err
	}
	now := s.clock.Now()
	s.queues[name] = &queue{Name: name, Attrs: a, Tags: copyMap(tags), Created: now, Modified: now, notify: make(chan struct{})}
	s.markDirtyLocked()
	s.log.Info("queue created", "queue", name)
	return nil
}

func (s *Service) queueExists(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.lookupLocked(name)
	return err
}

func (s *Service) deleteQueue(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return err
	}
	delete(s.queues, name)
	wakeLocked(q)
	s.markDirtyLocked()
	s.log.Info("queue deleted", "queue", name)
	return nil
}

func (s *Service) purgeQueue(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return err
	}
	q.Messages = nil
	s.markDirtyLocked()
	return nil
}

// listQueues returns the names of queues starting with prefix, in name
// order. With max > 0 it pages: at most max names, and a token for the
// rest; without, at most 1000 names and no token, as SQS does.
func (s *Service) listQueues(prefix string, max int, token string) ([]string, string, error) {
	if max < 0 || max > 1000 {
		return nil, "", errInvalidParameterValue("Value %d for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000.", max)
	}
	after := ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return nil, "", errInvalidParameterValue("Invalid NextToken value.")
		}
		after = string(b)
	}
	s.mu.Lock()
	names := sortedKeys(s.queues)
	s.mu.Unlock()
	limit := max
	if limit == 0 {
		limit = 1000
	}
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) || n <= after {
			continue
		}
		if len(out) == limit {
			if max > 0 {
				return out, base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1])), nil
			}
			break
		}
		out = append(out, n)
	}
	return out, "", nil
}

// deadLetterSources returns the queues whose redrive policy targets name.
func (s *Service) deadLetterSources(name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.lookupLocked(name); err != nil {
		return nil, err
	}
	arn := s.QueueARN(name)
	var out []string
	for _, n := range sortedKeys(s.queues) {
		if r := s.queues[n].Attrs.Redrive; r != nil && r.DeadLetterTargetARN == arn {
			out = append(out, n)
		}
	}
	return out, nil
}

// allAttributeNames are the queue attributes "All" stands for, besides
// the settable ones.
var computedAttributeNames = []string{
	"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
}

func (s *Service) getAttributes(name string, names []string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	s.expireLocked(q, now)
	all := q.Attrs.settable()
	var visible, inFlight, delayed int
	for _, m := range q.Messages {
		switch {
		case m.inFlight(now):
			inFlight++
		case m.delayed(now):
			delayed++
		default:
			visible++
		}
	}
	all["ApproximateNumberOfMessages"] = strconv.Itoa(visible)
	all["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(inFlight)
	all["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(delayed)
	all["CreatedTimestamp"] = strconv.FormatInt(q.Created.Unix(), 10)
	all["LastModifiedTimestamp"] = strconv.FormatInt(q.Modified.Unix(), 10)
	all["QueueArn"] = s.QueueARN(q.Name)

	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all, nil
		}
		v, ok := all[n]
		switch {
		case ok:
			out[n] = v
		case n == "RedrivePolicy" || opaqueAttrs[n]:
			// Known but unset: SQS leaves it out.
		default:
			return nil, errInvalidAttributeName(n)
		}
	}
	return out, nil
}

func (s *Service) setAttributes(name string, attrs map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return err
	}
	for n := range attrs {
		if readOnlyAttrs[n] {
			return errInvalidAttributeName(n)
		}
	}
	exists := func(arn string) bool { return s.queueByARNLocked(arn) != nil }
	if err := q.Attrs.apply(attrs, exists); err != nil {
		return err
	}
	q.Modified = s.clock.Now()
	// A shorter delay or visibility can make messages receivable sooner
	// than a waiting long poll expects.
	wakeLocked(q)
	s.markDirtyLocked()
	return nil
}

func (s *Service) tagQueue(name string, tags map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return err
	}
	if q.Tags == nil {
		q.Tags = map[string]string{}
	}
	for k, v := range tags {
		q.Tags[k] = v
	}
	s.markDirtyLocked()
	return nil
}

func (s *Service) untagQueue(name string, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return err
	}
	for _, k := range keys {
		delete(q.Tags, k)
	}
	s.markDirtyLocked()
	return nil
}

func (s *Service) listQueueTags(name string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	return copyMap(q.Tags), nil
}

// sendInput is one message to send.
type sendInput struct {
	Body string
	// Delay overrides the queue's DelaySeconds when set.
	Delay       *int
	Attributes  map[string]attrValue
	TraceHeader string
}

// sendResult is what SQS answers for a sent message.
type sendResult struct {
	MessageID, MD5Body, MD5Attrs, MD5SysAttrs string
}

func (s *Service) send(name string, in sendInput) (sendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return sendResult{}, err
	}
	m, res, err := s.newMessageLocked(q, in)
	if err != nil {
		return sendResult{}, err
	}
	q.Messages = append(q.Messages, m)
	if !m.VisibleAt.After(s.clock.Now()) {
		wakeLocked(q)
	}
	s.markDirtyLocked()
	return res, nil
}

// newMessageLocked validates in and builds its message.
func (s *Service) newMessageLocked(q *queue, in sendInput) (*message, sendResult, error) {
	if in.Body == "" {
		return nil, sendResult{}, errMissingParameter("MessageBody")
	}
	if !validBody(in.Body) {
		return nil, sendResult{}, errInvalidMessageContents()
	}
	attrSize, err := validateAttributes(in.Attributes)
	if err != nil {
		return nil, sendResult{}, err
	}
	if size := len(in.Body) + attrSize; size > q.Attrs.MaxMessageSize {
		return nil, sendResult{}, errInvalidParameterValue("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", q.Attrs.MaxMessageSize)
	}
	delay := q.Attrs.Delay
	if in.Delay != nil {
		if *in.Delay < 0 || time.Duration(*in.Delay)*time.Second > maxDelay {
			return nil, sendResult{}, errInvalidParameterValue("Value %d for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.", *in.Delay)
		}
		delay = time.Duration(*in.Delay) * time.Second
	}
	now := s.clock.Now()
	m := &message{
		ID:          awsproto.RequestID(),
		Body:        in.Body,
		Attributes:  in.Attributes,
		TraceHeader: in.TraceHeader,
		Sent:        now,
		VisibleAt:   now.Add(delay),
	}
	res := sendResult{MessageID: m.ID, MD5Body: md5Hex([]byte(in.Body)), MD5Attrs: md5OfAttributes(in.Attributes)}
	if in.TraceHeader != "" {
		res.MD5SysAttrs = md5OfAttributes(map[string]attrValue{"AWSTraceHeader": {DataType: "String", StringValue: &in.TraceHeader}})
	}
	return m, res, nil
}

// batchFailure is one failed entry of a batch request.
type batchFailure struct {
	ID, Code, Message string
	SenderFault       bool
}

func failure(id string, err error) batchFailure {
	e := asAPIError(err)
	return batchFailure{ID: id, Code: e.jsonType, Message: e.message, SenderFault: !e.receiver}
}

// checkBatch validates the entry ids of a batch request.
func checkBatch(ids []string, entryName string) error {
	if len(ids) == 0 {
		return errEmptyBatch(entryName)
	}
	if len(ids) > maxBatchEntries {
		return errTooManyEntries(len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !batchIDRE.MatchString(id) {
			return errInvalidBatchEntryID()
		}
		if seen[id] {
			return errBatchIDsNotDistinct(id)
		}
		seen[id] = true
	}
	return nil
}

// sendBatchEntry is one entry of SendMessageBatch.
type sendBatchEntry struct {
	ID string
	sendInput
}

// sendBatch sends each valid entry; invalid ones fail on their own.
func (s *Service) sendBatch(name string, entries []sendBatchEntry) (map[string]sendResult, []batchFailure, error) {
	ids := make([]string, len(entries))
	total := 0
	for i, e := range entries {
		ids[i] = e.ID
		total += len(e.Body)
	}
	if err := checkBatch(ids, "SendMessageBatchRequestEntry"); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupLocked(name)
	if err != nil {
		return nil, nil, err
	}
	if total > q.Attrs.MaxMessageSize {
		return nil, nil, errBatchRequestTooLong(q.Attrs.MaxMessageSize)
	}
	ok := map[string]sendResult{}
	var failed []batchFailure
	wake := false
	for _, e := range entries {
		m, res, err := s.newMessageLocked(q, e.sendInput)
		if err != nil {
			failed = append(failed, failure(e.ID, err))
			continue
		}
		q.Messages = append(q.Messages, m)
		wake = wake || !m.VisibleAt.After(s.clock.Now())
		ok[e.ID] = res
	}
	if wake {
		wakeLocked(q)
	}
	if len(ok) > 0 {
		s.markDirtyLocked()
	}
	return ok, failed, nil
}

// receiveInput is a ReceiveMessage request.
type receiveInput struct {
	MaxMessages int
	// Visibility and Wait (seconds) override the queue's when set.
	Visibility *int
	Wait       *int
	// SystemAttributes are the message system attributes asked for
	// (AttributeNames and MessageSystemAttributeNames together).
	SystemAttributes []string
	// MessageAttributes are the message attribute names asked for.
	MessageAttributes []string
}

// received is one received message, rendered for the response.
type received struct {
	ID, Receipt, MD5Body, Body string
	SystemAttributes           map[string]string
	MessageAttributes          map[string]attrValue
	MD5Attrs                   string
}

func (in *receiveInput) validate() error {
	if in.MaxMessages == 0 {
		in.MaxMessages = 1
	}
	if in.MaxMessages < 1 || in.MaxMessages > maxBatchEntries {
		return errInvalidParameterValue("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", in.MaxMessages)
	}
	if v := in.Visibility; v != nil && (*v < 0 || time.Duration(*v)*time.Second > maxVisibility) {
		return errInvalidParameterValue("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", *v)
	}
	if w := in.Wait; w != nil && (*w < 0 || time.Duration(*w)*time.Second > maxReceiveWait) {
		return errInvalidParameterValue("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *w)
	}
	return nil
}

// receive returns up to in.MaxMessages messages, long polling for up to
// the wait time while there are none. It returns early, with nothing, when
// ctx ends (the client went away) or the Service closes.
func (s *Service) receive(ctx context.Context, name string, in receiveInput) ([]received, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	var deadline time.Time
	for first := true; ; first = false {
		// A client that went away (before its request was read, or while
		// its poll waited and a message arrived at the same moment) must
		// not take a message: it would sit in flight, received by nobody,
		// for the visibility timeout. AWS can lose one that way on a
		// dropped connection; the local cloud need not add to it.
		if ctx.Err() != nil {
			return nil, nil
		}
		s.mu.Lock()
		q, err := s.lookupLocked(name)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		now := s.clock.Now()
		out := s.takeLocked(q, now, in)
		if first {
			wait := q.Attrs.ReceiveWait
			if in.Wait != nil {
				wait = time.Duration(*in.Wait) * time.Second
			}
			deadline = time.Now().Add(wait)
		}
		notify := q.notify
		next := q.nextVisibleLocked(now)
		s.mu.Unlock()

		remaining := time.Until(deadline)
		if len(out) > 0 || remaining <= 0 {
			return out, nil
		}
		sleep := min(remaining, pollInterval)
		if !next.IsZero() {
			sleep = min(sleep, max(next.Sub(now), time.Millisecond))
		}
		t := time.NewTimer(sleep)
		select {
		case <-notify:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-s.closed:
			t.Stop()
			return nil, nil
		}
		t.Stop()
	}
}

// nextVisibleLocked returns the earliest time after now at which a message
// of q becomes receivable, or zero.
func (q *queue) nextVisibleLocked(now time.Time) time.Time {
	var next time.Time
	for _, m := range q.Messages {
		if m.VisibleAt.After(now) && (next.IsZero() || m.VisibleAt.Before(next)) {
			next = m.VisibleAt
		}
	}
	return next
}

// takeLocked receives up to in.MaxMessages receivable messages of q,
// moving those received too often to the dead-letter queue instead.
func (s *Service) takeLocked(q *queue, now time.Time, in receiveInput) []received {
	s.expireLocked(q, now)
	visibility := q.Attrs.Visibility
	if in.Visibility != nil {
		visibility = time.Duration(*in.Visibility) * time.Second
	}
	var out []received
	changed := false
	for i := 0; i < len(q.Messages) && len(out) < in.MaxMessages; {
		m := q.Messages[i]
		if m.VisibleAt.After(now) {
			i++
			continue
		}
		if r := q.Attrs.Redrive; r != nil && m.ReceiveCount >= r.MaxReceiveCount {
			if dlq := s.queueByARNLocked(r.DeadLetterTargetARN); dlq != nil && dlq != q {
				q.Messages = append(q.Messages[:i], q.Messages[i+1:]...)
				s.moveToDLQLocked(q, dlq, m, now)
				changed = true
				continue
			}
			// With its target gone, AWS keeps delivering the message from
			// the source queue.
			s.log.Warn("dead-letter queue missing; message stays", "queue", q.Name, "dead-letter-arn", r.DeadLetterTargetARN)
		}
		m.ReceiveCount++
		if m.FirstReceive.IsZero() {
			m.FirstReceive = now
		}
		m.Receipt = newReceipt(q.Name, m.ID)
		m.ReceivedAt = now
		m.VisibleAt = now.Add(visibility)
		out = append(out, s.render(m, in))
		changed = true
		i++
	}
	if changed {
		s.markDirtyLocked()
	}
	return out
}

// moveToDLQLocked moves m (already removed from q) to dlq. The message
// keeps its id, body, attributes and sent time (so retention still counts
// from the original enqueue, as AWS documents); its receive count starts
// again, so a DLQ with its own redrive policy does not bounce it on at once.
func (s *Service) moveToDLQLocked(q, dlq *queue, m *message, now time.Time) {
	m.ReceiveCount = 0
	m.FirstReceive = time.Time{}
	m.Receipt = ""
	m.ReceivedAt = time.Time{}
	m.VisibleAt = now
	m.DLQSource = s.QueueARN(q.Name)
	dlq.Messages = append(dlq.Messages, m)
	wakeLocked(dlq)
	s.log.Info("message moved to dead-letter queue", "queue", q.Name, "dead-letter-queue", dlq.Name, "message-id", m.ID)
}

// expireLocked drops the messages of q older than its retention period.
func (s *Service) expireLocked(q *queue, now time.Time) {
	kept := q.Messages[:0]
	for _, m := range q.Messages {
		if now.Sub(m.Sent) < q.Attrs.Retention {
			kept = append(kept, m)
		}
	}
	if len(kept) != len(q.Messages) {
		clear(q.Messages[len(kept):])
		q.Messages = kept
		s.markDirtyLocked()
	}
}

// systemAttributeNames are the message system attributes "All" stands for.
var systemAttributeNames = []string{"SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "AWSTraceHeader", "DeadLetterQueueSourceArn"}

func (s *Service) render(m *message, in receiveInput) received {
	r := received{ID: m.ID, Receipt: m.Receipt, MD5Body: md5Hex([]byte(m.Body)), Body: m.Body}
	want := map[string]bool{}
	for _, n := range in.SystemAttributes {
		if n == "All" {
			for _, a := range systemAttributeNames {
				want[a] = true
			}
		}
		want[n] = true
	}
	if len(want) > 0 {
		attrs := map[string]string{}
		ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
		set := func(name, v string) {
			if want[name] && v != "" {
				attrs[name] = v
			}
		}
		set("SenderId", s.cfg.AccountID)
		set("SentTimestamp", ms(m.Sent))
		set("ApproximateReceiveCount", strconv.Itoa(m.ReceiveCount))
		set("ApproximateFirstReceiveTimestamp", ms(m.FirstReceive))
		set("AWSTraceHeader", m.TraceHeader)
		set("DeadLetterQueueSourceArn", m.DLQSource)
		if len(attrs) > 0 {
			r.SystemAttributes = attrs
		}
	}
	r.MessageAttributes = selectAttributes(m.Attributes, in.MessageAttributes)
	r.MD5Attrs = md5OfAttributes(r.MessageAttributes)
	return r
}

// newReceipt returns a fresh receipt handle for message id of queue: it
// names both, so a handle can be checked against the queue it is used on,
// and carries a nonce, so every receive gets a different one.
func newReceipt(queueName, id string) string {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	return base64.RawURLEncoding.EncodeToString([]byte(queueName + "\n" + id + "\n" + hex.EncodeToString(nonce[:])))
}

// parseReceipt returns the queue name and message id in a receipt handle.
func parseReceipt(handle string) (queueName, id string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(b), "\n")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// findLocked returns the message of q a receipt handle names, checking
// that the handle is well formed and belongs to q. The message is nil when
// it is gone (deleted or expired).
func (s *Service) findLocked(name, handle string) (*queue, *message, error) {
	if handle == "" {
		return nil, nil, errMissingParameter("ReceiptHandle")
	}
	q, err := s.lookupLocked(name)
	if err != nil {
		return nil, nil, err
	}
	qn, id, ok := parseReceipt(handle)
	if !ok || qn != name {
		return nil, nil, errReceiptHandleIsInvalid(handle)
	}
	s.expireLocked(q, s.clock.Now())
	for _, m := range q.Messages {
		if m.ID == id {
			return q, m, nil
		}
	}
	return q, nil, nil
}

// deleteMessage deletes the message a receipt handle names. As AWS
// documents, only the most recent receive's handle deletes: an older one
// (the message was received again since), or one of a message already
// gone, succeeds without effect.
func (s *Service) deleteMessage(name, handle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, m, err := s.findLocked(name, handle)
	if err != nil || m == nil || m.Receipt != handle {
		return err
	}
	for i, x := range q.Messages {
		if x == m {
			q.Messages = append(q.Messages[:i], q.Messages[i+1:]...)
			break
		}
	}
	s.markDirtyLocked()
	return nil
}

// changeVisibility makes an in-flight message visible again after timeout
// seconds from now.
func (s *Service) changeVisibility(name, handle string, timeout int) error {
	if timeout < 0 || time.Duration(timeout)*time.Second > maxVisibility {
		return errInvalidParameterValue("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", timeout)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, m, err := s.findLocked(name, handle)
	if err != nil {
		return err
	}
	if m == nil || m.Receipt != handle {
		return errInvalidParameterValue("Value %s for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.", handle)
	}
	now := s.clock.Now()
	if !m.inFlight(now) {
		return errMessageNotInflight()
	}
	d := time.Duration(timeout) * time.Second
	if now.Sub(m.ReceivedAt)+d > maxVisibility {
		return errInvalidParameterValue("Value %d for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds].", timeout)
	}
	m.VisibleAt = now.Add(d)
	if d == 0 {
		wakeLocked(q)
	}
	s.markDirtyLocked()
	return nil
}

// handleEntry is one entry of DeleteMessageBatch or
// ChangeMessageVisibilityBatch.
type handleEntry struct {
	ID, Handle string
	Timeout    int
}

func (s *Service) deleteBatch(name string, entries []handleEntry) ([]string, []batchFailure, error) {
	return s.handleBatch(name, entries, "DeleteMessageBatchRequestEntry", func(e handleEntry) error {
		return s.deleteMessage(name, e.Handle)
	})
}

func (s *Service) changeVisibilityBatch(name string, entries []handleEntry) ([]string, []batchFailure, error) {
	return s.handleBatch(name, entries, "ChangeMessageVisibilityBatchRequestEntry", func(e handleEntry) error {
		return s.changeVisibility(name, e.Handle, e.Timeout)
	})
}

func (s *Service) handleBatch(name string, entries []handleEntry, entryName string, do func(handleEntry) error) ([]string, []batchFailure, error) {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	if err := checkBatch(ids, entryName); err != nil {
		return nil, nil, err
	}
	if err := s.queueExists(name); err != nil {
		return nil, nil, err
	}
	var ok []string
	var failed []batchFailure
	for _, e := range entries {
		if err := do(e); err != nil {
			if asAPIError(err).jsonType == "QueueDoesNotExist" {
				return nil, nil, err
			}
			failed = append(failed, failure(e.ID, err))
			continue
		}
		ok = append(ok, e.ID)
	}
	return ok, failed, nil
}
