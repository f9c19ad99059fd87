package opensearch

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an OpenSearch error: a type such as
// "resource_already_exists_exception", a reason, and the HTTP status it is
// answered with.
type Error struct {
	Status int
	Type   string
	Reason string
	Index  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Reason) }

func errorf(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Reason: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "illegal_argument_exception", format, args...)
}

func parsingError(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "parsing_exception", format, args...)
}

func indexNotFound(name string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "index_not_found_exception", Reason: "no such index [" + name + "]", Index: name}
}

// rejected is the answer of a full write queue, per request or per item.
func rejected(what string) *Error {
	return errorf(http.StatusTooManyRequests, "es_rejected_execution_exception", "rejected execution of %s: the write queue is full (or a local-cloud fault said so); retry with backoff", what)
}

// body is the error object as OpenSearch nests it under "error" (and in
// bulk items).
func (e *Error) body() map[string]any {
	cause := map[string]any{"type": e.Type, "reason": e.Reason}
	if e.Index != "" {
		cause["index"] = e.Index
	}
	out := map[string]any{"type": e.Type, "reason": e.Reason, "root_cause": []any{cause}}
	if e.Index != "" {
		out["index"] = e.Index
	}
	return out
}

func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return errorf(http.StatusInternalServerError, "exception", "%v", err)
}

func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	writeJSON(w, e.Status, map[string]any{"error": e.body(), "status": e.Status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
