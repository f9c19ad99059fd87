package opensearch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxBulkBytes is the largest bulk body accepted, as on the largest
// Amazon OpenSearch Service instance types.
const MaxBulkBytes = 100 << 20

type bulkItem struct {
	op     string // index, create, delete, update
	index  string
	id     string
	source []byte
	status int
	err    *Error
	result string
	ver    int64
	seq    int64
}

func (it *bulkItem) fail(e *Error) {
	it.status, it.err = e.Status, e
}

func (s *Service) bulk(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.inject(w, r, "Bulk") {
		return
	}
	items, perr := parseBulk(http.MaxBytesReader(w, r.Body, MaxBulkBytes), r.PathValue("index"))
	if perr != nil {
		writeError(w, perr)
		return
	}
	if len(items) == 0 {
		writeError(w, &Error{Status: 400, Type: "action_request_validation_exception", Reason: "Validation Failed: 1: no requests added;"})
		return
	}
	// The write queue: items beyond its free room are rejected, and a
	// request none of whose items fit is rejected whole.
	n := int64(len(items))
	free := int64(s.cfg.QueueSize) - (s.inflight.Add(n) - n)
	defer s.inflight.Add(-n)
	if free <= 0 {
		writeError(w, rejected(fmt.Sprintf("a bulk of %d items", n)))
		return
	}
	for i, it := range items {
		if int64(i) >= free {
			it.fail(rejected("item [" + it.op + "]"))
			continue
		}
		if e := s.fault(r.Context(), "BulkItem"); e != nil {
			if e.Status == http.StatusInternalServerError {
				e = errorf(http.StatusServiceUnavailable, "unavailable_shards_exception", "[%s][0] primary shard is not active (injected fault)", it.index)
			}
			it.fail(e)
		}
	}
	// Group by index, keeping each index's items in request order.
	var order []string
	byIndex := map[string][]*bulkItem{}
	for _, it := range items {
		if it.err != nil {
			continue
		}
		if _, ok := byIndex[it.index]; !ok {
			order = append(order, it.index)
		}
		byIndex[it.index] = append(byIndex[it.index], it)
	}
	for _, name := range order {
		s.writeIndex(name, byIndex[name])
	}
	out := make([]map[string]any, len(items))
	errs := false
	for i, it := range items {
		body := map[string]any{"_index": it.index, "_id": it.id, "status": it.status}
		if it.err != nil {
			errs = true
			eb := it.err.body()
			delete(eb, "root_cause")
			eb["index"] = it.index
			body["error"] = eb
		} else {
			body["_version"], body["result"], body["_seq_no"], body["_primary_term"] = it.ver, it.result, it.seq, 1
			body["_shards"] = map[string]int{"total": 2, "successful": 1, "failed": 0}
		}
		out[i] = map[string]any{it.op: body}
	}
	writeJSON(w, http.StatusOK, map[string]any{"took": time.Since(start).Milliseconds(), "errors": errs, "items": out})
}

// writeIndex applies one index's items as one bleve batch.
func (s *Service) writeIndex(name string, items []*bulkItem) {
	ix := s.lookup(name)
	if ix == nil {
		var err error
		if ix, err = s.create(name, nil, nil); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Type == "resource_already_exists_exception" {
				ix = s.lookup(name) // created by a concurrent bulk
			}
			if ix == nil {
				for _, it := range items {
					it.fail(asError(err))
				}
				return
			}
		}
	}
	grew := false
	func() {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		type state struct {
			exists bool
			ver    int64
		}
		pending := map[string]state{}
		batch := ix.bi.NewBatch()
		var done []*bulkItem
		for _, it := range items {
			st, ok := pending[it.id]
			if !ok {
				d, err := ix.get(it.id)
				if err != nil {
					it.fail(asError(err))
					continue
				}
				if d != nil {
					st = state{true, d.Version}
				}
			}
			switch it.op {
			case "create", "index":
				if it.op == "create" && st.exists {
					it.fail(&Error{Status: http.StatusConflict, Type: "version_conflict_engine_exception",
						Reason: fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", it.id, st.ver)})
					continue
				}
				doc, g, err := ix.build(it.id, it.source, st.ver+1, ix.seq+1)
				grew = grew || g
				if err != nil {
					it.fail(asError(err))
					continue
				}
				if err := batch.IndexAdvanced(doc); err != nil {
					it.fail(asError(err))
					continue
				}
				it.status, it.result = http.StatusCreated, "created"
				if st.exists {
					it.status, it.result = http.StatusOK, "updated"
				}
				st = state{true, st.ver + 1}
			case "delete":
				if !st.exists {
					it.status, it.result, it.ver = http.StatusNotFound, "not_found", 1
					continue
				}
				batch.Delete(it.id)
				it.status, it.result = http.StatusOK, "deleted"
				st = state{false, st.ver + 1}
			}
			ix.seq++
			it.ver, it.seq = st.ver, ix.seq
			pending[it.id] = st
			done = append(done, it)
		}
		if batch.Size() == 0 {
			return
		}
		if err := ix.bi.Batch(batch); err != nil {
			for _, it := range done {
				if it.err == nil {
					it.fail(errorf(http.StatusInternalServerError, "exception", "writing to index %s: %v", name, err))
				}
			}
		}
	}()
	if grew {
		s.mu.Lock()
		if err := s.saveLocked(); err != nil {
			s.cfg.Logger.Warn("opensearch mapping not saved", "index", name, "err", err)
		}
		s.mu.Unlock()
	}
}

// parseBulk reads the NDJSON body: an action line, then (but for delete)
// a source line.
func parseBulk(body io.Reader, defaultIndex string) ([]*bulkItem, *Error) {
	br := bufio.NewReaderSize(body, 64<<10)
	var items []*bulkItem
	line := 0
	next := func() ([]byte, error) {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 || err == nil {
				line++
				if t := bytes.TrimSpace(b); len(t) > 0 {
					return t, nil
				}
				if err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
	}
	for {
		action, err := next()
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errorf(http.StatusRequestEntityTooLarge, "content_too_long_exception", "the bulk request is larger than %d bytes; send smaller bulks", MaxBulkBytes)
			}
			return nil, badRequest("reading the bulk body: %v", err)
		}
		var meta map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(action, &meta); err != nil || len(meta) != 1 {
			return nil, badRequest("Malformed action/metadata line [%d], expected an object with one of index, create, delete or update: %s", line, truncate(action, 200))
		}
		for op, m := range meta {
			it := &bulkItem{op: op, index: m.Index, id: m.ID}
			if it.index == "" {
				it.index = defaultIndex
			}
			switch op {
			case "index", "create", "update":
				src, err := next()
				if err != nil {
					return nil, badRequest("the bulk body ends after action line [%d] without its source line", line)
				}
				it.source = src
			case "delete":
			default:
				return nil, badRequest("Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%s]", line, op)
			}
			switch {
			case it.index == "":
				it.fail(&Error{Status: 400, Type: "action_request_validation_exception", Reason: "Validation Failed: 1: index is missing;"})
			case op == "update":
				it.fail(badRequest("this endpoint does not support the update action; send the whole document with index"))
			case op == "delete" && it.id == "":
				it.fail(&Error{Status: 400, Type: "action_request_validation_exception", Reason: "Validation Failed: 1: id is missing;"})
			case it.id == "":
				it.id = newUUID()[:20]
			}
			if it.err == nil {
				if e := validIndexName(it.index); e != nil {
					it.fail(e)
				}
			}
			items = append(items, it)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
