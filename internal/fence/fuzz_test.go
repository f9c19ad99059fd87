package fence

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// FuzzGateRequest feeds arbitrary bodies to the gate's endpoints: whatever a
// client sends, the gate answers with a protocol status and JSON, and it is
// fenced exactly when it said 200 to a fence.
func FuzzGateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"epoch": 1}`, `{"epoch": 9223372036854775807}`, `{"epoch": -1}`, `{"epoch": 0}`,
		`{"epoch": 1e3}`, `{"epoch": "1"}`, `{"epoch": null}`, `{}`, `null`, `[]`, ``,
		`{"epoch": 2, "epoch": 3}`, `{"EPOCH": 4}`, `{"epoch": 1} trailing`, `{"epoch": 1}{}`,
		`{"epoch": 18446744073709551616}`, "\xff\xfe", `{"epoch": 1, "more": {"a": [1, 2]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		epoch, perr := ParseRequest(bytes.NewReader(body))
		if perr == nil && epoch < 1 {
			t.Fatalf("ParseRequest accepted epoch %d", epoch)
		}

		var g Gate
		h := g.Handler(nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", PathFence, bytes.NewReader(body)))
		fenced, got := g.Fenced()
		switch rec.Code {
		case 200:
			var r Response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || !r.Fenced || r.Epoch != epoch || perr != nil {
				t.Fatalf("200 with body %q for request %q (parsed %d, %v)", rec.Body, body, epoch, perr)
			}
			if !fenced || got != epoch {
				t.Fatalf("answered fenced at %d but gate is %v at %d", epoch, fenced, got)
			}
		case 400, 413:
			if perr == nil {
				t.Fatalf("answered %d to a request ParseRequest accepts: %q", rec.Code, body)
			}
			var e ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error answer %q is not {\"error\": ...}", rec.Body)
			}
			if fenced || got != 0 {
				t.Fatalf("a rejected request changed the gate to %v at %d", fenced, got)
			}
		default:
			t.Fatalf("fence answered %d to %q", rec.Code, body)
		}

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", PathUnfence, bytes.NewReader(body)))
		if perr == nil && rec.Code != 200 {
			t.Fatalf("unfence of the fence's own request answered %d, want 200", rec.Code)
		}
		if fenced, _ := g.Fenced(); fenced {
			t.Fatalf("still fenced after unfencing with the fence's own epoch")
		}
	})
}

// FuzzRetireRequest feeds arbitrary bodies to the retire endpoint: the gate
// is retired exactly when it said 200, to the successor the body named.
func FuzzRetireRequest(f *testing.F) {
	for _, seed := range []string{
		`{"epoch": 1, "successor": "10.0.0.1:8080"}`, `{"epoch": 1, "successor": "[fd00::1]:8080"}`,
		`{"epoch": 1, "successor": "10.0.0.1"}`, `{"epoch": 1, "successor": "http://x:1"}`, `{"epoch": 1}`,
		`{"successor": "a:1"}`, `{"epoch": 0, "successor": "a:1"}`, `{"epoch": 1, "successor": ":1"}`, ``, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		epoch, succ, perr := ParseRetireRequest(bytes.NewReader(body))
		if perr == nil && (epoch < 1 || ValidSuccessor(succ) != nil) {
			t.Fatalf("ParseRetireRequest accepted epoch %d successor %q", epoch, succ)
		}
		var g Gate
		rec := httptest.NewRecorder()
		g.Handler(nil).ServeHTTP(rec, httptest.NewRequest("POST", PathRetire, bytes.NewReader(body)))
		st := g.State()
		switch rec.Code {
		case 200:
			if perr != nil || st != (State{Fenced: true, Epoch: epoch, Successor: succ}) {
				t.Fatalf("200 to %q but gate is %+v (parsed %d %q %v)", body, st, epoch, succ, perr)
			}
		case 400, 413:
			if perr == nil || st != (State{}) {
				t.Fatalf("answered %d to %q (parse error %v); gate %+v", rec.Code, body, perr, st)
			}
		default:
			t.Fatalf("retire answered %d to %q", rec.Code, body)
		}
	})
}
