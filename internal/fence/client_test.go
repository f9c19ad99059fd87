package fence

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// answer is a canned response for a test server.
type answer struct {
	code   int
	body   string
	header map[string]string
}

func serve(t *testing.T, a answer, check func(*http.Request, []byte)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if check != nil {
			check(r, body)
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.code)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestClientFenceAnswers(t *testing.T) {
	const epoch = 7
	tests := []struct {
		name      string
		answer    answer
		want      error // nil for success
		retryable bool
		check     func(t *testing.T, err error)
	}{
		{name: "fenced", answer: answer{code: 200, body: `{"fenced": true, "epoch": 7}`}},
		{name: "fenced-extra-fields", answer: answer{code: 200, body: `{"fenced": true, "epoch": 7, "flushed_bytes": 12}`}},
		{
			name: "stale", answer: answer{code: 409, body: `{"error": "stale epoch", "epoch": 9}`}, want: ErrStaleEpoch,
			check: func(t *testing.T, err error) {
				se, ok := errors.AsType[*StatusError](err)
				if !ok || !se.HasEpoch || se.Epoch != 9 || se.Code != 409 {
					t.Errorf("StatusError = %+v, want code 409 at epoch 9", se)
				}
			},
		},
		{name: "stale-no-body", answer: answer{code: 409}, want: ErrStaleEpoch},
		{
			name: "unavailable", answer: answer{code: 503, body: `{"error": "starting"}`, header: map[string]string{"Retry-After": "2"}},
			want: ErrServer, retryable: true,
			check: func(t *testing.T, err error) {
				se, ok := errors.AsType[*StatusError](err)
				if !ok || se.RetryAfter != 2*time.Second || se.Message != "starting" {
					t.Errorf("StatusError = %+v, want Retry-After 2s and message", se)
				}
			},
		},
		{name: "flush-failed", answer: answer{code: 500, body: `{"error": "flush failed: EIO"}`}, want: ErrServer, retryable: true},
		{name: "bad-gateway-html", answer: answer{code: 502, body: "<html>\n<b>bad gateway</b></html>"}, want: ErrServer, retryable: true},
		{
			name: "unauthorized", answer: answer{code: 401, body: `{"error": "missing or wrong bearer token"}`}, want: ErrRejected,
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "missing or wrong bearer token") {
					t.Errorf("error %q does not carry the body's message", err)
				}
			},
		},
		{name: "not-found-plain", answer: answer{code: 404, body: "404 page not found\n"}, want: ErrRejected},
		{name: "bad-request", answer: answer{code: 400, body: `{"error": "missing \"epoch\""}`}, want: ErrRejected},
		{name: "bad-json", answer: answer{code: 200, body: `{"fenced": tru`}, want: ErrBadResponse, retryable: true},
		{name: "empty-200", answer: answer{code: 200}, want: ErrBadResponse, retryable: true},
		{name: "not-fenced", answer: answer{code: 200, body: `{"fenced": false, "epoch": 7}`}, want: ErrBadResponse, retryable: true},
		{name: "no-fenced-field", answer: answer{code: 200, body: `{"epoch": 7}`}, want: ErrBadResponse, retryable: true},
		{name: "other-epoch", answer: answer{code: 200, body: `{"fenced": true, "epoch": 8}`}, want: ErrBadResponse, retryable: true},
		{name: "no-epoch", answer: answer{code: 200, body: `{"fenced": true}`}, want: ErrBadResponse, retryable: true},
		{name: "oversized", answer: answer{code: 200, body: `{"fenced": true, "epoch": 7, "x": "` + strings.Repeat("a", maxResponseBody) + `"}`}, want: ErrBadResponse, retryable: true},
		{name: "no-content", answer: answer{code: 204}, want: ErrBadResponse, retryable: true},
		{name: "redirect-not-followed", answer: answer{code: 307, header: map[string]string{"Location": "http://192.0.2.1/admin/fence"}}, want: ErrBadResponse, retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.answer, nil)
			c := &Client{Timeout: 5 * time.Second}
			err := c.Fence(context.Background(), addr, epoch)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Fence = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fence = %v, want %v", err, tt.want)
			}
			if IsRetryable(err) != tt.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, !tt.retryable, tt.retryable)
			}
			if prefix := "fencing " + addr + " at epoch 7: "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error message is %d bytes long; the body must be cut", len(err.Error()))
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestClientSendsProtocolRequest(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run("token="+token, func(t *testing.T) {
			var got []string
			addr := serve(t, answer{code: 200, body: `{"fenced": false, "epoch": 3}`}, func(r *http.Request, body []byte) {
				var req Request
				if err := json.Unmarshal(body, &req); err != nil {
					t.Errorf("request body %q: %v", body, err)
				}
				got = append(got, r.Method+" "+r.URL.Path+" "+strconv.FormatInt(req.Epoch, 10)+
					" ct="+r.Header.Get("Content-Type")+" auth="+r.Header.Get("Authorization"))
			})
			c := &Client{Token: token}
			if err := c.Unfence(context.Background(), addr, 3); err != nil {
				t.Fatalf("Unfence: %v", err)
			}
			auth := ""
			if token != "" {
				auth = "Bearer " + token
			}
			want := "POST /admin/unfence 3 ct=application/json auth=" + auth
			if len(got) != 1 || got[0] != want {
				t.Fatalf("server saw %q, want [%q]", got, want)
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	t.Run("connection-refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		err = (&Client{}).Fence(context.Background(), addr, 1)
		if !errors.Is(err, ErrUnreachable) || !IsRetryable(err) {
			t.Fatalf("Fence to a closed port = %v, want ErrUnreachable", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		err := (&Client{Timeout: 50 * time.Millisecond}).Fence(context.Background(), srv.Listener.Addr().String(), 1)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Fence to a silent service = %v, want ErrUnreachable", err)
		}
		// The per-call timeout is the instance's silence, not the
		// caller's deadline.
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Fence = %v: a per-call timeout must not match context.DeadlineExceeded", err)
		}
	})
	t.Run("caller-canceled", func(t *testing.T) {
		addr := serve(t, answer{code: 200, body: `{"fenced": true, "epoch": 1}`}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := (&Client{}).Fence(ctx, addr, 1)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) || IsRetryable(err) {
			t.Fatalf("Fence with a canceled context = %v, want context.Canceled and not ErrUnreachable", err)
		}
	})
	t.Run("connection-dropped", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		err := (&Client{}).Fence(context.Background(), srv.Listener.Addr().String(), 1)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Fence with the connection dropped = %v, want ErrUnreachable", err)
		}
	})
}

