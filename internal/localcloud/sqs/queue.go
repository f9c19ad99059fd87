package sqs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS's limits and defaults for standard queues.
const (
	defaultVisibility     = 30 * time.Second
	maxVisibility         = 12 * time.Hour
	defaultRetention      = 4 * 24 * time.Hour
	minRetention          = time.Minute
	maxRetention          = 14 * 24 * time.Hour
	maxDelay              = 15 * time.Minute
	maxReceiveWait        = 20 * time.Second
	defaultMaxMessageSize = 256 << 10
	minMaxMessageSize     = 1 << 10
	// maxMaxMessageSize is the 1 MiB that SQS accepts since 2025.
	maxMaxMessageSize  = 1 << 20
	maxMaxReceiveCount = 1000
)

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// redrivePolicy moves a message to the dead-letter queue once it has been
// received MaxReceiveCount times without being deleted.
type redrivePolicy struct {
	DeadLetterTargetARN string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

// queueAttrs are a queue's settable attributes.
type queueAttrs struct {
	Visibility     time.Duration  `json:"visibility"`
	Retention      time.Duration  `json:"retention"`
	Delay          time.Duration  `json:"delay"`
	ReceiveWait    time.Duration  `json:"receive_wait"`
	MaxMessageSize int            `json:"max_message_size"`
	Redrive        *redrivePolicy `json:"redrive,omitempty"`
	// Opaque holds attributes the local cloud stores and returns but does
	// not act on (Policy, RedriveAllowPolicy, KMS and SSE settings).
	Opaque map[string]string `json:"opaque,omitempty"`
}

func defaultAttrs() queueAttrs {
	return queueAttrs{Visibility: defaultVisibility, Retention: defaultRetention, MaxMessageSize: defaultMaxMessageSize}
}

// queue is one standard queue and its messages. Guarded by Service.mu.
type queue struct {
	Name     string            `json:"name"`
	Attrs    queueAttrs        `json:"attrs"`
	Tags     map[string]string `json:"tags,omitempty"`
	Created  time.Time         `json:"created"`
	Modified time.Time         `json:"modified"`
	// Messages are kept in the order they arrived; receives scan them from
	// the oldest, which makes delivery order predictable in tests (AWS
	// promises no order for standard queues).
	Messages []*message `json:"messages"`

	// notify is closed and replaced whenever a message may have become
	// receivable, waking long polls.
	notify chan struct{}
}

// opaqueAttrs are accepted, stored and returned without effect.
var opaqueAttrs = map[string]bool{
	"Policy": true, "RedriveAllowPolicy": true, "KmsMasterKeyId": true,
	"KmsDataKeyReusePeriodSeconds": true, "SqsManagedSseEnabled": true,
}

// readOnlyAttrs are computed; setting them is an error.
var readOnlyAttrs = map[string]bool{
	"ApproximateNumberOfMessages": true, "ApproximateNumberOfMessagesNotVisible": true,
	"ApproximateNumberOfMessagesDelayed": true, "CreatedTimestamp": true,
	"LastModifiedTimestamp": true, "QueueArn": true,
}

func validateQueueName(name string) error {
	if name == "" {
		return errMissingParameter("QueueName")
	}
	if strings.HasSuffix(name, ".fifo") {
		return errUnsupportedOperation("FIFO queues are not supported by the local cloud; use a standard queue.")
	}
	if !queueNameRE.MatchString(name) {
		return errInvalidParameterValue("Value %s for parameter QueueName is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.", name)
	}
	return nil
}

// seconds parses an integer attribute holding seconds within [lo, hi].
func seconds(name, v string, lo, hi time.Duration) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || time.Duration(n)*time.Second < lo || time.Duration(n)*time.Second > hi {
		return 0, errInvalidAttributeValue(name, fmt.Sprintf("must be an integer from %d to %d.", int(lo.Seconds()), int(hi.Seconds())))
	}
	return time.Duration(n) * time.Second, nil
}

