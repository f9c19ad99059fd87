package fence

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// ErrFenced is what Gate.BeginWrite returns while the gate is fenced; the
// service answers the write with RefuseWrite.
var ErrFenced = errors.New("writes are fenced")

// EpochError is a Gate's refusal of an epoch. It matches ErrStaleEpoch.
type EpochError struct {
	Requested int64 // the epoch in the request
	Current   int64 // the highest epoch the gate has seen
	Fenced    bool  // whether the gate is fenced (under Current)
}

func (e *EpochError) Error() string {
	if e.Fenced {
		return fmt.Sprintf("epoch %d refused: fenced under epoch %d", e.Requested, e.Current)
	}
	return fmt.Sprintf("epoch %d refused: already saw epoch %d", e.Requested, e.Current)
}

// Is makes errors.Is(err, ErrStaleEpoch) true.
func (e *EpochError) Is(target error) bool { return target == ErrStaleEpoch }

// Gate is the service's side of the fence: whether writes are admitted, the
// highest epoch seen, and whether the service is retired (it forwards reads
// and writes to its successor instead of answering from its own data). The
// zero Gate is unfenced at epoch 0 and ready to use; it is safe for
// concurrent use.
//
// A Gate lives in memory. A service that can restart on the old instance
// after being fenced or retired must persist State() and restore it with
// NewGateState before serving, or it would accept writes (or answer reads
// from stale data) again behind the controller's back.
type Gate struct {
	// op serializes Fence, Unfence and Retire, the handler's flush
	// included, so that an unfence cannot slip between a fence and the
	// flush that confirms it.
	op sync.Mutex
	// writes is held shared by each write in progress (BeginWrite) and
	// exclusively by Fence while it flips the flag: a fence therefore waits
	// for every admitted write to be applied before flushing, and no write
	// starts in between. Without it, a write admitted just before the fence
	// could be acknowledged after the flush and be missing from the snapshot.
	writes sync.RWMutex
	// reads is held shared by each read answered from the service's own
	// data (BeginRead) and exclusively by Retire while it sets the
	// successor: once Retire returns, no read is being answered from this
	// data, so none can be answered from it after the successor takes a
	// write (invariant no-stale-reads).
	reads     sync.RWMutex
	mu        sync.Mutex // guards fenced, epoch and successor
	fenced    bool
	epoch     int64
	successor string
}

// State is what a service persists of its gate, and restores with
// NewGateState. Successor is set only while retired, and a retired gate is
// always fenced.
type State struct {
	Fenced    bool   `json:"fenced"`
	Epoch     int64  `json:"epoch"`
	Successor string `json:"successor,omitempty"`
}

// Retired reports whether the state is a retirement.
func (s State) Retired() bool { return s.Successor != "" }

// NewGate returns a gate restored to a fence state the service persisted.
func NewGate(fenced bool, epoch int64) *Gate {
	return &Gate{fenced: fenced, epoch: epoch}
}

// NewGateState returns a gate restored to st. A retired state comes back
// fenced whatever st.Fenced says: a retired service never takes writes.
func NewGateState(st State) *Gate {
	return &Gate{fenced: st.Fenced || st.Retired(), epoch: st.Epoch, successor: st.Successor}
}

// Fenced returns whether writes are fenced and the highest epoch seen (the
// one fenced under, when fenced).
func (g *Gate) Fenced() (bool, int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fenced, g.epoch
}

// State returns the gate's state, for the service to persist.
func (g *Gate) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return State{Fenced: g.fenced, Epoch: g.epoch, Successor: g.successor}
}

// Successor returns the address a retired gate forwards to, "" when it is
// not retired. A service whose BeginWrite was refused asks it whether to
// forward the write instead of refusing it.
func (g *Gate) Successor() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.successor
}

// BeginRead admits one read. When the gate is retired it returns the
// successor's address and a nil done: the caller must forward the read
// there (or refuse it), never answer it from its own data. Otherwise the
// caller answers from its own data and calls done once the answer is
// complete; a Retire waits for every such read. Reads should be short, and
// BeginRead must not be called again by a goroutine before its own done.
func (g *Gate) BeginRead() (done func(), successor string) {
	g.reads.RLock()
	g.mu.Lock()
	successor = g.successor
	g.mu.Unlock()
	if successor != "" {
		g.reads.RUnlock()
		return nil, successor
	}
	return sync.OnceFunc(g.reads.RUnlock), ""
}

// BeginWrite admits one write, or returns ErrFenced. On success the caller
// must call done once the write is applied to the state it will flush —
// before or after acknowledging it, but never later than that. A Fence waits
// for every admitted write's done, so writes should be short; BeginWrite must
// not be called again by a goroutine between its own BeginWrite and done.
func (g *Gate) BeginWrite() (done func(), err error) {
	g.writes.RLock()
	g.mu.Lock()
	fenced := g.fenced
	g.mu.Unlock()
	if fenced {
		g.writes.RUnlock()
		return nil, ErrFenced
	}
	return sync.OnceFunc(g.writes.RUnlock), nil
}