func TestClientHealthy(t *testing.T) {
	tests := []struct {
		answer answer
		want   error
	}{
		{answer{code: 200, body: "ok"}, nil},
		{answer{code: 503, body: "starting"}, ErrServer},
		{answer{code: 404}, ErrRejected},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.answer.code), func(t *testing.T) {
			addr := serve(t, tt.answer, func(r *http.Request, _ []byte) {
				if r.Method != http.MethodGet || r.URL.Path != PathHealth {
					t.Errorf("request %s %s, want GET %s", r.Method, r.URL.Path, PathHealth)
				}
			})
			err := (&Client{}).Healthy(context.Background(), addr)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Healthy = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestClientRejectsBadArguments(t *testing.T) {
	c := &Client{}
	for _, addr := range []string{"", "http://10.0.0.5", "10.0.0.5:99999", "10.0.0.5:x", ":8080", "10.0.0.5/admin"} {
		err := c.Fence(context.Background(), addr, 1)
		if err == nil || IsRetryable(err) {
			t.Errorf("Fence(%q) = %v, want a terminal error", addr, err)
		}
	}
	if err := c.Fence(context.Background(), "127.0.0.1:1", 0); err == nil || IsRetryable(err) {
		t.Errorf("Fence at epoch 0 = %v, want a terminal error", err)
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct {
		port int
		addr string
		want string
	}{
		{0, "10.0.0.5", "10.0.0.5:8080"},
		{9000, "10.0.0.5", "10.0.0.5:9000"},
		{9000, "10.0.0.5:7000", "10.0.0.5:7000"},
		{0, "ip-10-0-0-5.ec2.internal", "ip-10-0-0-5.ec2.internal:8080"},
		{0, "fd00::5", "[fd00::5]:8080"},
		{0, "[fd00::5]", "[fd00::5]:8080"},
		{0, "[fd00::5]:7000", "[fd00::5]:7000"},
	}
	for _, tt := range tests {
		got, err := (&Client{Port: tt.port}).hostPort(tt.addr)
		if err != nil || got != tt.want {
			t.Errorf("hostPort(%q) with port %d = %q, %v; want %q", tt.addr, tt.port, got, err, tt.want)
		}
	}
}
