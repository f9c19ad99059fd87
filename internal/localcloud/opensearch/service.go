// Package opensearch is the local cloud's OpenSearch-compatible endpoint:
// the data plane of an Amazon OpenSearch Service domain as a client sees it
// (index and template management, _bulk, _doc, _count, a _search subset
// with simple aggregations, _refresh, _cat/indices), since no OpenSearch
// server can be installed where handover is tested. bleve indexes and
// stores the documents; this package translates OpenSearch's wire format
// and semantics (versions, sequence numbers, create conflicts, write-queue
// rejections) onto it. The subset is listed in docs/logs.md.
//
// It must never acknowledge a write bleve has not persisted, and never
// answer a query it does not understand with a partial result: an
// unsupported part of a request is a 400 naming it.
package opensearch

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// ServiceName is the name faults use for this service (and the SigV4
// signing name of Amazon OpenSearch Service).
const ServiceName = "es"

// Faulter is the local cloud's fault injector, as this service asks it:
// once per request with its action (Bulk, Search, Count, Get, ...) and
// once per bulk item with the action BulkItem.
type Faulter interface {
	Inject(ctx context.Context, service, action string) error
}

// Config configures the service.
type Config struct {
	// DataDir keeps the indices; "" keeps everything in memory.
	DataDir string
	// QueueSize is how many bulk items may be in flight at once; items
	// beyond it are rejected with 429 es_rejected_execution_exception, as
	// a domain's full write queue does. Default 10000.
	QueueSize int
	Faults    Faulter
	Clock     clock.Clock
	Logger    *slog.Logger
}

// Service serves the endpoint over HTTP. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu        sync.RWMutex
	indices   map[string]*index
	templates map[string]*IndexTemplate
	inflight  atomic.Int64
}

// New opens (or reopens) the service in cfg.DataDir.
func New(cfg Config) (*Service, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, indices: map[string]*index{}, templates: map[string]*IndexTemplate{}}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, "indices"), 0o755); err != nil {
			return nil, fmt.Errorf("creating the OpenSearch data directory: %w", err)
		}
		if err := s.load(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

type persisted struct {
	Indices   []indexMeta               `json:"indices"`
	Templates map[string]*IndexTemplate `json:"templates"`
}

func (s *Service) statePath() string { return filepath.Join(s.cfg.DataDir, "state.json") }

func (s *Service) load() error {
	var st persisted
	if _, err := statefile.ReadJSON(s.statePath(), &st); err != nil {
		return fmt.Errorf("reading the OpenSearch state: %w", err)
	}
	if st.Templates != nil {
		s.templates = st.Templates
	}
	for _, m := range st.Indices {
		ix, err := s.openIndex(m, false)
		if err != nil {
			return err
		}
		s.indices[m.Name] = ix
	}
	return nil
}

// saveLocked writes the index list and templates; s.mu is held.
func (s *Service) saveLocked() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	// Each index's meta is encoded under its own lock: a bulk grows its
	// mapping under that lock alone.
	var st struct {
		Indices   []json.RawMessage         `json:"indices"`
		Templates map[string]*IndexTemplate `json:"templates"`
	}
	st.Templates = s.templates
	for _, name := range slices.Sorted(mapsKeys(s.indices)) {
		ix := s.indices[name]
		ix.mu.Lock()
		m, err := json.Marshal(ix.meta)
		ix.mu.Unlock()
		if err != nil {
			return err
		}
		st.Indices = append(st.Indices, m)
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := statefile.WriteFile(s.statePath(), data); err != nil {
		return fmt.Errorf("saving the OpenSearch state: %w", err)
	}
	return nil
}

func (s *Service) openIndex(m indexMeta, create bool) (*index, error) {
	text, err := standardAnalyzer()
	if err != nil {
		return nil, err
	}
	ix := &index{meta: m, text: text}
	if m.Mappings == nil {
		m.Mappings = &Mapping{}
	}
	if err := ix.setMapping(m.Mappings); err != nil {
		return nil, err
	}
	var bi bleve.Index
	switch {
	case s.cfg.DataDir == "":
		bi, err = bleve.NewMemOnly(bleve.NewIndexMapping())
	case create:
		ix.dir = filepath.Join(s.cfg.DataDir, "indices", m.UUID)
		bi, err = bleve.New(ix.dir, bleve.NewIndexMapping())
	default:
		ix.dir = filepath.Join(s.cfg.DataDir, "indices", m.UUID)
		bi, err = bleve.Open(ix.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("opening index %s: %w", m.Name, err)
	}
	bi.SetName(m.Name)
	ix.bi = bi
	if ix.seq, err = highestSeq(bi); err != nil {
		bi.Close()
		return nil, fmt.Errorf("opening index %s: %w", m.Name, err)
	}
	return ix, nil
}

// Close closes every index.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, ix := range s.indices {
		ix.mu.Lock()
		errs = append(errs, ix.bi.Close())
		ix.mu.Unlock()
	}
	s.indices = map[string]*index{}
	return errors.Join(errs...)
}

