package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/handover-dev/handover/examples/kvstore/store"
	"github.com/handover-dev/handover/internal/fence"
)

// server is kvstore's HTTP side. It is built only after the store has
// replayed its segments, so /healthz answers 200 whenever it is reachable.
type server struct {
	st   *store.Store
	gate *fence.Gate
	fwd  fence.Forwarder
	dir  string
	log  *slog.Logger
	mux  *http.ServeMux

	persistMu sync.Mutex // serialises fence.json writes
}

func newServer(st *store.Store, cfg Config, log *slog.Logger) (*server, error) {
	persisted, err := loadFence(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	state, changed := startState(persisted, cfg.Epoch, cfg.StartFenced)
	if changed {
		log.Info("starting under a newer epoch", "epoch", state.Epoch, "fenced", state.Fenced,
			"persisted-epoch", persisted.Epoch, "persisted-fenced", persisted.Fenced, "persisted-successor", persisted.Successor)
		if err := saveFence(cfg.DataDir, state); err != nil {
			return nil, err
		}
	}
	if state.Retired() {
		log.Info("retired: forwarding every read and write", "successor", state.Successor, "epoch", state.Epoch)
	}
	s := &server{st: st, gate: fence.NewGateState(state), dir: cfg.DataDir, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("PUT /kv/{key}", s.put)
	s.mux.HandleFunc("GET /kv/{key}", s.get)
	s.mux.HandleFunc("DELETE /kv/{key}", s.delete)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	s.mux.HandleFunc("GET /release", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Release == "" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not started from a release ($HANDOVER_RELEASE is not set)"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"release": cfg.Release})
	})
	s.mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.st.Stats())
	})
	admin := s.gate.Handler(s.flush)
	s.mux.Handle(fence.PathFence, admin)
	s.mux.Handle(fence.PathRetire, admin)
	s.mux.Handle(fence.PathUnfence, s.persistAfter(admin))
	s.mux.Handle(fence.PathManifest, fence.ManifestHandler(cfg.DataDir, notData))
	return s, nil
}

// notData says which paths of the data directory GET /admin/manifest
// leaves out: the fence state, which changes with every fence and differs
// between a source and its clone by design, and the temporary files a
// crash may leave, which Open removes. What is left, the segments and
// their hints, is the data.
func notData(rel string) bool {
	return rel == fenceFile || strings.HasPrefix(rel, fenceFile+".tmp-") || strings.Contains(rel, ".hint.tmp-")
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// flush is the gate's flush, run after a fence or a retire with writes
// stopped: the fence (and a retirement) must be on disk before it is
// confirmed, or a restart would take writes, or answer reads from this
// data, again. The store's Flush also seals the current segment and writes
// every hint file, so that the snapshot taken right after the fence lets the
// new instance index the volume without reading its values.
func (s *server) flush() error {
	if err := s.st.Flush(); err != nil {
		return fmt.Errorf("flushing the store: %w", err)
	}
	return s.persist()
}

// persistAfter saves the gate's state after h ran. An unfence is answered
// before it is persisted; a crash in between leaves the instance fenced,
// which is the safe side.
func (s *server) persistAfter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if err := s.persist(); err != nil {
			s.log.Error("persisting fence state", "error", err)
		}
	})
}

// persist writes the gate's current state. Reading the state under
// persistMu makes the last write win with the newest state.
func (s *server) persist() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	return saveFence(s.dir, s.gate.State())
}

func (s *server) put(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validKey(w, key) {
		return
	}
	// Read the body before admitting the write: a fence waits for admitted
	// writes, and must not wait for a slow client.
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, store.MaxValueSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value above %d bytes", store.MaxValueSize))
			return
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	s.write(w, r, key, value, func() error { return s.st.Put(key, value) })
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validKey(w, key) {
		return
	}
	s.write(w, r, key, nil, func() error { return s.st.Delete(key) })
}

// write runs apply as one admitted write and answers 204 once it is durable.
// A retired store forwards the write (its body) to its successor instead;
// a merely fenced one refuses it.
func (s *server) write(w http.ResponseWriter, r *http.Request, key string, body []byte, apply func() error) {
	done, err := s.gate.BeginWrite()
	if errors.Is(err, fence.ErrFenced) {
		if succ := s.gate.Successor(); succ != "" {
			s.fwd.Forward(w, r, succ, body)
			return
		}
		fence.RefuseWrite(w)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	err = apply()
	done()
	if err != nil {
		s.log.Error("write failed", "key", key, "error", err)
		writeError(w, http.StatusInternalServerError, "write failed: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validKey(w, key) {
		return
	}
	// Once retired, this store's data may be older than what the
	// successor has acknowledged: never answer from it again.
	done, succ := s.gate.BeginRead()
	if succ != "" {
		s.fwd.Forward(w, r, succ, nil)
		return
	}
	defer done()
	v, ok, err := s.st.Get(key)
	if err != nil {
		// Never the bytes: a value that fails its checksum is not served.
		s.log.Error("read failed", "key", key, "error", err)
		writeError(w, http.StatusInternalServerError, "read failed: "+err.Error())
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no such key")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(v)
}

func validKey(w http.ResponseWriter, key string) bool {
	if len(key) == 0 || len(key) > store.MaxKeySize {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key must be 1 to %d bytes", store.MaxKeySize))
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("kvstore: encoding answer: " + err.Error()) // only our own types
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
