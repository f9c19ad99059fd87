package opensearch

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// MaxResultWindow bounds from + size, as index.max_result_window does.
const MaxResultWindow = 10000

// MaxBuckets bounds a date histogram, as search.max_buckets does.
const MaxBuckets = 10000

type searchBody struct {
	Query          json.RawMessage            `json:"query"`
	Size           *int                       `json:"size"`
	From           int                        `json:"from"`
	Sort           json.RawMessage            `json:"sort"`
	Aggs           map[string]json.RawMessage `json:"aggs"`
	Aggregations   map[string]json.RawMessage `json:"aggregations"`
	Source         *bool                      `json:"_source"`
	TrackTotalHits any                        `json:"track_total_hits"`
	Timeout        string                     `json:"timeout"`
}

var searchKeys = map[string]bool{"query": true, "size": true, "from": true, "sort": true, "aggs": true, "aggregations": true, "_source": true, "track_total_hits": true, "timeout": true}

// target is the indices a search runs over.
type target struct {
	names  []string
	idx    bleve.Index // nil when no index matched
	fields map[string]*field
	now    time.Time
}

func (s *Service) target(expr string) (*target, error) {
	names, err := s.resolve(expr, true)
	if err != nil {
		return nil, err
	}
	t := &target{names: names, fields: map[string]*field{}, now: s.cfg.Clock.Now().UTC()}
	var list []bleve.Index
	for _, n := range names {
		ix := s.lookup(n)
		if ix == nil {
			continue
		}
		ix.mu.Lock()
		for p, f := range ix.fields {
			if t.fields[p] == nil {
				t.fields[p] = f
			}
		}
		ix.mu.Unlock()
		list = append(list, ix.bi)
	}
	switch len(list) {
	case 0:
	case 1:
		t.idx = list[0]
	default:
		t.idx = bleve.NewIndexAlias(list...)
	}
	return t, nil
}

