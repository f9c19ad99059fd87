package events

import (
	"errors"
	"fmt"
)

// IgnoredError is returned by Decode for a well-formed message that handover
// does not consume: another detail-type, an EBS operation other than
// createSnapshot/createVolume, or a known detail-type from a source that does
// not emit it. It is no fault of the sender: log it and delete the message.
type IgnoredError struct {
	DetailType, Reason string
	// ID is the event's id when it had one, for the log line.
	ID string
}

func (e *IgnoredError) Error() string {
	return fmt.Sprintf("ignoring %q event %q: %s", e.DetailType, e.ID, e.Reason)
}

// IsIgnored reports whether err (or an error it wraps) is an *IgnoredError.
// Retrying cannot change the outcome; the message should be dropped.
func IsIgnored(err error) bool {
	var ie *IgnoredError
	return errors.As(err, &ie)
}

// MalformedError reports an event that handover would consume but cannot
// use: not JSON, or a required field missing, of the wrong JSON type, or with
// a value outside what AWS sends.
type MalformedError struct {
	// Path is the JSON path of the offending field, as in
	// "detail.LifecycleActionToken" or "resources[0]"; "" means the event as
	// a whole.
	Path string
	// Problem says what was wrong and what was expected; it may be empty
	// when Err says it all.
	Problem string
	// Err is the underlying error, if any (a *json.SyntaxError, an *ARNError…).
	Err error
}

func (e *MalformedError) Error() string {
	where := e.Path
	if where == "" {
		where = "event"
	}
	s := where + ":"
	if e.Problem != "" {
		s += " " + e.Problem
		if e.Err != nil {
			s += ":"
		}
	}
	if e.Err != nil {
		s += " " + e.Err.Error()
	}
	return s
}

func (e *MalformedError) Unwrap() error { return e.Err }

// IsMalformed reports whether err (or an error it wraps) is a
// *MalformedError. Retrying the same message cannot help: it belongs in the
// dead-letter queue, and whoever produced it needs to hear about it.
func IsMalformed(err error) bool {
	var me *MalformedError
	return errors.As(err, &me)
}

func malformed(path, problem string, err error) *MalformedError {
	return &MalformedError{Path: path, Problem: problem, Err: err}
}

// ARNError is returned by ParseARN for a string that is not an ARN of the
// accepted shapes.
type ARNError struct {
	Input   string
	Problem string
}

const maxQuoted = 120

func (e *ARNError) Error() string {
	in := e.Input
	if len(in) > maxQuoted {
		in = in[:maxQuoted] + "…"
	}
	return fmt.Sprintf("invalid ARN %q: %s (want arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE/ID)", in, e.Problem)
}
