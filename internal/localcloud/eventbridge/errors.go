package eventbridge

import (
	"errors"
	"net/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The errors EventBridge answers with, named as in its service model.

func errValidation(format string, args ...any) *awsproto.Error {
	return awsproto.Errorf("ValidationException", format, args...)
}

func errNotFound(format string, args ...any) *awsproto.Error {
	return awsproto.Errorf("ResourceNotFoundException", format, args...)
}

func errLimitExceeded(format string, args ...any) *awsproto.Error {
	return awsproto.Errorf("LimitExceededException", format, args...)
}

// errInvalidPattern turns a pattern compilation error into the API error.
func errInvalidPattern(err error) *awsproto.Error {
	var pe *PatternError
	if errors.As(err, &pe) {
		return &awsproto.Error{Code: "InvalidEventPatternException", Message: pe.Error(), Status: http.StatusBadRequest}
	}
	return awsproto.Internal("compiling the event pattern: %v", err)
}