func (s *Service) count(w http.ResponseWriter, r *http.Request) {
	if s.inject(w, r, "Count") {
		return
	}
	var body struct {
		Query json.RawMessage `json:"query"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	t, err := s.target(r.PathValue("index"))
	if err != nil {
		writeError(w, err)
		return
	}
	q, err := t.parseQuery(body.Query)
	if err != nil {
		writeError(w, err)
		return
	}
	var n uint64
	if t.idx != nil {
		res, err := t.idx.Search(bleve.NewSearchRequestOptions(q, 0, 0, false))
		if err != nil {
			writeError(w, fmt.Errorf("counting: %w", err))
			return
		}
		n = res.Total
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": n, "_shards": shards(len(t.names))})
}

func shards(n int) map[string]int {
	return map[string]int{"total": n, "successful": n, "skipped": 0, "failed": 0}
}

func (s *Service) search(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.inject(w, r, "Search") {
		return
	}
	var raw map[string]json.RawMessage
	if err := decodeBody(r, &raw); err != nil {
		writeError(w, err)
		return
	}
	for k := range raw {
		if !searchKeys[k] {
			writeError(w, parsingError("Unknown key [%s] in the search body: this endpoint supports query, size, from, sort, aggs and _source (see docs/logs.md)", k))
			return
		}
	}
	var body searchBody
	if raw != nil {
		data, _ := json.Marshal(raw)
		if err := json.Unmarshal(data, &body); err != nil {
			writeError(w, parsingError("parsing the search body: %v", err))
			return
		}
	}
	qp := r.URL.Query()
	if qp.Has("q") {
		writeError(w, badRequest("the q parameter (query string syntax) is not supported by this endpoint; send a query in the body"))
		return
	}
	size := 10
	if body.Size != nil {
		size = *body.Size
	}
	if v := qp.Get("size"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	if v := qp.Get("from"); v != "" {
		body.From, _ = strconv.Atoi(v)
	}
	if size < 0 || body.From < 0 {
		writeError(w, badRequest("[from] and [size] must not be negative"))
		return
	}
	if body.From+size > MaxResultWindow {
		writeError(w, badRequest("Result window is too large, from + size must be less than or equal to: [%d] but was [%d].", MaxResultWindow, body.From+size))
		return
	}
	if body.Aggs == nil {
		body.Aggs = body.Aggregations
	}
	t, err := s.target(r.PathValue("index"))
	if err != nil {
		writeError(w, err)
		return
	}
	q, err := t.parseQuery(body.Query)
	if err != nil {
		writeError(w, err)
		return
	}
	order, fieldSort, err := t.parseSort(body.Sort)
	if err != nil {
		writeError(w, err)
		return
	}
	aggs, err := t.parseAggs(body.Aggs)
	if err != nil {
		writeError(w, err)
		return
	}
	hits := []map[string]any{}
	var total uint64
	var maxScore any
	aggOut := map[string]any{}
	if t.idx != nil {
		req := bleve.NewSearchRequestOptions(q, size, body.From, false)
		req.Fields = []string{fieldSource}
		if order != nil {
			req.SortByCustom(order)
		}
		for _, a := range aggs {
			if err := a.prepare(t, q, req); err != nil {
				writeError(w, err)
				return
			}
		}
		res, err := t.idx.Search(req)
		if err != nil {
			writeError(w, fmt.Errorf("searching: %w", err))
			return
		}
		total = res.Total
		if !fieldSort && len(res.Hits) > 0 {
			maxScore = res.MaxScore
		}
		for _, h := range res.Hits {
			hit := map[string]any{"_index": h.Index, "_id": h.ID}
			if fieldSort {
				hit["_score"] = nil
				hit["sort"] = sortValues(order, h.DecodedSort)
			} else {
				hit["_score"] = h.Score
			}
			if body.Source == nil || *body.Source {
				if src, ok := h.Fields[fieldSource].(string); ok {
					hit["_source"] = json.RawMessage(src)
				}
			}
			hits = append(hits, hit)
		}
		for _, a := range aggs {
			v, err := a.result(t, q, res)
			if err != nil {
				writeError(w, err)
				return
			}
			aggOut[a.name] = v
		}
	} else {
		for _, a := range aggs {
			aggOut[a.name] = a.empty()
		}
	}
	out := map[string]any{
		"took": time.Since(start).Milliseconds(), "timed_out": false, "_shards": shards(len(t.names)),
		"hits": map[string]any{"total": map[string]any{"value": total, "relation": "eq"}, "max_score": maxScore, "hits": hits},
	}
	if len(aggs) > 0 {
		out["aggregations"] = aggOut
	}
	writeJSON(w, http.StatusOK, out)
}

// sortValues turns bleve's decoded sort values into OpenSearch's: numbers
// as numbers, dates as epoch milliseconds.
func sortValues(order search.SortOrder, decoded []string) []any {
	out := make([]any, len(decoded))
	for i, d := range decoded {
		out[i] = d
		if i >= len(order) {
			continue
		}
		if sf, ok := order[i].(*search.SortField); ok {
			switch sf.Type {
			case search.SortFieldAsNumber:
				if f, err := strconv.ParseFloat(d, 64); err == nil {
					out[i] = f
				}
			case search.SortFieldAsDate:
				if t, err := time.Parse(time.RFC3339Nano, d); err == nil {
					out[i] = t.UnixMilli()
				}
			}
		}
	}
	return out
}

// one reads an object with exactly one key.
func one(raw json.RawMessage, what string) (string, json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", nil, parsingError("[%s] must be an object: %v", what, err)
	}
	if len(m) != 1 {
		return "", nil, parsingError("[%s] must have exactly one key, found %d", what, len(m))
	}
	for k, v := range m {
		return k, v, nil
	}
	return "", nil, nil
}

// parseQuery translates the query DSL subset: match_all, match_none,
// term, terms, range, exists, ids, prefix, match and bool.
func (t *target) parseQuery(raw json.RawMessage) (query.Query, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return bleve.NewMatchAllQuery(), nil
	}
	kind, body, err := one(raw, "query")
	if err != nil {
		return nil, err
	}
	switch kind {
	case "match_all":
		return bleve.NewMatchAllQuery(), nil
	case "match_none":
		return bleve.NewMatchNoneQuery(), nil
	case "term", "match", "prefix":
		f, v, err := one(body, kind)
		if err != nil {
			return nil, err
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(v, &inner) == nil {
			key := "value"
			if kind == "match" {
				key = "query"
			}
			if v = inner[key]; v == nil {
				return nil, parsingError("[%s] query on [%s] needs %s", kind, f, key)
			}
		}
		val, err := scalar(v)
		if err != nil {
			return nil, parsingError("[%s] query on [%s]: %v", kind, f, err)
		}
		switch kind {
		case "match":
			if fl := t.fields[f]; fl != nil && fl.Kind == kindText {
				mq := bleve.NewMatchQuery(scalarString(val))
				mq.SetField(f)
				mq.Analyzer = "standard"
				return mq, nil
			}
		case "prefix":
			fl := t.fields[f]
			if fl == nil {
				return bleve.NewMatchNoneQuery(), nil
			}
			if fl.Kind != kindKeyword && fl.Kind != kindText {
				return nil, badRequest("a prefix query needs a keyword or text field; [%s] is %s", f, fl.Type)
			}
			pq := bleve.NewPrefixQuery(scalarString(val))
			pq.SetField(f)
			return pq, nil
		}
		return t.term(f, val)
	case "terms":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil || len(m) != 1 {
			return nil, parsingError("[terms] query must name one field with an array of values")
		}
		for f, v := range m {
			var vals []json.RawMessage
			if err := json.Unmarshal(v, &vals); err != nil {
				return nil, parsingError("[terms] query on [%s] needs an array of values", f)
			}
			var qs []query.Query
			for _, rv := range vals {
				val, err := scalar(rv)
				if err != nil {
					return nil, parsingError("[terms] query on [%s]: %v", f, err)
				}
				q, err := t.term(f, val)
				if err != nil {
					return nil, err
				}
				qs = append(qs, q)
			}
			if len(qs) == 0 {
				return bleve.NewMatchNoneQuery(), nil
			}
			return bleve.NewDisjunctionQuery(qs...), nil
		}
	case "range":
		f, v, err := one(body, "range")
		if err != nil {
			return nil, err
		}
		return t.rangeQuery(f, v)
	case "exists":
		var e struct {
			Field string `json:"field"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Field == "" {
			return nil, parsingError("[exists] query needs a field")
		}
		return t.exists(e.Field), nil
	case "ids":
		var e struct {
			Values []string `json:"values"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, parsingError("[ids] query needs values: %v", err)
		}
		return bleve.NewDocIDQuery(e.Values), nil
	case "bool":
		var b map[string]json.RawMessage
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, parsingError("[bool] query must be an object")
		}
		bq := bleve.NewBooleanQuery()
		empty := true
		for k, v := range b {
			switch k {
			case "must", "filter", "should", "must_not":
				qs, err := t.clauses(v)
				if err != nil {
					return nil, err
				}
				for _, q := range qs {
					empty = false
					switch k {
					case "must", "filter":
						bq.AddMust(q)
					case "should":
						bq.AddShould(q)
					case "must_not":
						bq.AddMustNot(q)
					}
				}
			case "minimum_should_match":
				n, err := strconv.Atoi(strings.Trim(string(v), `"`))
				if err != nil {
					return nil, parsingError("[bool] minimum_should_match must be a whole number here, not %s", v)
				}
				bq.SetMinShould(float64(n))
			case "boost", "_name":
			default:
				return nil, parsingError("[bool] query does not support [%s]", k)
			}
		}
		if empty {
			return bleve.NewMatchAllQuery(), nil
		}
		if bq.Must == nil && bq.Should == nil {
			bq.AddMust(bleve.NewMatchAllQuery())
		}
		return bq, nil
	}
	return nil, parsingError("unknown query [%s]: this endpoint supports match_all, match_none, term, terms, range, exists, ids, prefix, match and bool (see docs/logs.md)", kind)
}