// route picks the handler of a request by its method and path segments.
// (http.ServeMux cannot tell /_index_template/NAME from /INDEX/_search.)
func (s *Service) route(r *http.Request) http.HandlerFunc {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(seg) == 1 && seg[0] == "" {
		seg = nil
	}
	m := r.Method
	read, write := m == http.MethodGet || m == http.MethodPost, m == http.MethodPost || m == http.MethodPut
	set := func(k, v string) { r.SetPathValue(k, v) }
	switch len(seg) {
	case 0:
		if m == http.MethodGet || m == http.MethodHead {
			return s.root
		}
	case 1:
		switch seg[0] {
		case "_bulk":
			if write {
				return s.bulk
			}
		case "_search":
			if read {
				return s.search
			}
		case "_count":
			if read {
				return s.count
			}
		case "_refresh":
			if read {
				return s.refresh
			}
		case "_index_template":
			if m == http.MethodGet {
				return s.getTemplate
			}
		default:
			if strings.HasPrefix(seg[0], "_") {
				return nil
			}
			set("index", seg[0])
			switch m {
			case http.MethodPut:
				return s.createIndex
			case http.MethodGet, http.MethodHead:
				return s.getIndex
			case http.MethodDelete:
				return s.deleteIndex
			}
		}
	case 2, 3:
		switch {
		case seg[0] == "_cat" && seg[1] == "indices" && m == http.MethodGet:
			if len(seg) == 3 {
				set("index", seg[2])
			}
			return s.catIndices
		case seg[0] == "_index_template" && len(seg) == 2:
			set("name", seg[1])
			switch m {
			case http.MethodGet, http.MethodHead:
				return s.getTemplate
			case http.MethodPut, http.MethodPost:
				return s.putTemplate
			case http.MethodDelete:
				return s.deleteTemplate
			}
		case strings.HasPrefix(seg[0], "_"):
			return nil
		case len(seg) == 3 && seg[1] == "_doc" && (m == http.MethodGet || m == http.MethodHead):
			set("index", seg[0])
			set("id", seg[2])
			return s.getDoc
		case len(seg) == 2:
			set("index", seg[0])
			switch {
			case seg[1] == "_bulk" && write:
				return s.bulk
			case seg[1] == "_search" && read:
				return s.search
			case seg[1] == "_count" && read:
				return s.count
			case seg[1] == "_refresh" && read:
				return s.refresh
			case seg[1] == "_mapping" && m == http.MethodGet:
				return s.getMapping
			}
		}
	}
	return nil
}

// ServeHTTP answers one request. Paths are relative to the domain, as a
// client configured with the domain's address sends them.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Elasticsearch clients (go-elasticsearch v8) refuse a server that
	// does not say it is one; OpenSearch clients ignore the header.
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	h := s.route(r)
	if h == nil {
		writeError(w, errorf(http.StatusMethodNotAllowed, "illegal_argument_exception",
			"this endpoint does not serve %s %s; see docs/logs.md for the subset of the OpenSearch API it implements", r.Method, r.URL.Path))
		return
	}
	h(w, r)
}