// Fence stops admitting writes under epoch, once the writes in progress are
// done. It fails with an *EpochError if epoch is below the highest seen.
// Fencing again with the same or a higher epoch succeeds, and leaves a
// retirement in place: a fence that arrives late must never make a retired
// service answer from its own data again. It does not flush: the caller
// must flush before telling anyone the gate is fenced (Handler does).
func (g *Gate) Fence(epoch int64) error {
	g.op.Lock()
	defer g.op.Unlock()
	return g.fence(epoch)
}

// fence is Fence with g.op held.
func (g *Gate) fence(epoch int64) error {
	if epoch < 1 {
		return fmt.Errorf("epoch %d: must be at least 1", epoch)
	}
	g.mu.Lock()
	if epoch < g.epoch {
		err := &EpochError{Requested: epoch, Current: g.epoch, Fenced: g.fenced}
		g.mu.Unlock()
		return err
	}
	g.mu.Unlock()
	// Only holders of g.op change the state, so the check above still
	// holds once the writes in progress are out of the way.
	g.writes.Lock()
	defer g.writes.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fenced, g.epoch = true, epoch
	return nil
}

// Unfence admits writes again if the gate is fenced under epoch, and lifts
// a retirement with it. It is a no-op if the gate is not fenced, and fails
// with an *EpochError if it is fenced under another epoch: that fence
// belongs to someone else.
//
// Lifting a retirement is what the controller does when it rolls back a
// migration that retired this service: it does so only before the
// successor was ever unfenced, so no write was acknowledged under the
// retirement's epoch and this service's data is still the latest.
func (g *Gate) Unfence(epoch int64) error {
	g.op.Lock()
	defer g.op.Unlock()
	_, err := g.unfence(epoch)
	return err
}

// unfence is Unfence with g.op held; it returns the highest epoch seen.
func (g *Gate) unfence(epoch int64) (int64, error) {
	if epoch < 1 {
		return 0, fmt.Errorf("epoch %d: must be at least 1", epoch)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.fenced {
		return g.epoch, nil
	}
	if epoch != g.epoch {
		return g.epoch, &EpochError{Requested: epoch, Current: g.epoch, Fenced: true}
	}
	g.fenced, g.successor = false, ""
	return g.epoch, nil
}

// Retire fences the gate under epoch (waiting for the writes in progress,
// as Fence does), waits for the reads being answered from the service's own
// data, and from then on sends every read and write to successor, a
// "host:port". It fails with an *EpochError if epoch is below the highest
// seen. Retiring again with the same or a higher epoch succeeds, with the
// newest successor. It does not flush: the caller must flush (and persist
// the state) before confirming (Handler does).
func (g *Gate) Retire(epoch int64, successor string) error {
	g.op.Lock()
	defer g.op.Unlock()
	return g.retire(epoch, successor)
}

// retire is Retire with g.op held.
func (g *Gate) retire(epoch int64, successor string) error {
	if err := ValidSuccessor(successor); err != nil {
		return err
	}
	if err := g.fence(epoch); err != nil {
		return err
	}
	// Writes are stopped (fence); wait for the local reads in flight.
	// Only holders of g.op change the state, so the fence above still
	// holds.
	g.reads.Lock()
	defer g.reads.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.successor = successor
	return nil
}

// ValidSuccessor checks a retirement's successor: a host (name, IPv4, or
// bracketed IPv6) with an explicit port, and nothing else.
func ValidSuccessor(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("successor %q: want host:port: %v", s, err)
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return fmt.Errorf("successor %q: want host:port, not a URL", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("successor %q: port %q out of range", s, port)
	}
	return nil
}

// Handler serves POST /admin/fence, /admin/unfence and /admin/retire
// exactly as docs/fence-protocol.md specifies. flush is called after every
// successful fence or retire, with the writes stopped, and must make
// everything acknowledged durable (fsync) and the gate's State() with it; a
// nil flush is for services that sync every write before acknowledging it
// and keep no state across restarts. A fence or retire whose caller has gone
// away by the time it would be applied is dropped. Mount it next to the
// service's own routes; wrap it in RequireToken to demand a bearer token.
func (g *Gate) Handler(flush func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathFence, PathUnfence, PathRetire:
		default:
			writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "no such endpoint: " + r.URL.Path})
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method " + r.Method + " not allowed: use POST"})
			return
		}
		body := http.MaxBytesReader(w, r.Body, maxRequestBody)
		var (
			epoch     int64
			successor string
			err       error
		)
		if r.URL.Path == PathRetire {
			epoch, successor, err = ParseRetireRequest(body)
		} else {
			epoch, err = ParseRequest(body)
		}
		if err != nil {
			code := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				code = http.StatusRequestEntityTooLarge
			}
			writeJSON(w, code, ErrorResponse{Error: err.Error()})
			return
		}
		g.op.Lock()
		defer g.op.Unlock()
		if r.URL.Path == PathUnfence {
			g.serveUnfence(w, epoch)
			return
		}
		if r.Context().Err() != nil {
			// The caller gave up (its timeout, or it moved on to roll
			// back) while this request waited: fencing or retiring now
			// could land after its unfence and nobody would hear of it.
			return
		}
		if r.URL.Path == PathRetire {
			g.serveRetire(w, epoch, successor, flush)
		} else {
			g.serveFence(w, epoch, flush)
		}
	})
}

