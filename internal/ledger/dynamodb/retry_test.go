package dynamodb

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/handover-dev/handover/internal/ledger"
)

// reply is one scripted answer of the endpoint in scriptedStore.
type reply func(w http.ResponseWriter)

func apiError(status int, code string) reply {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#`+code+`","message":"scripted"}`)
	}
}

var (
	throttled    = apiError(400, "ProvisionedThroughputExceededException")
	overLimit    = apiError(400, "RequestLimitExceeded")
	serverError  = apiError(500, "InternalServerError")
	unavailable  = apiError(503, "ServiceUnavailable")
	conditionNot = apiError(400, "ConditionalCheckFailedException")
	ok           = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = io.WriteString(w, `{}`)
	}
	// dropped: the request arrived and the connection closed unanswered,
	// as when a response is lost; the SDK retries it.
	dropped reply = func(w http.ResponseWriter) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
)

type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// scriptedStore returns a Store whose client (a real one, with the SDK's
// standard retryer at 3 attempts and no delays) talks to an endpoint that
// answers with script, one reply a request, and the count of requests.
func scriptedStore(t *testing.T, script ...reply) (*Store, func() int) {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		i := min(calls, len(script)-1)
		calls++
		mu.Unlock()
		script[i](w)
	}))
	t.Cleanup(srv.Close)
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = noBackoff{}
			o.RateLimiter = ratelimit.None
		}),
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return calls
	}
	return &Store{api: client, table: "t", logger: slog.New(slog.DiscardHandler)}, count
}

// TestErrRetry: a write is marked ErrRetry only when DynamoDB refused every
// attempt the SDK made; one attempt whose outcome is unknown (a lost
// response, a server error) anywhere in the retries leaves it unmarked.
func TestErrRetry(t *testing.T) {
	widget := &ledger.Kind{Name: "widget"}
	rec := ledger.Record{Kind: widget, ID: "w", Body: []byte(`{}`)}
	for _, tc := range []struct {
		name      string
		script    []reply
		wantRetry bool
		want      error // another sentinel the error must match
		wantNil   bool
		calls     int
	}{
		{name: "throttled throughout", script: []reply{throttled}, wantRetry: true, calls: 3},
		{name: "over the account limit", script: []reply{overLimit}, wantRetry: true, calls: 3},
		{name: "throttled, then applied", script: []reply{throttled, ok}, wantNil: true, calls: 2},
		{name: "throttled, then condition failed", script: []reply{throttled, conditionNot}, want: ledger.ErrExists, calls: 2},
		{name: "response lost, then throttled", script: []reply{dropped, throttled}, calls: 3},
		{name: "throttled, server error, throttled", script: []reply{throttled, serverError, throttled}, calls: 3},
		{name: "server error throughout", script: []reply{serverError}, calls: 3},
		{name: "unavailable throughout", script: []reply{unavailable}, calls: 3},
		{name: "response lost throughout", script: []reply{dropped}, calls: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, calls := scriptedStore(t, tc.script...)
			err := s.Create(t.Context(), rec)
			if tc.wantNil {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
			} else if err == nil {
				t.Fatal("Create succeeded")
			}
			if got := errors.Is(err, ledger.ErrRetry); got != tc.wantRetry {
				t.Errorf("errors.Is(%v, ErrRetry) = %v, want %v", err, got, tc.wantRetry)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v does not match %v", err, tc.want)
			}
			if got := calls(); got != tc.calls {
				t.Errorf("%d requests, want %d", got, tc.calls)
			}
		})
	}

	// The lease writes go through the same classification.
	s, _ := scriptedStore(t, throttled)
	if _, err := s.AcquireLease(t.Context(), "l", "A", time.Unix(0, 0), time.Minute); !errors.Is(err, ledger.ErrRetry) {
		t.Errorf("throttled AcquireLease: %v, want ErrRetry", err)
	}
	// Reads are not writes: nothing to mark.
	s, _ = scriptedStore(t, throttled)
	if _, err := s.Get(t.Context(), widget, "w"); err == nil || errors.Is(err, ledger.ErrRetry) {
		t.Errorf("throttled Get: %v, want an error without ErrRetry", err)
	}
}
