// Package awsproto holds the wire formats the local cloud speaks, so each
// service's handler deals in Go values, not in form fields, XML envelopes
// and error shapes:
//
//   - the Query protocol (EC2's dialect and the awsquery one of Auto
//     Scaling, ELBv2, RDS and SQS's older clients): form-encoded requests,
//     XML responses, and one dispatcher for all of them (query.go);
//   - the JSON protocols (SQS and EventBridge): X-Amz-Target requests, JSON
//     responses;
//   - the error shape of each.
//
// It must never hold service behaviour: a handler decides what happens, this
// package only reads and writes it.
package awsproto

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// MaxBody bounds request bodies; the largest request the local cloud
// expects is an SQS message (256 KiB) or user data (16 KiB) in base64.
const MaxBody = 4 << 20

// Error is an API error in AWS's terms: a code the SDKs switch on, a
// message for people, and the HTTP status that goes with them.
type Error struct {
	Code    string
	Message string
	Status  int
	// Receiver marks a server-side fault (AWS's "Receiver" type); the
	// default is a client fault ("Sender").
	Receiver bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a client-fault error with HTTP status 400.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// Common errors, named as AWS names them.
func InvalidParameterValue(format string, args ...any) *Error {
	return Errorf("InvalidParameterValue", format, args...)
}

// ValidationError is the awsquery services' generic bad-request error.
func ValidationError(format string, args ...any) *Error {
	return Errorf("ValidationError", format, args...)
}

// Throttled is what EC2 answers when a token bucket is empty.
func Throttled(api string) *Error {
	return &Error{Code: "RequestLimitExceeded", Message: "Request limit exceeded for " + api + ".", Status: http.StatusServiceUnavailable}
}

// Internal is a server-side fault.
func Internal(format string, args ...any) *Error {
	return &Error{Code: "InternalError", Message: fmt.Sprintf(format, args...), Status: http.StatusInternalServerError, Receiver: true}
}

// AsError turns any error into an *Error, treating unknown ones as
// internal faults.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal("%v", err)
}

// RequestID returns a fresh request id in AWS's UUID shape.
func RequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Values is a parsed Query-protocol request.
type Values struct{ url.Values }

// ParseQuery reads a Query-protocol request: form body or URL query.
func ParseQuery(r *http.Request) (Values, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, MaxBody)
	if err := r.ParseForm(); err != nil {
		return Values{}, Errorf("MalformedQueryString", "cannot parse the request: %v", err)
	}
	return Values{r.Form}, nil
}

// Action returns the requested action.
func (v Values) Action() string { return v.Get("Action") }

// String returns key's value, or an error naming it when required and
// missing.
func (v Values) String(key string, required bool) (string, error) {
	s := v.Get(key)
	if s == "" && required {
		return "", Errorf("MissingParameter", "The request must contain the parameter %s", key)
	}
	return s, nil
}

// Int returns key as an integer, def when absent.
func (v Values) Int(key string, def int) (int, error) {
	s := v.Get(key)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, InvalidParameterValue("Value (%s) for parameter %s is invalid. Expected an integer.", s, key)
	}
	return n, nil
}

// Bool returns key as a boolean, def when absent.
func (v Values) Bool(key string, def bool) (bool, error) {
	s := v.Get(key)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, InvalidParameterValue("Value (%s) for parameter %s is invalid. Expected true or false.", s, key)
	}
	return b, nil
}

// List returns prefix.1, prefix.2, … in order. EC2 lists look like
// "VolumeId.1"; awsquery lists like "Names.member.1" (pass
// "Names.member").
func (v Values) List(prefix string) []string {
	var out []string
	for _, i := range v.indices(prefix) {
		out = append(out, v.Get(prefix+"."+strconv.Itoa(i)))
	}
	return out
}

