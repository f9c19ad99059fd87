// Package fence speaks the write-fence protocol (docs/fence-protocol.md):
// the controller asks the old instance's service to stop accepting writes and
// flush everything it acknowledged before the final snapshot, carrying the
// database's epoch so that an out-of-date controller can never fence or
// unfence over a newer one.
//
// Client is the controller's side; Gate is the service's side, shared by the
// agent, the sample services and anyone embedding it, so that every service
// implements the same protocol.
//
// The package must never report a fence that did not happen: a Fence that
// returns nil means the service confirmed, after flushing, that it is fenced
// under the requested epoch. Anything less is an error, because the snapshot
// taken next would otherwise miss acknowledged writes. It must also never
// turn "no answer" into an answer: a call that got none fails with
// ErrUnreachable, since the instance may still be running and writing.
package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The protocol's paths and defaults.
const (
	PathFence   = "/admin/fence"
	PathUnfence = "/admin/unfence"
	PathRetire  = "/admin/retire"
	PathHealth  = "/healthz"

	DefaultPort    = 8080
	DefaultTimeout = 10 * time.Second

	// maxRequestBody bounds what a Gate reads: the request is one small
	// JSON object.
	maxRequestBody = 4 << 10
	// maxResponseBody bounds what a Client reads, so a misbehaving service
	// cannot make the controller buffer without limit.
	maxResponseBody = 64 << 10
)

// Errors a Client returns, wrapped with what was being done and to which
// address. Test them with errors.Is; IsRetryable says which are safe to retry.
var (
	// ErrUnreachable: no answer — connection refused, no route, DNS
	// failure, reset, or no answer within Client.Timeout. The instance may
	// still be running and accepting writes. Retrying is safe (the protocol
	// is idempotent); if it persists while EC2 says the instance is running,
	// the controller stops the instance as the hard fence.
	ErrUnreachable = errors.New("fence endpoint unreachable")
	// ErrStaleEpoch: the service answered 409: it has seen a higher epoch
	// than the one sent (fence), or is fenced under another one (unfence).
	// Terminal: the caller's view of the ledger is out of date, and retrying
	// with the same epoch can never succeed.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrServer: the service answered 5xx — e.g. 503 while it starts, 500
	// when the flush failed. Retrying is safe; StatusError.RetryAfter says
	// when, if the service said.
	ErrServer = errors.New("fence endpoint failed")
	// ErrRejected: the service answered 4xx other than 409 — bad request,
	// wrong or missing token, no such endpoint. Terminal: a retry gets the
	// same answer until the configuration is fixed.
	ErrRejected = errors.New("fence request rejected")
	// ErrBadResponse: the service answered, but not as the protocol says
	// (a success without the expected JSON, an unexpected status). The fence
	// is not confirmed. Retrying is safe but unlikely to help.
	ErrBadResponse = errors.New("fence endpoint answered outside the protocol")
)

// IsRetryable reports whether err, from a Client, is worth retrying: the
// protocol is idempotent, so a retry never does harm, but after ErrStaleEpoch,
// ErrRejected or a cancelled context it cannot succeed.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrServer) || errors.Is(err, ErrBadResponse)
}

// IsNotImplemented reports whether err, from a Client, says the service
// does not serve the endpoint at all (404, 405 or 501): a service that
// implements fence and unfence but not retire, say. It is a kind of
// ErrRejected.
func IsNotImplemented(err error) bool {
	se, ok := errors.AsType[*StatusError](err)
	return ok && (se.Code == http.StatusNotFound || se.Code == http.StatusMethodNotAllowed || se.Code == http.StatusNotImplemented)
}

// Request is the body of a fence or unfence request.
type Request struct {
	Epoch int64 `json:"epoch"`
}

// RetireRequest is the body of a retire request: the epoch the successor
// will write under, and its address (host:port).
type RetireRequest struct {
	Epoch     int64  `json:"epoch"`
	Successor string `json:"successor"`
}