func (t *target) clauses(v json.RawMessage) ([]query.Query, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		list = []json.RawMessage{v}
	}
	var out []query.Query
	for _, c := range list {
		q, err := t.parseQuery(c)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

func scalar(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch v.(type) {
	case string, json.Number, bool:
		return v, nil
	}
	return nil, fmt.Errorf("the value must be a string, number or boolean, not %s", raw)
}

func (t *target) term(f string, v any) (query.Query, error) {
	fl := t.fields[f]
	if fl == nil {
		return bleve.NewMatchNoneQuery(), nil
	}
	incl := true
	switch fl.Kind {
	case kindKeyword, kindText, kindIP:
		s := scalarString(v)
		if fl.Kind == kindIP {
			c, err := canonicalIP(s)
			if err != nil {
				return nil, badRequest("'%s' is not an IP string literal (field [%s])", s, f)
			}
			s = c
		}
		q := bleve.NewTermQuery(s)
		q.SetField(f)
		return q, nil
	case kindNumber:
		n, err := number(v)
		if err != nil {
			return nil, badRequest("[%s] is a %s field: %v is not a number", f, fl.Type, v)
		}
		q := bleve.NewNumericRangeInclusiveQuery(&n, &n, &incl, &incl)
		q.SetField(f)
		return q, nil
	case kindDate:
		d, err := t.date(v, fl.Formats)
		if err != nil {
			return nil, err
		}
		q := bleve.NewDateRangeInclusiveQuery(d, d, &incl, &incl)
		q.SetField(f)
		return q, nil
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			b = scalarString(v) == "true"
		}
		q := bleve.NewBoolFieldQuery(b)
		q.SetField(f)
		return q, nil
	}
	return nil, badRequest("field [%s] cannot be queried", f)
}