// apply validates attrs and sets them on a; resolveARN reports whether a
// dead-letter target exists. Nothing changes unless all attributes are
// valid.
func (a *queueAttrs) apply(attrs map[string]string, resolveARN func(string) bool) error {
	next := *a
	next.Opaque = copyMap(a.Opaque)
	for _, name := range sortedKeys(attrs) {
		v := attrs[name]
		var err error
		switch {
		case name == "VisibilityTimeout":
			next.Visibility, err = seconds(name, v, 0, maxVisibility)
		case name == "MessageRetentionPeriod":
			next.Retention, err = seconds(name, v, minRetention, maxRetention)
		case name == "DelaySeconds":
			next.Delay, err = seconds(name, v, 0, maxDelay)
		case name == "ReceiveMessageWaitTimeSeconds":
			next.ReceiveWait, err = seconds(name, v, 0, maxReceiveWait)
		case name == "MaximumMessageSize":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < minMaxMessageSize || n > maxMaxMessageSize {
				err = errInvalidAttributeValue(name, fmt.Sprintf("must be an integer from %d to %d.", minMaxMessageSize, maxMaxMessageSize))
			}
			next.MaxMessageSize = n
		case name == "RedrivePolicy":
			next.Redrive, err = parseRedrivePolicy(v, resolveARN)
		case name == "FifoQueue":
			if v != "false" {
				err = errUnsupportedOperation("FIFO queues are not supported by the local cloud; use a standard queue.")
			}
		case opaqueAttrs[name]:
			if next.Opaque == nil {
				next.Opaque = map[string]string{}
			}
			next.Opaque[name] = v
		default:
			err = errInvalidAttributeName(name)
		}
		if err != nil {
			return err
		}
	}
	*a = next
	return nil
}

func parseRedrivePolicy(v string, resolveARN func(string) bool) (*redrivePolicy, error) {
	if v == "" {
		return nil, nil
	}
	invalid := func(reason string) error {
		return errInvalidParameterValue("Value %s for parameter RedrivePolicy is invalid. Reason: %s", v, reason)
	}
	var raw struct {
		DeadLetterTargetARN string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return nil, invalid("Redrive policy is not a valid JSON map.")
	}
	if raw.DeadLetterTargetARN == "" {
		return nil, invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
	}
	if len(raw.MaxReceiveCount) == 0 {
		return nil, invalid("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
	}
	// AWS's own examples send the count as a string; SDK users often send
	// a number. Both are accepted.
	s := strings.Trim(string(raw.MaxReceiveCount), `"`)
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxMaxReceiveCount {
		return nil, invalid(fmt.Sprintf("Invalid value for maxReceiveCount: %s, valid values are from 1 to %d both inclusive.", s, maxMaxReceiveCount))
	}
	if !resolveARN(raw.DeadLetterTargetARN) {
		return nil, invalid("Dead letter target does not exist.")
	}
	return &redrivePolicy{DeadLetterTargetARN: raw.DeadLetterTargetARN, MaxReceiveCount: n}, nil
}

// settable returns the queue's settable attributes as SQS writes them.
func (a queueAttrs) settable() map[string]string {
	out := map[string]string{
		"VisibilityTimeout":             strconv.Itoa(int(a.Visibility / time.Second)),
		"MessageRetentionPeriod":        strconv.Itoa(int(a.Retention / time.Second)),
		"DelaySeconds":                  strconv.Itoa(int(a.Delay / time.Second)),
		"ReceiveMessageWaitTimeSeconds": strconv.Itoa(int(a.ReceiveWait / time.Second)),
		"MaximumMessageSize":            strconv.Itoa(a.MaxMessageSize),
		"SqsManagedSseEnabled":          "false",
	}
	if a.Redrive != nil {
		b, _ := json.Marshal(a.Redrive)
		out["RedrivePolicy"] = string(b)
	}
	for k, v := range a.Opaque {
		out[k] = v
	}
	return out
}

// sameAs reports whether every attribute in attrs already has that value
// on a, which makes a repeated CreateQueue succeed.
func (a queueAttrs) sameAs(attrs map[string]string, resolveARN func(string) bool) bool {
	want := a
	if err := want.apply(attrs, resolveARN); err != nil {
		return false
	}
	have, next := a.settable(), want.settable()
	if len(have) != len(next) {
		return false
	}
	for k, v := range have {
		if next[k] != v {
			return false
		}
	}
	return true
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