// inject asks the fault injector about one action; it reports whether the
// request was answered (with the fault's error).
func (s *Service) inject(w http.ResponseWriter, r *http.Request, action string) bool {
	if err := s.fault(r.Context(), action); err != nil {
		writeError(w, err)
		return true
	}
	return false
}

func (s *Service) fault(ctx context.Context, action string) *Error {
	if s.cfg.Faults == nil {
		return nil
	}
	err := s.cfg.Faults.Inject(ctx, ServiceName, action)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return errorf(http.StatusServiceUnavailable, "task_cancelled_exception", "the request was cancelled")
	}
	if strings.Contains(err.Error(), "Throttl") || strings.Contains(err.Error(), "RequestLimitExceeded") {
		return rejected(action)
	}
	return errorf(http.StatusInternalServerError, "exception", "%s failed: %v", action, err)
}

func (s *Service) root(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "localcloud", "cluster_name": "000000000000:localcloud", "cluster_uuid": "localcloud",
		"version": map[string]any{"distribution": "opensearch", "number": "2.19.0", "build_type": "localcloud",
			"minimum_wire_compatibility_version": "7.10.0", "minimum_index_compatibility_version": "7.0.0"},
		"tagline": "The OpenSearch Project: https://opensearch.org/",
	})
}

var invalidIndexChars = regexp.MustCompile(`[\\/*?"<>| ,#:A-Z]`)

func validIndexName(name string) *Error {
	switch {
	case name == "", name == ".", name == "..", len(name) > 255, strings.ContainsAny(name[:1], "_-+"), invalidIndexChars.MatchString(name):
		return &Error{Status: http.StatusBadRequest, Type: "invalid_index_name_exception", Index: name,
			Reason: fmt.Sprintf("Invalid index name [%s]: it must be lowercase, at most 255 bytes, must not start with _, - or +, and must not contain \\ / * ? \" < > | space , # :", name)}
	}
	return nil
}

type createBody struct {
	Settings map[string]any `json:"settings"`
	Mappings *Mapping       `json:"mappings"`
	Aliases  map[string]any `json:"aliases"`
}

func (s *Service) createIndex(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("index")
	if s.inject(w, r, "CreateIndex") {
		return
	}
	var body createBody
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if len(body.Aliases) > 0 {
		writeError(w, badRequest("aliases are not supported by this endpoint; create the index without them"))
		return
	}
	if _, err := s.create(name, body.Settings, body.Mappings); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

// create makes an index, applying the templates that match its name
// (highest priority first); explicit settings and mappings win.
func (s *Service) create(name string, settings map[string]any, mappings *Mapping) (*index, error) {
	if err := validIndexName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.indices[name]; ix != nil {
		return nil, &Error{Status: http.StatusBadRequest, Type: "resource_already_exists_exception", Index: name, Reason: fmt.Sprintf("index [%s/%s] already exists", name, ix.meta.UUID)}
	}
	m := &Mapping{}
	if mappings != nil {
		m = mappings
	}
	if settings == nil {
		settings = map[string]any{}
	}
	for _, t := range s.matchingTemplatesLocked(name) {
		m.merge(t.Template.Mappings)
		for k, v := range t.Template.Settings {
			if _, ok := settings[k]; !ok {
				settings[k] = v
			}
		}
	}
	meta := indexMeta{Name: name, UUID: newUUID(), Created: s.cfg.Clock.Now().UnixMilli(), Settings: settings, Mappings: m}
	ix, err := s.openIndex(meta, true)
	if err != nil {
		return nil, err
	}
	s.indices[name] = ix
	if err := s.saveLocked(); err != nil {
		delete(s.indices, name)
		ix.bi.Close()
		return nil, err
	}
	return ix, nil
}

func (s *Service) matchingTemplatesLocked(name string) []*IndexTemplate {
	var out []*IndexTemplate
	for _, t := range s.templates {
		if t.matches(name) {
			out = append(out, t)
		}
	}
	// Only the highest-priority composable template applies.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority > out[j].Priority })
	if len(out) > 1 {
		out = out[:1]
	}
	return out
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.TrimRight(base64.URLEncoding.EncodeToString(b), "=")[:22]
}

func (s *Service) deleteIndex(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, "DeleteIndex") {
		return
	}
	names, err := s.resolve(r.PathValue("index"), false)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		ix := s.indices[n]
		if ix == nil {
			continue
		}
		ix.mu.Lock()
		_ = ix.bi.Close()
		ix.mu.Unlock()
		delete(s.indices, n)
		if ix.dir != "" {
			_ = os.RemoveAll(ix.dir)
		}
	}
	if err := s.saveLocked(); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

