package awsproto

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeFaults struct {
	err   error
	calls []string
}

func (f *fakeFaults) Inject(_ context.Context, service, action string) error {
	f.calls = append(f.calls, service+":"+action)
	return f.err
}

type echoResult struct {
	Name string `xml:"Name"`
}

func newTestQuery(faults *fakeFaults, before error) (*Query[any], *[]string) {
	var ran []string
	q := &Query[any]{
		Service: "testsvc",
		Version: "2014-10-31",
		Actions: map[string]Action[any]{
			"Echo": func(_ context.Context, v Values) (any, error) {
				ran = append(ran, "Echo")
				name, err := v.String("Name", true)
				return echoResult{Name: name}, err
			},
			"Nothing": func(context.Context, Values) (any, error) { return nil, nil },
		},
		Faults: faults,
		Before: func(context.Context, string, Values) error { return before },
		WriteResult: func(w http.ResponseWriter, action string, r any) {
			WriteQueryResult(w, "http://example.com/doc/2014-10-31/", action, r)
		},
		WriteError: func(w http.ResponseWriter, err error) { WriteQueryError(w, "http://example.com/doc/2014-10-31/", err) },
	}
	return q, &ran
}

// TestQueryDispatch walks every step of the dispatcher with the outcome a
// client sees.
func TestQueryDispatch(t *testing.T) {
	for _, tc := range []struct {
		name, method, body  string
		faultErr, beforeErr error
		wantStatus          int
		wantCode            string // "" for success
		wantRan             bool
		wantBody            string
	}{
		{name: "success", method: "POST", body: "Action=Echo&Version=2014-10-31&Name=db1", wantStatus: 200, wantRan: true,
			wantBody: "<EchoResponse xmlns=\"http://example.com/doc/2014-10-31/\"><EchoResult><Name>db1</Name></EchoResult><ResponseMetadata>"},
		{name: "no version is served", method: "POST", body: "Action=Echo&Name=db1", wantStatus: 200, wantRan: true},
		{name: "nil result writes only metadata", method: "POST", body: "Action=Nothing", wantStatus: 200,
			wantBody: "<NothingResponse xmlns=\"http://example.com/doc/2014-10-31/\"><ResponseMetadata>"},
		{name: "bad method", method: "PUT", body: "Action=Echo", wantStatus: 405, wantCode: "InvalidAction"},
		{name: "missing action", method: "POST", body: "Version=2014-10-31", wantStatus: 400, wantCode: "MissingAction"},
		{name: "unknown action", method: "POST", body: "Action=LaunchRockets", wantStatus: 400, wantCode: "InvalidAction"},
		{name: "bad version", method: "POST", body: "Action=Echo&Version=2010-01-01&Name=x", wantStatus: 400, wantCode: "InvalidAction",
			wantBody: "Could not find operation Echo for version 2010-01-01"},
		{name: "injected fault", method: "POST", body: "Action=Echo&Name=x", faultErr: Internal("boom"), wantStatus: 500, wantCode: "InternalError"},
		{name: "gate refuses", method: "POST", body: "Action=Echo&Name=x", beforeErr: Throttled("Echo"), wantStatus: 503, wantCode: "RequestLimitExceeded"},
		{name: "handler error", method: "POST", body: "Action=Echo", wantStatus: 400, wantCode: "MissingParameter", wantRan: true},
		{name: "plain error is an internal fault", method: "POST", body: "Action=Echo&Name=x", beforeErr: errors.New("disk full"), wantStatus: 500, wantCode: "InternalError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := &fakeFaults{err: tc.faultErr}
			q, ran := newTestQuery(faults, tc.beforeErr)
			req := httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			q.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantCode != "" {
				var e struct {
					Code string `xml:"Error>Code"`
				}
				if err := xml.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != tc.wantCode {
					t.Fatalf("error code %q (%v), want %s: %s", e.Code, err, tc.wantCode, rec.Body)
				}
			}
			if got := len(*ran) > 0; got != tc.wantRan {
				t.Errorf("handler ran: %v, want %v", got, tc.wantRan)
			}
			if tc.wantBody != "" && !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body %s lacks %s", rec.Body, tc.wantBody)
			}
		})
	}
}

// TestQueryFaultsSeeServiceAndAction checks that the injector is asked
// with the service's name, and that MapFault reshapes what it returns.
func TestQueryFaultsSeeServiceAndAction(t *testing.T) {
	faults := &fakeFaults{err: Internal("x")}
	q, _ := newTestQuery(faults, nil)
	q.MapFault = func(error) error { return &Error{Code: "InternalFailure", Status: 500, Receiver: true} }
	rec := httptest.NewRecorder()
	q.ServeHTTP(rec, httptest.NewRequest("GET", "/?Action=Echo&Name=a", nil))
	if len(faults.calls) != 1 || faults.calls[0] != "testsvc:Echo" {
		t.Errorf("injector calls %v, want [testsvc:Echo]", faults.calls)
	}
	if !strings.Contains(rec.Body.String(), "<Code>InternalFailure</Code>") {
		t.Errorf("MapFault not applied: %s", rec.Body)
	}
}
