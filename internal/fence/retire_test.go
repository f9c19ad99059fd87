package fence

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGateRetireStateMachine(t *testing.T) {
	const a, b = "10.0.0.2:8080", "10.0.0.3:8080"
	type step struct {
		op        string // fence, unfence, retire
		epoch     int64
		successor string
		wantErr   bool
		want      State
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"retire-fences-and-forwards", []step{
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
		}},
		{"retire-after-fence", []step{
			{"fence", 5, "", false, State{Fenced: true, Epoch: 5}},
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
		}},
		{"late-fence-keeps-retirement", []step{
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
			{"fence", 5, "", false, State{Fenced: true, Epoch: 5, Successor: a}},
			{"fence", 6, "", false, State{Fenced: true, Epoch: 6, Successor: a}},
		}},
		{"newest-successor-wins", []step{
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
			{"retire", 5, b, false, State{Fenced: true, Epoch: 5, Successor: b}},
			{"retire", 6, a, false, State{Fenced: true, Epoch: 6, Successor: a}},
		}},
		{"stale-retire-refused", []step{
			{"fence", 7, "", false, State{Fenced: true, Epoch: 7}},
			{"retire", 6, a, true, State{Fenced: true, Epoch: 7}},
		}},
		{"unfence-of-own-epoch-lifts-retirement", []step{
			{"retire", 5, a, false, State{Fenced: true, Epoch: 5, Successor: a}},
			{"unfence", 4, "", true, State{Fenced: true, Epoch: 5, Successor: a}},
			{"unfence", 5, "", false, State{Epoch: 5}},
		}},
		{"bad-successor", []step{
			{"retire", 5, "10.0.0.2", true, State{}},
			{"retire", 5, "http://10.0.0.2:8080", true, State{}},
			{"retire", 5, "10.0.0.2:0", true, State{}},
			{"retire", 5, "", true, State{}},
			{"retire", 0, a, true, State{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g Gate
			for i, s := range tt.steps {
				var err error
				switch s.op {
				case "fence":
					err = g.Fence(s.epoch)
				case "unfence":
					err = g.Unfence(s.epoch)
				default:
					err = g.Retire(s.epoch, s.successor)
				}
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: %s(%d, %q) = %v, want error %v", i, s.op, s.epoch, s.successor, err, s.wantErr)
				}
				if got := g.State(); got != s.want {
					t.Fatalf("step %d: %s(%d, %q): state %+v, want %+v", i, s.op, s.epoch, s.successor, got, s.want)
				}
				done, succ := g.BeginRead()
				if done != nil {
					done()
				}
				if succ != s.want.Successor {
					t.Fatalf("step %d: BeginRead forwards to %q, want %q", i, succ, s.want.Successor)
				}
			}
		})
	}
}