// Structs returns the members prefix.N.* as their own Values, keys
// relative to the member, in index order.
func (v Values) Structs(prefix string) []Values {
	var out []Values
	for _, i := range v.indices(prefix) {
		p := prefix + "." + strconv.Itoa(i) + "."
		sub := url.Values{}
		for k, vs := range v.Values {
			if rest, ok := strings.CutPrefix(k, p); ok {
				sub[rest] = vs
			}
		}
		out = append(out, Values{sub})
	}
	return out
}

// indices returns the N of every key prefix.N or prefix.N.*, sorted.
func (v Values) indices(prefix string) []int {
	seen := map[int]bool{}
	p := prefix + "."
	for k := range v.Values {
		rest, ok := strings.CutPrefix(k, p)
		if !ok {
			continue
		}
		head, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(head); err == nil && n > 0 {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// WriteXML writes v as an XML document with status.
func WriteXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte("<Error><Code>InternalError</Code><Message>encoding the response failed</Message></Error>")
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(b)
}

// ec2Error is EC2's error document.
type ec2Error struct {
	XMLName   xml.Name       `xml:"Response"`
	Errors    []ec2ErrorItem `xml:"Errors>Error"`
	RequestID string         `xml:"RequestID"`
}

type ec2ErrorItem struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// WriteEC2Error writes err in EC2's error shape.
func WriteEC2Error(w http.ResponseWriter, err error) {
	e := AsError(err)
	WriteXML(w, e.Status, ec2Error{Errors: []ec2ErrorItem{{Code: e.Code, Message: e.Message}}, RequestID: RequestID()})
}

type queryError struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr,omitempty"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// WriteQueryError writes err in the awsquery error shape (Auto Scaling,
// ELBv2, SQS over Query) under the service's namespace.
func WriteQueryError(w http.ResponseWriter, xmlns string, err error) {
	e := AsError(err)
	typ := "Sender"
	if e.Receiver {
		typ = "Receiver"
	}
	WriteXML(w, e.Status, queryError{Xmlns: xmlns, Type: typ, Code: e.Code, Message: e.Message, RequestID: RequestID()})
}

// ResponseMetadata is the awsquery response trailer.
type ResponseMetadata struct {
	RequestID string `xml:"RequestId"`
}

// NewResponseMetadata returns a trailer with a fresh request id.
func NewResponseMetadata() ResponseMetadata { return ResponseMetadata{RequestID: RequestID()} }

// JSONTarget splits a JSON-protocol request's X-Amz-Target ("AmazonSQS.SendMessage")
// into its service prefix and operation, and reads the body.
func JSONTarget(r *http.Request) (prefix, op string, body []byte, err error) {
	target := r.Header.Get("X-Amz-Target")
	prefix, op, ok := strings.Cut(target, ".")
	if !ok || op == "" {
		return "", "", nil, Errorf("UnknownOperationException", "missing or malformed X-Amz-Target header %q", target)
	}
	body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		return "", "", nil, Errorf("SerializationException", "reading the request body: %v", err)
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	return prefix, op, body, nil
}

// DecodeJSON decodes a JSON-protocol request body, rejecting malformed
// input with the error the SDKs expect.
func DecodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return Errorf("SerializationException", "cannot parse the request body: %v", err)
	}
	return nil
}

// WriteJSON writes a JSON-protocol response.
func WriteJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteJSONError(w, contentType, "", Internal("encoding the response: %v", err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("x-amzn-RequestId", RequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// WriteJSONError writes err in the JSON protocols' shape. namespace
// prefixes __type ("com.amazonaws.sqs#"); queryCode, when set, is sent in
// x-amzn-query-error for clients of services that moved from Query to JSON
// (SQS), so they see the code they used to.
func WriteJSONError(w http.ResponseWriter, contentType, namespace string, err error, queryCode ...string) {
	e := AsError(err)
	typ := "Sender"
	if e.Receiver {
		typ = "Receiver"
	}
	if len(queryCode) > 0 && queryCode[0] != "" {
		w.Header().Set("x-amzn-query-error", queryCode[0]+";"+typ)
	}
	b, _ := json.Marshal(map[string]string{"__type": namespace + e.Code, "message": e.Message})
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("x-amzn-RequestId", RequestID())
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