// Response is the body of a 200 answer to fence, unfence or retire. Epoch
// is the highest epoch the service has seen: for a successful fence or
// retire, the one requested. Retired and Successor are set while the
// service is retired.
type Response struct {
	Fenced    bool   `json:"fenced"`
	Epoch     int64  `json:"epoch"`
	Retired   bool   `json:"retired,omitempty"`
	Successor string `json:"successor,omitempty"`
}

// StartState is the state a service starts its gate with, from what it
// persisted and what it was told at start: epoch, the epoch the controller
// says this copy of the data writes under (0 when not told), and
// startFenced, whether the controller will unfence it itself
// (docs/fence-protocol.md, "Starting").
//
//   - No epoch, or one below the persisted one: the persisted state as it
//     is. An old instance restarting under its old epoch stays fenced (or
//     retired), so it never takes writes nobody will copy.
//   - An epoch above the persisted one: a new copy of the data. It starts
//     fenced under that epoch if startFenced, unfenced otherwise.
//   - The persisted epoch itself: with startFenced the persisted fence
//     flag is kept (a copy of a source fenced under this epoch starts
//     fenced; a restart after the controller unfenced it stays unfenced);
//     without it, unfenced, as before this rule existed.
//
// A retirement never survives into a copy started under an epoch at least
// its own: it named the successor of an older holder of the data, and
// this instance is at least that new.
func StartState(persisted State, epoch int64, startFenced bool) State {
	switch {
	case epoch <= 0 || epoch < persisted.Epoch:
		return persisted
	case epoch == persisted.Epoch && startFenced:
		return State{Fenced: persisted.Fenced, Epoch: epoch}
	}
	return State{Fenced: startFenced, Epoch: epoch}
}

// ErrorResponse is the body of every error answer. Epoch is set on 409: the
// service's current epoch.
type ErrorResponse struct {
	Error string `json:"error"`
	Epoch *int64 `json:"epoch,omitempty"`
}

// StatusError is an answer from the service other than the success the
// protocol defines. It wraps one of ErrStaleEpoch, ErrServer, ErrRejected or
// ErrBadResponse; use errors.As to read the details.
type StatusError struct {
	Code    int    // HTTP status
	Message string // the body's "error", or the start of the body
	// Epoch is the service's current epoch from a 409 answer; HasEpoch
	// says whether the answer carried one.
	Epoch    int64
	HasEpoch bool
	// RetryAfter is the Retry-After header of a 5xx answer, 0 if absent.
	RetryAfter time.Duration

	kind error
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: answered %d %s", e.kind, e.Code, http.StatusText(e.Code))
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.HasEpoch {
		fmt.Fprintf(&b, " (service at epoch %d)", e.Epoch)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the sentinel the status maps to.
func (e *StatusError) Unwrap() error { return e.kind }

// NewStatusError is the error a Client returns for an answer with status
// code, headers h and body: for transports other than HTTP (ssmfence) and
// fakes that must fail exactly as the protocol says.
func NewStatusError(code int, h http.Header, body []byte) *StatusError {
	return newStatusError(code, h, body)
}

// newStatusError classifies a non-success answer.
func newStatusError(code int, h http.Header, body []byte) *StatusError {
	e := &StatusError{Code: code}
	switch {
	case code == http.StatusConflict:
		e.kind = ErrStaleEpoch
	case code >= 500 && code <= 599:
		e.kind = ErrServer
		if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s > 0 {
			e.RetryAfter = time.Duration(min(s, 3600)) * time.Second
		}
	case code >= 400 && code <= 499:
		e.kind = ErrRejected
	default:
		e.kind = ErrBadResponse
	}
	var er ErrorResponse
	if json.Unmarshal(body, &er) == nil && (er.Error != "" || er.Epoch != nil) {
		e.Message = printable(er.Error)
		if er.Epoch != nil {
			e.Epoch, e.HasEpoch = *er.Epoch, true
		}
	} else {
		e.Message = printable(string(body))
	}
	return e
}

// printable trims s to a short single line fit for an error message: the
// body is whatever the service sent, and ends up in logs and the dashboard.
func printable(s string) string {
	const limit = 200
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
