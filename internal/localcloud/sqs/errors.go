package sqs

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// ErrNoSuchQueue is returned (wrapped) by SendByARN when no queue has the
// ARN. Retrying is pointless until the queue is created.
var ErrNoSuchQueue = errors.New("no such queue")

// apiError is an SQS error with both of its names: the JSON protocol's
// shape name (sent in __type) and the Query protocol's code (sent in the
// XML error, and in x-amzn-query-error to JSON clients in query mode), which
// differ for several errors (QueueDoesNotExist is
// AWS.SimpleQueueService.NonExistentQueue over Query).
type apiError struct {
	jsonType  string
	queryCode string
	message   string
	status    int
	receiver  bool
}

func (e *apiError) Error() string { return e.queryCode + ": " + e.message }

// Is lets callers of the in-process API test for ErrNoSuchQueue.
func (e *apiError) Is(target error) bool {
	return target == ErrNoSuchQueue && e.jsonType == "QueueDoesNotExist"
}

func newErr(jsonType, queryCode string, status int, format string, args ...any) *apiError {
	if queryCode == "" {
		queryCode = jsonType
	}
	return &apiError{jsonType: jsonType, queryCode: queryCode, message: fmt.Sprintf(format, args...), status: status}
}

// asAPIError turns any error into an *apiError; unknown errors are
// internal faults.
func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	var pe *awsproto.Error
	if errors.As(err, &pe) {
		return &apiError{jsonType: pe.Code, queryCode: pe.Code, message: pe.Message, status: pe.Status, receiver: pe.Receiver}
	}
	return &apiError{jsonType: "InternalError", queryCode: "InternalError", message: err.Error(), status: http.StatusInternalServerError, receiver: true}
}

// The errors SQS answers with, named as in the service model
// (aws-sdk-go-v2/service/sqs/schemas): status codes and Query codes follow
// its traits.

func errQueueDoesNotExist() *apiError {
	return newErr("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", http.StatusBadRequest,
		"The specified queue does not exist.")
}

func errQueueNameExists(name string) *apiError {
	return newErr("QueueNameExists", "QueueAlreadyExists", http.StatusBadRequest,
		"A queue already exists with the same name and a different value for attribute(s) of queue %s.", name)
}

func errReceiptHandleIsInvalid(handle string) *apiError {
	return newErr("ReceiptHandleIsInvalid", "", http.StatusNotFound,
		"The input receipt handle \"%s\" is not a valid receipt handle.", handle)
}

func errMessageNotInflight() *apiError {
	return newErr("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", http.StatusBadRequest,
		"The message referred to isn't in flight.")
}

func errInvalidParameterValue(format string, args ...any) *apiError {
	return newErr("InvalidParameterValue", "", http.StatusBadRequest, format, args...)
}

func errMissingParameter(name string) *apiError {
	return newErr("MissingParameter", "", http.StatusBadRequest, "The request must contain the parameter %s.", name)
}

func errInvalidAttributeName(name string) *apiError {
	return newErr("InvalidAttributeName", "", http.StatusBadRequest, "Unknown Attribute %s.", name)
}

func errInvalidAttributeValue(name, reason string) *apiError {
	return newErr("InvalidAttributeValue", "", http.StatusBadRequest,
		"Invalid value for the parameter %s. Reason: %s", name, reason)
}

func errInvalidMessageContents() *apiError {
	return newErr("InvalidMessageContents", "", http.StatusBadRequest,
		"Invalid binary character in the message body. Only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed.")
}

func errEmptyBatch(param string) *apiError {
	return newErr("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", http.StatusBadRequest,
		"There should be at least one %s in the request.", param)
}

func errTooManyEntries(n int) *apiError {
	return newErr("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", http.StatusBadRequest,
		"Maximum number of entries per request are 10. You have sent %d.", n)
}

func errBatchIDsNotDistinct(id string) *apiError {
	return newErr("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", http.StatusBadRequest,
		"Id %s repeated.", id)
}

func errInvalidBatchEntryID() *apiError {
	return newErr("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", http.StatusBadRequest,
		"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
}

func errBatchRequestTooLong(limit int) *apiError {
	return newErr("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", http.StatusBadRequest,
		"Batch requests cannot be longer than %d bytes.", limit)
}

func errUnsupportedOperation(format string, args ...any) *apiError {
	return newErr("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", http.StatusBadRequest, format, args...)
}

func errInvalidAddress(url string) *apiError {
	return newErr("InvalidAddress", "", http.StatusNotFound, "The address %s is not valid for this endpoint.", url)
}