func (t *target) exists(f string) query.Query {
	fl := t.fields[f]
	if fl == nil {
		return bleve.NewMatchNoneQuery()
	}
	yes := true
	var q query.FieldableQuery
	switch fl.Kind {
	case kindNumber:
		lo, hi := -math.MaxFloat64, math.MaxFloat64
		q = bleve.NewNumericRangeInclusiveQuery(&lo, &hi, &yes, &yes)
	case kindDate:
		q = bleve.NewDateRangeInclusiveQuery(time.Unix(-1<<33, 0), time.Unix(1<<33, 0), &yes, &yes)
	case kindBool:
		t1, f1 := bleve.NewBoolFieldQuery(true), bleve.NewBoolFieldQuery(false)
		t1.SetField(f)
		f1.SetField(f)
		return bleve.NewDisjunctionQuery(t1, f1)
	default:
		q = bleve.NewWildcardQuery("*")
	}
	q.SetField(f)
	return q
}

func (t *target) rangeQuery(f string, v json.RawMessage) (query.Query, error) {
	var r map[string]json.RawMessage
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, parsingError("[range] query on [%s] must be an object", f)
	}
	fl := t.fields[f]
	if fl == nil {
		return bleve.NewMatchNoneQuery(), nil
	}
	formats := fl.Formats
	var lo, hi any
	var loIncl, hiIncl bool
	for k, raw := range r {
		switch k {
		case "format":
			var fm string
			_ = json.Unmarshal(raw, &fm)
			formats = strings.Split(fm, "||")
			continue
		case "time_zone":
			var tz string
			_ = json.Unmarshal(raw, &tz)
			if tz != "UTC" && tz != "Z" && tz != "+00:00" {
				return nil, badRequest("[range] time_zone %q is not supported by this endpoint: give times in UTC", tz)
			}
			continue
		case "boost":
			continue
		}
		val, err := scalar(raw)
		if err != nil {
			return nil, parsingError("[range] query on [%s]: %v", f, err)
		}
		switch k {
		case "gte", "from":
			lo, loIncl = val, true
		case "gt":
			lo, loIncl = val, false
		case "lte", "to":
			hi, hiIncl = val, true
		case "lt":
			hi, hiIncl = val, false
		default:
			return nil, parsingError("[range] query does not support [%s]", k)
		}
	}
	switch fl.Kind {
	case kindNumber:
		var a, b *float64
		for _, p := range []struct {
			v   any
			dst **float64
		}{{lo, &a}, {hi, &b}} {
			if p.v == nil {
				continue
			}
			n, err := number(p.v)
			if err != nil {
				return nil, badRequest("[range] on %s field [%s]: %v is not a number", fl.Type, f, p.v)
			}
			*p.dst = &n
		}
		q := bleve.NewNumericRangeInclusiveQuery(a, b, &loIncl, &hiIncl)
		q.SetField(f)
		return q, nil
	case kindDate:
		var a, b time.Time
		var err error
		if lo != nil {
			if a, err = t.date(lo, formats); err != nil {
				return nil, err
			}
		}
		if hi != nil {
			if b, err = t.date(hi, formats); err != nil {
				return nil, err
			}
		}
		q := bleve.NewDateRangeInclusiveQuery(a, b, &loIncl, &hiIncl)
		q.SetField(f)
		return q, nil
	case kindKeyword, kindIP:
		var a, b string
		if lo != nil {
			a = scalarString(lo)
		}
		if hi != nil {
			b = scalarString(hi)
		}
		q := bleve.NewTermRangeInclusiveQuery(a, b, &loIncl, &hiIncl)
		q.SetField(f)
		return q, nil
	}
	return nil, badRequest("[range] is not supported on %s field [%s]", fl.Type, f)
}