func (s *Service) getIndex(w http.ResponseWriter, r *http.Request) {
	names, err := s.resolve(r.PathValue("index"), false)
	if err != nil {
		writeError(w, err)
		return
	}
	out := map[string]any{}
	s.mu.RLock()
	for _, n := range names {
		ix := s.indices[n]
		settings := map[string]any{}
		for k, v := range ix.meta.Settings {
			settings[k] = v
		}
		settings["creation_date"] = fmt.Sprint(ix.meta.Created)
		settings["uuid"] = ix.meta.UUID
		settings["provided_name"] = n
		out[n] = map[string]any{"aliases": map[string]any{}, "mappings": ix.meta.Mappings, "settings": map[string]any{"index": settings}}
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) getMapping(w http.ResponseWriter, r *http.Request) {
	names, err := s.resolve(r.PathValue("index"), false)
	if err != nil {
		writeError(w, err)
		return
	}
	out := map[string]any{}
	s.mu.RLock()
	for _, n := range names {
		ix := s.indices[n]
		ix.mu.Lock()
		data, _ := json.Marshal(ix.meta.Mappings)
		ix.mu.Unlock()
		out[n] = map[string]any{"mappings": json.RawMessage(data)}
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

// resolve expands an index expression (names, wildcards, commas, _all).
// A concrete name that does not exist is index_not_found_exception; a
// wildcard that matches nothing is no index.
func (s *Service) resolve(expr string, allowEmpty bool) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if expr == "" || expr == "_all" || expr == "*" {
		return slices.Sorted(mapsKeys(s.indices)), nil
	}
	seen := map[string]bool{}
	var out []string
	for _, part := range strings.Split(expr, ",") {
		if strings.ContainsAny(part, "*?") {
			for n := range s.indices {
				if ok, _ := filepath.Match(part, n); ok && !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
			continue
		}
		if s.indices[part] == nil {
			return nil, indexNotFound(part)
		}
		if !seen[part] {
			seen[part] = true
			out = append(out, part)
		}
	}
	sort.Strings(out)
	if len(out) == 0 && !allowEmpty {
		return nil, indexNotFound(expr)
	}
	return out, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *Service) lookup(name string) *index {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.indices[name]
}

func (s *Service) getDoc(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, "Get") {
		return
	}
	name, id := r.PathValue("index"), r.PathValue("id")
	ix := s.lookup(name)
	if ix == nil {
		writeError(w, indexNotFound(name))
		return
	}
	d, err := ix.get(id)
	if err != nil {
		writeError(w, err)
		return
	}
	if d == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"_index": name, "_id": id, "found": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"_index": name, "_id": id, "_version": d.Version, "_seq_no": d.Seq, "_primary_term": 1, "found": true, "_source": d.Source})
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, "Refresh") {
		return
	}
	names, err := s.resolve(r.PathValue("index"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	// Every acknowledged write is already searchable (bleve makes a batch
	// visible before it returns), so a refresh has nothing left to do.
	n := len(names)
	writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]any{"total": n, "successful": n, "failed": 0}})
}