func (g *Gate) serveFence(w http.ResponseWriter, epoch int64, flush func() error) {
	if err := g.fence(epoch); err != nil {
		writeRefusal(w, err)
		return
	}
	if !flushed(w, flush) {
		return
	}
	st := g.State()
	writeJSON(w, http.StatusOK, Response{Fenced: true, Epoch: epoch, Retired: st.Retired(), Successor: st.Successor})
}

func (g *Gate) serveRetire(w http.ResponseWriter, epoch int64, successor string, flush func() error) {
	if err := g.retire(epoch, successor); err != nil {
		writeRefusal(w, err)
		return
	}
	if !flushed(w, flush) {
		return
	}
	writeJSON(w, http.StatusOK, Response{Fenced: true, Epoch: epoch, Retired: true, Successor: successor})
}

// writeRefusal answers a fence or retire the gate refused.
func writeRefusal(w http.ResponseWriter, err error) {
	if ee, ok := errors.AsType[*EpochError](err); ok {
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: "stale epoch", Epoch: &ee.Current})
		return
	}
	writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
}

// flushed runs flush after a fence or retire, answering 500 if it fails.
func flushed(w http.ResponseWriter, flush func() error) bool {
	if flush == nil {
		return true
	}
	if err := flush(); err != nil {
		// Stay fenced (or retired): writes stopped and unflushed is
		// safe, and a retried call flushes again.
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "flush failed: " + err.Error()})
		return false
	}
	return true
}

func (g *Gate) serveUnfence(w http.ResponseWriter, epoch int64) {
	current, err := g.unfence(epoch)
	if err != nil {
		if ee, ok := errors.AsType[*EpochError](err); ok {
			writeJSON(w, http.StatusConflict, ErrorResponse{Error: "fenced under another epoch", Epoch: &ee.Current})
			return
		}
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, Response{Fenced: false, Epoch: current})
}

// ParseRequest reads a fence or unfence request body: one JSON object with
// an integer "epoch" of at least 1. Unknown fields are ignored, so that the
// protocol can grow; anything after the object is an error.
func ParseRequest(r io.Reader) (int64, error) {
	dec := json.NewDecoder(r)
	var req struct {
		Epoch *int64 `json:"epoch"`
	}
	if err := dec.Decode(&req); err != nil {
		return 0, fmt.Errorf("request body: want {\"epoch\": N}: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return 0, fmt.Errorf("request body: %w", mbe)
		}
		return 0, errors.New("request body: unexpected data after the JSON object")
	}
	switch {
	case req.Epoch == nil:
		return 0, errors.New("request body: missing \"epoch\"")
	case *req.Epoch < 1:
		return 0, fmt.Errorf("request body: epoch %d: must be at least 1", *req.Epoch)
	}
	return *req.Epoch, nil
}

// ParseRetireRequest reads a retire request body: one JSON object with an
// integer "epoch" of at least 1 and the "successor" to forward to, as
// host:port. Unknown fields are ignored; anything after the object is an
// error.
func ParseRetireRequest(r io.Reader) (int64, string, error) {
	dec := json.NewDecoder(r)
	var req struct {
		Epoch     *int64  `json:"epoch"`
		Successor *string `json:"successor"`
	}
	if err := dec.Decode(&req); err != nil {
		return 0, "", fmt.Errorf("request body: want {\"epoch\": N, \"successor\": \"host:port\"}: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return 0, "", fmt.Errorf("request body: %w", mbe)
		}
		return 0, "", errors.New("request body: unexpected data after the JSON object")
	}
	switch {
	case req.Epoch == nil:
		return 0, "", errors.New("request body: missing \"epoch\"")
	case *req.Epoch < 1:
		return 0, "", fmt.Errorf("request body: epoch %d: must be at least 1", *req.Epoch)
	case req.Successor == nil:
		return 0, "", errors.New("request body: missing \"successor\"")
	}
	if err := ValidSuccessor(*req.Successor); err != nil {
		return 0, "", fmt.Errorf("request body: %w", err)
	}
	return *req.Epoch, *req.Successor, nil
}

// RequireToken wraps h so that requests must carry "Authorization: Bearer
// token"; others get 401. An empty token requires nothing.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="handover-fence"`)
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RefuseWrite answers a write refused because the gate is fenced: 503 with
// Retry-After, so that clients retry once the handover has moved the service.
func RefuseWrite(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: ErrFenced.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are encoded here.
		panic("fence: encoding answer: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