var mathOp = regexp.MustCompile(`^([+-])(\d+)([yMwdhHms])`)

// date reads a date value or date math ("now-1h/d", "2024-01-01||+1d").
func (t *target) date(v any, formats []string) (time.Time, error) {
	s, isString := v.(string)
	var base time.Time
	var rest string
	switch {
	case isString && strings.HasPrefix(s, "now"):
		base, rest = t.now, s[3:]
	case isString && strings.Contains(s, "||"):
		anchor, r, _ := strings.Cut(s, "||")
		d, err := parseDate(anchor, formats)
		if err != nil {
			return time.Time{}, badRequest("%v", err)
		}
		base, rest = d, r
	default:
		d, err := parseDate(v, formats)
		if err != nil {
			return time.Time{}, badRequest("%v", err)
		}
		return d, nil
	}
	for rest != "" {
		if m := mathOp.FindStringSubmatch(rest); m != nil {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "-" {
				n = -n
			}
			base = addUnit(base, m[3], n)
			rest = rest[len(m[0]):]
			continue
		}
		if len(rest) == 2 && rest[0] == '/' {
			base = truncUnit(base, rest[1:])
			break
		}
		return time.Time{}, badRequest("cannot parse date math [%s]: use now, +N or -N with y M w d h m s, and /unit to round", s)
	}
	return base, nil
}

func addUnit(t time.Time, unit string, n int) time.Time {
	switch unit {
	case "y":
		return t.AddDate(n, 0, 0)
	case "M":
		return t.AddDate(0, n, 0)
	case "w":
		return t.AddDate(0, 0, 7*n)
	case "d":
		return t.AddDate(0, 0, n)
	case "h", "H":
		return t.Add(time.Duration(n) * time.Hour)
	case "m":
		return t.Add(time.Duration(n) * time.Minute)
	}
	return t.Add(time.Duration(n) * time.Second)
}

func truncUnit(t time.Time, unit string) time.Time {
	t = t.UTC()
	switch unit {
	case "y":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	case "q":
		return time.Date(t.Year(), t.Month()-(t.Month()-1)%3, 1, 0, 0, 0, 0, time.UTC)
	case "M":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	case "w":
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "d":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case "h", "H":
		return t.Truncate(time.Hour)
	case "m":
		return t.Truncate(time.Minute)
	}
	return t.Truncate(time.Second)
}

// parseSort reads sort: a field name, {"field": "desc"},
// {"field": {"order": "desc"}}, _score or _doc, or an array of them. It
// reports whether any field sort is present (scores are then null).
func (t *target) parseSort(raw json.RawMessage) (search.SortOrder, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		list = []json.RawMessage{raw}
	}
	var order search.SortOrder
	fieldSort := false
	for _, item := range list {
		var name, dir string
		var s string
		if json.Unmarshal(item, &s) == nil {
			name = s
		} else {
			k, v, err := one(item, "sort")
			if err != nil {
				return nil, false, err
			}
			name = k
			if json.Unmarshal(v, &dir) != nil {
				var o struct {
					Order string `json:"order"`
				}
				if err := json.Unmarshal(v, &o); err != nil {
					return nil, false, parsingError("[sort] on [%s]: %v", k, err)
				}
				dir = o.Order
			}
		}
		if dir != "" && dir != "asc" && dir != "desc" {
			return nil, false, parsingError("[sort] order must be asc or desc, not [%s]", dir)
		}
		switch name {
		case "_score":
			order = append(order, &search.SortScore{Desc: dir != "asc"})
			continue
		case "_doc", "_id":
			order = append(order, &search.SortDocID{Desc: dir == "desc"})
			continue
		}
		fl := t.fields[name]
		if fl == nil {
			return nil, false, errorf(http.StatusBadRequest, "query_shard_exception", "No mapping found for [%s] in order to sort on", name)
		}
		sf := &search.SortField{Field: name, Desc: dir == "desc"}
		switch fl.Kind {
		case kindText:
			return nil, false, badRequest("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. [%s] is text.", name)
		case kindNumber:
			sf.Type = search.SortFieldAsNumber
		case kindDate:
			sf.Type = search.SortFieldAsDate
		default:
			sf.Type = search.SortFieldAsString
		}
		fieldSort = true
		order = append(order, sf)
	}
	return order, fieldSort, nil
}