func (s *Service) putTemplate(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, "PutIndexTemplate") {
		return
	}
	var t IndexTemplate
	if err := decodeBody(r, &t); err != nil {
		writeError(w, err)
		return
	}
	if len(t.IndexPatterns) == 0 {
		writeError(w, &Error{Status: 400, Type: "action_request_validation_exception", Reason: "Validation Failed: 1: index patterns are missing;"})
		return
	}
	if t.Template.Mappings != nil {
		if _, err := t.Template.Mappings.fields(); err != nil {
			writeError(w, err)
			return
		}
	}
	s.mu.Lock()
	s.templates[r.PathValue("name")] = &t
	err := s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

func (s *Service) getTemplate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.RLock()
	var list []map[string]any
	for n, t := range s.templates {
		if ok, _ := filepath.Match(name, n); name == "" || ok {
			list = append(list, map[string]any{"name": n, "index_template": t})
		}
	}
	s.mu.RUnlock()
	if len(list) == 0 && name != "" {
		writeError(w, errorf(http.StatusNotFound, "resource_not_found_exception", "index template matching [%s] not found", name))
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["name"].(string) < list[j]["name"].(string) })
	writeJSON(w, http.StatusOK, map[string]any{"index_templates": list})
}

func (s *Service) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.templates[name] == nil {
		writeError(w, errorf(http.StatusNotFound, "index_template_missing_exception", "index_template [%s] missing", name))
		return
	}
	delete(s.templates, name)
	if err := s.saveLocked(); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

func (s *Service) catIndices(w http.ResponseWriter, r *http.Request) {
	names, err := s.resolve(r.PathValue("index"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	cols := []string{"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"}
	var rows [][]string
	for _, n := range names {
		ix := s.lookup(n)
		if ix == nil {
			continue
		}
		count, _ := ix.bi.DocCount()
		size := humanBytes(dirSize(ix.dir))
		rep := fmt.Sprint(setting(ix.meta.Settings, "number_of_replicas", "1"))
		health := "green"
		if rep != "0" {
			health = "yellow" // one node: the replicas cannot be placed
		}
		rows = append(rows, []string{health, "open", n, ix.meta.UUID, fmt.Sprint(setting(ix.meta.Settings, "number_of_shards", "1")), rep, fmt.Sprint(count), "0", size, size})
	}
	if r.URL.Query().Get("format") == "json" {
		out := []map[string]string{}
		for _, row := range rows {
			m := map[string]string{}
			for i, c := range cols {
				m[c] = row[i]
			}
			out = append(out, m)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	if _, ok := r.URL.Query()["v"]; ok {
		rows = append([][]string{cols}, rows...)
	}
	widths := make([]int, len(cols))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c + strings.Repeat(" ", widths[i]-len(c)))
		}
		io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
	}
}

// setting reads an index setting given flat ("number_of_shards"), under
// "index", or dotted ("index.number_of_shards").
func setting(settings map[string]any, key, def string) any {
	if v, ok := settings[key]; ok {
		return v
	}
	if v, ok := settings["index."+key]; ok {
		return v
	}
	if idx, ok := settings["index"].(map[string]any); ok {
		if v, ok := idx[key]; ok {
			return v
		}
	}
	return def
}

func dirSize(dir string) int64 {
	var n int64
	if dir == "" {
		return 0
	}
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fgb", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fmb", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fkb", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%db", n)
}

// decodeBody reads a JSON request body into v; an empty body leaves v
// alone.
func decodeBody(r *http.Request, v any) *Error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 100<<20))
	if err != nil {
		return badRequest("reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return parsingError("failed to parse the request body as JSON: %v", err)
	}
	return nil
}

// Handler serves the endpoint under prefix (such as "/_opensearch"), the
// way a client configured with the address http://host:port/prefix sends
// its requests.
func (s *Service) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || (p != "" && p[0] != '/') {
			writeError(w, errorf(http.StatusNotFound, "illegal_argument_exception", "this endpoint serves only paths under %s/", prefix))
			return
		}
		if p == "" {
			p = "/"
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = p, ""
		s.ServeHTTP(w, r2)
	})
}
