package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

// seen is one request the stub controller received.
type seen struct {
	method, path, query, body, auth, contentType string
}

// stubController answers every request with code and body, and records it.
type stubController struct {
	mu   sync.Mutex
	code int
	body string
	reqs []seen
}

func (s *stubController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type")})
	w.WriteHeader(s.code)
	io.WriteString(w, s.body)
}

func (s *stubController) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) != 1 {
		t.Fatalf("the controller got %d requests, want 1: %+v", len(s.reqs), s.reqs)
	}
	return s.reqs[0]
}

func newStub(t *testing.T, code int, body, token string) (*stubController, *Client) {
	t.Helper()
	s := &stubController{code: code, body: body}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

const updateDoc = `{"id":"upd-1","group":"g","state":"Running","migrations":[{"id":"m-1","state":"Committed"}]}`

// TestUpdateRequests: each update call sends the method, path, query and
// body the controller's routes expect, with the token, and decodes the
// answer.
func TestUpdateRequests(t *testing.T) {
	req := UpdateRequest{Group: "g", Strategy: "rolling", BatchSize: 2, Pause: "90s"}
	reqJSON, _ := json.Marshal(req)
	tests := []struct {
		name       string
		code       int
		answer     string
		call       func(c *Client) (any, error)
		want       seen
		checkReply func(t *testing.T, v any)
	}{
		{
			name: "start", code: 201, answer: updateDoc,
			call: func(c *Client) (any, error) {
				u, p, err := c.StartUpdate(t.Context(), req, false)
				if p != nil {
					t.Errorf("a real start returned a plan %+v", p)
				}
				return u, err
			},
			want: seen{method: "POST", path: "/v1/updates", body: string(reqJSON), contentType: "application/json"},
			checkReply: func(t *testing.T, v any) {
				u := v.(*Update)
				if u.Update == nil || u.ID != "upd-1" || u.State != ledger.UpdateRunning || len(u.Migrations) != 1 {
					t.Errorf("update = %+v", u)
				}
			},
		},
		{
			name: "dry run", code: 200, answer: `{"group":"g","strategy":"rolling","capacity":3,"steps":[{"phase":"batch","batch":1,"waits_for":"handovers"}]}`,
			call: func(c *Client) (any, error) {
				u, p, err := c.StartUpdate(t.Context(), req, true)
				if u != nil {
					t.Errorf("a dry run returned an update %+v", u)
				}
				return p, err
			},
			want: seen{method: "POST", path: "/v1/updates", query: "dry_run=true", body: string(reqJSON), contentType: "application/json"},
			checkReply: func(t *testing.T, v any) {
				if p := v.(*Plan); p.Capacity != 3 || len(p.Steps) != 1 || p.Steps[0].WaitsFor != "handovers" {
					t.Errorf("plan = %+v", p)
				}
			},
		},
		{
			name: "show", code: 200, answer: updateDoc,
			call: func(c *Client) (any, error) { return c.Update(t.Context(), "upd/1") },
			want: seen{method: "GET", path: "/v1/updates/upd%2F1"},
			checkReply: func(t *testing.T, v any) {
				if u := v.(Update); u.ID != "upd-1" || u.Migrations[0].ID != "m-1" {
					t.Errorf("update = %+v", u)
				}
			},
		},
		{
			name: "list", code: 200, answer: `{"updates":[{"id":"upd-1"},{"id":"upd-2"}]}`,
			call: func(c *Client) (any, error) {
				return c.Updates(t.Context(), url.Values{"group": {"g"}, "unfinished": {"true"}})
			},
			want: seen{method: "GET", path: "/v1/updates", query: "group=g&unfinished=true"},
			checkReply: func(t *testing.T, v any) {
				if us := v.([]*ledger.Update); len(us) != 2 || us[1].ID != "upd-2" {
					t.Errorf("updates = %+v", us)
				}
			},
		},
		{
			name: "abort", code: 200, answer: `{"id":"upd-1","state":"RollingBack","abort_requested":true,"migrations":[]}`,
			call: func(c *Client) (any, error) { return c.AbortUpdate(t.Context(), "upd-1", "bad build") },
			want: seen{method: "POST", path: "/v1/updates/upd-1/abort", body: `{"reason":"bad build"}`, contentType: "application/json"},
			checkReply: func(t *testing.T, v any) {
				if u := v.(Update); u.State != ledger.UpdateRollingBack || !u.AbortRequested {
					t.Errorf("update = %+v", u)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newStub(t, tt.code, tt.answer, "s3cret")
			v, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.auth = "Bearer s3cret"
			if got := s.last(t); got != tt.want {
				t.Errorf("request = %+v\nwant      %+v", got, tt.want)
			}
			tt.checkReply(t, v)
		})
	}
}

// TestErrorAnswers: the controller's error answers become errors that say
// what to do, and a 404 is ErrNotFound.
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		want     string
		notFound bool
	}{
		{name: "bad request is the controller's message alone", code: 400, body: `{"error":"--batch-size must be at least 1, got 0"}`, want: "--batch-size must be at least 1, got 0"},
		{name: "conflict is the controller's message alone", code: 409, body: `{"error":"the group has an update in progress"}`, want: "the group has an update in progress"},
		{name: "not found", code: 404, body: `{"error":"no update nope"}`, want: "no update nope", notFound: true},
		{name: "unauthorized names the token settings", code: 401, body: `{"error":"missing or wrong bearer token"}`, want: "--api-token or HANDOVER_API_TOKEN"},
		{name: "other codes keep the status", code: 503, body: `{"error":"reading update: ledger down"}`, want: "503 Service Unavailable: reading update: ledger down"},
		{name: "a body that is not JSON is shown as text", code: 502, body: "bad gateway\n", want: "502 Bad Gateway: bad gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newStub(t, tt.code, tt.body, "")
			_, err := c.Update(t.Context(), "nope")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
			if errors.Is(err, ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
		})
	}
}

// TestErrorsNameThePath: an error names the request as the controller's
// routes spell it, with the leading slash.
func TestErrorsNameThePath(t *testing.T) {
	_, c := newStub(t, 404, `{"error":"no update nope"}`, "")
	_, err := c.Update(t.Context(), "nope")
	if err == nil || !strings.Contains(err.Error(), "GET /v1/updates/nope: ") {
		t.Fatalf("regression: error %q names the path without its leading slash (url.URL.JoinPath on a base without a path)", err)
	}
}

func TestUnreachableController(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := NewClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Updates(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "is `handover controller` running there?") {
		t.Errorf("error = %v, want a hint to start the controller or set --api", err)
	}
}

func TestNewClientRefusesBadAddresses(t *testing.T) {
	for _, addr := range []string{"localhost:7070", "ftp://x", "http://", "::"} {
		if _, err := NewClient(addr, "", nil); err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:7070") {
			t.Errorf("NewClient(%q) = %v, want an error showing a good address", addr, err)
		}
	}
}