// TestGateRetireWaitsForReads: a read answered from the service's own data
// when the retire arrives finishes before Retire returns, and no read
// starts from that data afterwards.
func TestGateRetireWaitsForReads(t *testing.T) {
	var g Gate
	done, succ := g.BeginRead()
	if succ != "" || done == nil {
		t.Fatalf("BeginRead on an open gate: done set %v, successor %q", done != nil, succ)
	}
	var retired atomic.Bool
	errc := make(chan error, 1)
	go func() {
		err := g.Retire(3, "10.0.0.9:8080")
		retired.Store(true)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if retired.Load() {
		t.Fatal("Retire returned while a local read was still being answered")
	}
	done()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if d, succ := g.BeginRead(); d != nil || succ != "10.0.0.9:8080" {
		t.Fatalf("after Retire, BeginRead: done set %v, successor %q; want to forward to the successor", d != nil, succ)
	}
	if _, err := g.BeginWrite(); !errors.Is(err, ErrFenced) {
		t.Fatalf("a retired gate admitted a write: %v", err)
	}
}

func TestStartState(t *testing.T) {
	retired := State{Fenced: true, Epoch: 5, Successor: "10.0.0.9:8080"}
	tests := []struct {
		name        string
		persisted   State
		epoch       int64
		startFenced bool
		want        State
	}{
		{"no epoch keeps the persisted state", State{Fenced: true, Epoch: 4}, 0, true, State{Fenced: true, Epoch: 4}},
		{"old instance restarting stays fenced", State{Fenced: true, Epoch: 5}, 4, false, State{Fenced: true, Epoch: 5}},
		{"old instance restarting stays retired", retired, 4, true, retired},
		{"copy of a fenced source, start fenced", State{Fenced: true, Epoch: 5}, 5, true, State{Fenced: true, Epoch: 5}},
		{"copy of a fenced source, no rule: unfenced", State{Fenced: true, Epoch: 5}, 5, false, State{Epoch: 5}},
		{"restart after the controller unfenced it", State{Epoch: 5}, 5, true, State{Epoch: 5}},
		{"copy of a dead source, start fenced", State{Epoch: 4}, 5, true, State{Fenced: true, Epoch: 5}},
		{"first boot", State{}, 1, false, State{Epoch: 1}},
		{"a copy never inherits a retirement", retired, 5, true, State{Fenced: true, Epoch: 5}},
		{"nor unfenced", retired, 6, false, State{Epoch: 6}},
	}
	for _, tt := range tests {
		if got := StartState(tt.persisted, tt.epoch, tt.startFenced); got != tt.want {
			t.Errorf("%s: StartState(%+v, %d, %v) = %+v, want %+v", tt.name, tt.persisted, tt.epoch, tt.startFenced, got, tt.want)
		}
	}
}

func TestNewGateStateRetiredIsFenced(t *testing.T) {
	g := NewGateState(State{Epoch: 3, Successor: "10.0.0.9:8080"})
	if fenced, epoch := g.Fenced(); !fenced || epoch != 3 {
		t.Fatalf("restored retired gate: fenced %v at %d, want fenced at 3", fenced, epoch)
	}
}

// TestClientRetireAgainstGate runs retire end to end over real HTTP, with
// the flush seeing the retired state it must persist.
func TestClientRetireAgainstGate(t *testing.T) {
	var g Gate
	var persisted atomic.Value
	srv := httptest.NewServer(g.Handler(func() error { persisted.Store(g.State()); return nil }))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	ctx := context.Background()
	c := &Client{Port: 8080}

	if err := c.Retire(ctx, addr, 4, "10.0.0.7"); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	want := State{Fenced: true, Epoch: 4, Successor: "10.0.0.7:8080"}
	if got := g.State(); got != want {
		t.Fatalf("gate after retire: %+v, want %+v (the client's port added to the successor)", got, want)
	}
	if got, _ := persisted.Load().(State); got != want {
		t.Fatalf("flush saw %+v, want the retired state %+v to persist", got, want)
	}
	if err := c.Retire(ctx, addr, 4, "10.0.0.7:8080"); err != nil {
		t.Fatalf("Retire again: %v", err)
	}
	if err := c.Fence(ctx, addr, 4); err != nil {
		t.Fatalf("a late fence of the same epoch: %v", err)
	}
	if got := g.State(); got != want {
		t.Fatalf("a late fence changed the retirement: %+v", got)
	}
	if err := c.Retire(ctx, addr, 3, "10.0.0.7:8080"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale retire = %v, want ErrStaleEpoch", err)
	}
	if err := c.Unfence(ctx, addr, 4); err != nil {
		t.Fatalf("Unfence: %v", err)
	}
	if got := g.State(); got != (State{Epoch: 4}) {
		t.Fatalf("after the rollback's unfence: %+v, want open at 4", got)
	}
	if err := c.Retire(ctx, addr, 4, "10.0.0.7:8080/x"); err == nil {
		t.Fatal("Retire accepted a successor with a path")
	}
}

func TestClientRetireNotImplemented(t *testing.T) {
	mux := http.NewServeMux()
	var g Gate
	mux.Handle(PathFence, g.Handler(nil))
	mux.Handle(PathUnfence, g.Handler(nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	err := (&Client{}).Retire(context.Background(), srv.Listener.Addr().String(), 2, "10.0.0.7:8080")
	if !errors.Is(err, ErrRejected) || !IsNotImplemented(err) {
		t.Fatalf("retire of a service without the endpoint = %v, want ErrRejected and IsNotImplemented", err)
	}
	if IsNotImplemented((&Client{}).Fence(context.Background(), srv.Listener.Addr().String(), 1)) {
		t.Fatal("IsNotImplemented(nil) is true")
	}
}

func TestGateHandlerRetireHTTP(t *testing.T) {
	var g Gate
	h := g.Handler(nil)
	tests := []struct {
		path, body string
		code       int
		wantBody   string
	}{
		{PathRetire, `{"epoch": 3, "successor": "10.0.0.7:8080"}`, 200, `{"fenced":true,"epoch":3,"retired":true,"successor":"10.0.0.7:8080"}`},
		{PathFence, `{"epoch": 3}`, 200, `{"fenced":true,"epoch":3,"retired":true,"successor":"10.0.0.7:8080"}`},
		{PathRetire, `{"epoch": 2, "successor": "10.0.0.7:8080"}`, 409, `{"error":"stale epoch","epoch":3}`},
		{PathRetire, `{"epoch": 3}`, 400, ""},
		{PathRetire, `{"epoch": 3, "successor": "10.0.0.7"}`, 400, ""},
		{PathRetire, `{"epoch": 3, "successor": 7}`, 400, ""},
		{PathRetire, `{"successor": "10.0.0.7:8080"}`, 400, ""},
		{PathRetire, `{"epoch": 3, "successor": "10.0.0.7:8080"} {}`, 400, ""},
		{PathUnfence, `{"epoch": 3}`, 200, `{"fenced":false,"epoch":3}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body)))
		if rec.Code != tt.code {
			t.Errorf("%s %q: %d %s, want %d", tt.path, tt.body, rec.Code, rec.Body, tt.code)
			continue
		}
		if tt.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tt.wantBody {
			t.Errorf("%s %q: body %s, want %s", tt.path, tt.body, rec.Body, tt.wantBody)
		}
	}
}

func TestGateDropsRetireOfDepartedCaller(t *testing.T) {
	var g Gate
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("POST", PathRetire, strings.NewReader(`{"epoch": 4, "successor": "10.0.0.7:8080"}`)).WithContext(ctx)
	g.Handler(nil).ServeHTTP(httptest.NewRecorder(), req)
	if st := g.State(); st != (State{}) {
		t.Fatalf("a retire whose caller had gone was applied: %+v", st)
	}
}

func TestForwarder(t *testing.T) {
	var got atomic.Value
	succ := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.URL.RequestURI() + " " + string(b) + " hops=" + r.Header.Get(HeaderForwarded) + " ct=" + r.Header.Get("Content-Type"))
		w.Header().Set("X-From", "successor")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("answer"))
	}))
	defer succ.Close()
	var f Forwarder

	req := httptest.NewRequest("PUT", "/kv/a%2Fb?x=1", nil)
	req.Header.Set("Content-Type", "application/octet-stream")
	rec := httptest.NewRecorder()
	f.Forward(rec, req, succ.Listener.Addr().String(), []byte("v1"))
	if rec.Code != http.StatusCreated || rec.Body.String() != "answer" || rec.Header().Get("X-From") != "successor" {
		t.Fatalf("forwarded answer: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	if s := got.Load(); s != "PUT /kv/a%2Fb?x=1 v1 hops=1 ct=application/octet-stream" {
		t.Fatalf("successor saw %q", s)
	}

	// A successor that does not answer: 503 with Retry-After, never a
	// stale answer.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	rec = httptest.NewRecorder()
	f.Forward(rec, httptest.NewRequest("GET", "/kv/a", nil), deadAddr, nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("unreachable successor: %d %q, want 503 with Retry-After", rec.Code, rec.Body)
	}

	// A loop is cut.
	req = httptest.NewRequest("GET", "/kv/a", nil)
	req.Header.Set(HeaderForwarded, "4")
	rec = httptest.NewRecorder()
	f.Forward(rec, req, succ.Listener.Addr().String(), nil)
	if rec.Code != http.StatusServiceUnavailable || !bytes.Contains(rec.Body.Bytes(), []byte("loop")) {
		t.Fatalf("fifth hop: %d %q, want 503 naming a loop", rec.Code, rec.Body)
	}
}
