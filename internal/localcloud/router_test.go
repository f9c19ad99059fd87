package localcloud

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServiceOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"sigv4 header", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261126/us-east-1/autoscaling/aws4_request, SignedHeaders=host, Signature=abc")
			return r
		}, "autoscaling"},
		{"presigned", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/bucket/key?X-Amz-Credential=AKID%2F20261126%2Fus-east-1%2Fs3%2Faws4_request", nil)
		}, "s3"},
		{"json target", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("X-Amz-Target", "AWSEvents.PutRule")
			return r
		}, "events"},
		{"unsigned query form", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("Action=DescribeVolumes&Version=2016-11-15"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, "ec2"},
		{"nothing", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ServiceOf(tc.req()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRouterCredentials(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	rt := &Router{Services: map[string]http.Handler{"ec2": ok}, AccessKeys: map[string]bool{"GOOD": true}}
	sign := func(key string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20261126/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=x")
		return r
	}
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, sign("GOOD"))
	if rec.Code != http.StatusTeapot {
		t.Errorf("known key refused: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	rt.ServeHTTP(rec, sign("BAD"))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "AuthFailure") || !strings.Contains(rec.Body.String(), "access key BAD.") {
		t.Errorf("unknown key: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	rt.AccessKeys = nil
	r := sign("X")
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/ec2/", "/kinesis/", 1))
	rt.ServeHTTP(rec, r)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "does not serve kinesis;") {
		t.Errorf("unknown service: %d %s", rec.Code, rec.Body)
	}
}
