package opensearch

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// agg is one aggregation of the supported subset: terms, date_histogram
// and percentiles, without sub-aggregations.
type agg interface {
	// prepare adds what the aggregation needs to the main search.
	prepare(t *target, q query.Query, req *bleve.SearchRequest) error
	result(t *target, q query.Query, res *bleve.SearchResult) (any, error)
	empty() any
}

type namedAgg struct {
	agg
	name string
}

func (t *target) parseAggs(aggs map[string]json.RawMessage) ([]namedAgg, error) {
	var out []namedAgg
	names := make([]string, 0, len(aggs))
	for n := range aggs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(aggs[name], &m); err != nil {
			return nil, parsingError("aggregation [%s] must be an object", name)
		}
		var kind string
		var body json.RawMessage
		for k, v := range m {
			switch k {
			case "aggs", "aggregations":
				return nil, parsingError("aggregation [%s]: sub-aggregations are not supported by this endpoint", name)
			case "meta":
				continue
			}
			if kind != "" {
				return nil, parsingError("aggregation [%s] has more than one type: [%s] and [%s]", name, kind, k)
			}
			kind, body = k, v
		}
		var a agg
		var err error
		switch kind {
		case "terms":
			a, err = t.termsAgg(name, body)
		case "date_histogram":
			a, err = t.dateHistogram(name, body)
		case "percentiles":
			a, err = t.percentiles(name, body)
		default:
			return nil, parsingError("aggregation [%s] of type [%s] is not supported by this endpoint: use terms, date_histogram or percentiles", name, kind)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, namedAgg{a, name})
	}
	return out, nil
}

func (t *target) aggField(agg, kind, f string, want ...kind) (*field, error) {
	if f == "" {
		return nil, parsingError("[%s] aggregation [%s] needs a field", kind, agg)
	}
	fl := t.fields[f]
	if fl == nil {
		return nil, nil // unmapped: empty buckets, as OpenSearch answers
	}
	for _, k := range want {
		if fl.Kind == k {
			return fl, nil
		}
	}
	if fl.Kind == kindText {
		return nil, badRequest("Text fields are not optimised for operations that require per-document field data like aggregations and sorting. Please use a keyword field instead ([%s] in aggregation [%s])", f, agg)
	}
	return nil, badRequest("a [%s] aggregation is not supported on the %s field [%s] by this endpoint", kind, fl.Type, f)
}

// terms: the top terms of a keyword, ip or numeric field by document count.
type termsAgg struct {
	name  string
	field *field
	size  int
}

func (t *target) termsAgg(name string, body json.RawMessage) (agg, error) {
	var b struct {
		Field string `json:"field"`
		Size  *int   `json:"size"`
		Order any    `json:"order"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, parsingError("terms aggregation [%s]: %v", name, err)
	}
	if b.Order != nil {
		return nil, parsingError("terms aggregation [%s]: order is not supported by this endpoint (buckets are by doc_count, descending)", name)
	}
	fl, err := t.aggField(name, "terms", b.Field, kindKeyword, kindIP, kindNumber)
	if err != nil {
		return nil, err
	}
	a := &termsAgg{name: name, field: fl, size: 10}
	if b.Size != nil {
		a.size = *b.Size
	}
	if a.size <= 0 {
		return nil, badRequest("[size] must be greater than 0. Found [%d] in [%s]", a.size, name)
	}
	return a, nil
}

func (a *termsAgg) facetField() string {
	if a.field.Kind == kindNumber {
		return keywordTwin + a.field.Path
	}
	return a.field.Path
}

func (a *termsAgg) prepare(_ *target, _ query.Query, req *bleve.SearchRequest) error {
	if a.field != nil {
		req.AddFacet("terms:"+a.name, bleve.NewFacetRequest(a.facetField(), a.size))
	}
	return nil
}

func (a *termsAgg) result(_ *target, _ query.Query, res *bleve.SearchResult) (any, error) {
	fr := res.Facets["terms:"+a.name]
	if a.field == nil || fr == nil {
		return a.empty(), nil
	}
	buckets := []map[string]any{}
	terms := fr.Terms.Terms()
	sort.SliceStable(terms, func(i, j int) bool {
		if terms[i].Count != terms[j].Count {
			return terms[i].Count > terms[j].Count
		}
		return terms[i].Term < terms[j].Term
	})
	for _, tf := range terms {
		var key any = tf.Term
		if a.field.Kind == kindNumber {
			if f, err := strconv.ParseFloat(tf.Term, 64); err == nil {
				key = f
			}
		}
		buckets = append(buckets, map[string]any{"key": key, "doc_count": tf.Count})
	}
	return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": fr.Other, "buckets": buckets}, nil
}

func (a *termsAgg) empty() any {
	return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []any{}}
}

// date_histogram: documents per calendar or fixed interval of a date
// field, empty buckets between the first and the last included, in UTC.
type dateHistogram struct {
	name        string
	field       *field
	calendar    string        // minute hour day week month quarter year
	fixed       time.Duration // or a fixed interval
	minDocCount int
	starts      []time.Time
}

var fixedInterval = regexp.MustCompile(`^(\d+)(ms|s|m|h|d)$`)

var calendarUnits = map[string]string{
	"1m": "minute", "minute": "minute", "1h": "hour", "hour": "hour", "1d": "day", "day": "day",
	"1w": "week", "week": "week", "1M": "month", "month": "month", "1q": "quarter", "quarter": "quarter", "1y": "year", "year": "year",
}

func (t *target) dateHistogram(name string, body json.RawMessage) (agg, error) {
	var b struct {
		Field            string `json:"field"`
		CalendarInterval string `json:"calendar_interval"`
		FixedInterval    string `json:"fixed_interval"`
		Interval         string `json:"interval"`
		MinDocCount      int    `json:"min_doc_count"`
		TimeZone         string `json:"time_zone"`
		Format           string `json:"format"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, parsingError("date_histogram aggregation [%s]: %v", name, err)
	}
	if b.TimeZone != "" && b.TimeZone != "UTC" && b.TimeZone != "Z" && b.TimeZone != "+00:00" {
		return nil, badRequest("date_histogram [%s]: time_zone %q is not supported by this endpoint (buckets are in UTC)", name, b.TimeZone)
	}
	fl, err := t.aggField(name, "date_histogram", b.Field, kindDate)
	if err != nil {
		return nil, err
	}
	a := &dateHistogram{name: name, field: fl, minDocCount: b.MinDocCount}
	iv := b.CalendarInterval
	if iv == "" {
		iv = b.Interval
	}
	switch {
	case b.CalendarInterval != "" && calendarUnits[b.CalendarInterval] == "":
		return nil, badRequest("The supplied interval [%s] could not be parsed as a calendar interval (use minute, hour, day, week, month, quarter, year or 1m, 1h, 1d ...)", b.CalendarInterval)
	case calendarUnits[iv] != "":
		a.calendar = calendarUnits[iv]
	default:
		if iv == "" {
			iv = b.FixedInterval
		}
		m := fixedInterval.FindStringSubmatch(iv)
		if m == nil {
			return nil, badRequest("date_histogram [%s] needs calendar_interval (minute, hour, day, week, month, quarter, year) or fixed_interval (such as 30s, 5m, 1h, 1d), not %q", name, iv)
		}
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
		if a.fixed = time.Duration(n) * unit; a.fixed <= 0 {
			return nil, badRequest("date_histogram [%s]: the interval must be positive", name)
		}
	}
	return a, nil
}

func (a *dateHistogram) floor(t time.Time) time.Time {
	if a.fixed > 0 {
		ms := t.UnixMilli()
		step := a.fixed.Milliseconds()
		return time.UnixMilli(ms - ((ms%step)+step)%step).UTC()
	}
	u := map[string]string{"minute": "m", "hour": "h", "day": "d", "week": "w", "month": "M", "quarter": "q", "year": "y"}[a.calendar]
	return truncUnit(t, u)
}

func (a *dateHistogram) next(t time.Time) time.Time {
	if a.fixed > 0 {
		return t.Add(a.fixed)
	}
	switch a.calendar {
	case "minute":
		return t.Add(time.Minute)
	case "hour":
		return t.Add(time.Hour)
	case "day":
		return t.AddDate(0, 0, 1)
	case "week":
		return t.AddDate(0, 0, 7)
	case "month":
		return t.AddDate(0, 1, 0)
	case "quarter":
		return t.AddDate(0, 3, 0)
	}
	return t.AddDate(1, 0, 0)
}

// prepare finds the first and last date the query matches and asks bleve
// for one date-range facet per bucket between them.
func (a *dateHistogram) prepare(t *target, q query.Query, req *bleve.SearchRequest) error {
	if a.field == nil {
		return nil
	}
	lo, ok, err := t.extreme(q, a.field.Path, false)
	if err != nil || !ok {
		return err
	}
	hi, _, err := t.extreme(q, a.field.Path, true)
	if err != nil {
		return err
	}
	fr := bleve.NewFacetRequest(a.field.Path, MaxBuckets)
	for s := a.floor(lo); !s.After(hi); s = a.next(s) {
		if len(a.starts) >= MaxBuckets {
			return errorf(http.StatusBadRequest, "too_many_buckets_exception", "Trying to create too many buckets. Must be less than or equal to: [%d]. Use a larger interval.", MaxBuckets)
		}
		a.starts = append(a.starts, s)
		fr.AddDateTimeRange(bucketName(len(a.starts)-1), s, a.next(s))
	}
	req.AddFacet("date_histogram:"+a.name, fr)
	return nil
}

func bucketName(i int) string { return fmt.Sprintf("b%06d", i) }

// extreme returns the lowest (or highest) date of field among the
// documents q matches.
func (t *target) extreme(q query.Query, f string, desc bool) (time.Time, bool, error) {
	req := bleve.NewSearchRequestOptions(q, 1, 0, false)
	req.SortByCustom(search.SortOrder{&search.SortField{Field: f, Desc: desc, Type: search.SortFieldAsDate, Missing: search.SortFieldMissingLast}})
	ex := query.NewBooleanQuery([]query.Query{q, t.exists(f)}, nil, nil)
	req.Query = ex
	res, err := t.idx.Search(req)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("finding the date range of %s: %w", f, err)
	}
	if len(res.Hits) == 0 || len(res.Hits[0].DecodedSort) == 0 {
		return time.Time{}, false, nil
	}
	d, err := time.Parse(time.RFC3339Nano, res.Hits[0].DecodedSort[0])
	if err != nil {
		return time.Time{}, false, nil
	}
	return d, true, nil
}

func (a *dateHistogram) result(_ *target, _ query.Query, res *bleve.SearchResult) (any, error) {
	fr := res.Facets["date_histogram:"+a.name]
	if fr == nil {
		return a.empty(), nil
	}
	counts := map[string]int{}
	for _, dr := range fr.DateRanges {
		counts[dr.Name] = dr.Count
	}
	buckets := []map[string]any{}
	for i, s := range a.starts {
		n := counts[bucketName(i)]
		if n < a.minDocCount {
			continue
		}
		buckets = append(buckets, map[string]any{"key_as_string": s.Format("2006-01-02T15:04:05.000Z"), "key": s.UnixMilli(), "doc_count": n})
	}
	return map[string]any{"buckets": buckets}, nil
}

func (a *dateHistogram) empty() any { return map[string]any{"buckets": []any{}} }

// percentiles: exact percentiles of a numeric field (OpenSearch estimates
// them with a t-digest; exact values are within what it promises),
// interpolated linearly between the two nearest ranks.
type percentilesAgg struct {
	name     string
	field    *field
	percents []float64
	keyed    bool
}

// MaxPercentileDocs bounds how many values a percentiles aggregation
// reads; beyond it the request is refused rather than slow.
const MaxPercentileDocs = 2_000_000

func (t *target) percentiles(name string, body json.RawMessage) (agg, error) {
	var b struct {
		Field    string    `json:"field"`
		Percents []float64 `json:"percents"`
		Keyed    *bool     `json:"keyed"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, parsingError("percentiles aggregation [%s]: %v", name, err)
	}
	fl, err := t.aggField(name, "percentiles", b.Field, kindNumber)
	if err != nil {
		return nil, err
	}
	a := &percentilesAgg{name: name, field: fl, percents: b.Percents, keyed: b.Keyed == nil || *b.Keyed}
	if len(a.percents) == 0 {
		a.percents = []float64{1, 5, 25, 50, 75, 95, 99}
	}
	for _, p := range a.percents {
		if p < 0 || p > 100 || math.IsNaN(p) {
			return nil, badRequest("percent must be in [0,100], got [%v]: [%s]", p, name)
		}
	}
	return a, nil
}

func (a *percentilesAgg) prepare(*target, query.Query, *bleve.SearchRequest) error { return nil }

func (a *percentilesAgg) result(t *target, q query.Query, res *bleve.SearchResult) (any, error) {
	if a.field == nil || res.Total == 0 {
		return a.values(nil), nil
	}
	if res.Total > MaxPercentileDocs {
		return nil, badRequest("percentiles [%s] over %d documents: this endpoint reads at most %d values; narrow the query", a.name, res.Total, MaxPercentileDocs)
	}
	req := bleve.NewSearchRequestOptions(q, int(res.Total), 0, false)
	req.Fields = []string{a.field.Path}
	req.SortByCustom(search.SortOrder{&search.SortDocID{}})
	all, err := t.idx.Search(req)
	if err != nil {
		return nil, fmt.Errorf("reading values for percentiles %s: %w", a.name, err)
	}
	var vals []float64
	for _, h := range all.Hits {
		switch v := h.Fields[a.field.Path].(type) {
		case float64:
			vals = append(vals, v)
		case []any:
			for _, x := range v {
				if f, ok := x.(float64); ok {
					vals = append(vals, f)
				}
			}
		}
	}
	sort.Float64s(vals)
	return a.values(vals), nil
}

func (a *percentilesAgg) values(sorted []float64) any {
	keyed := map[string]any{}
	var list []map[string]any
	for _, p := range a.percents {
		var v any
		if n := len(sorted); n > 0 {
			rank := p / 100 * float64(n-1)
			lo := int(math.Floor(rank))
			hi := min(lo+1, n-1)
			v = sorted[lo] + (sorted[hi]-sorted[lo])*(rank-float64(lo))
		}
		key := strconv.FormatFloat(p, 'f', -1, 64)
		if !strings.Contains(key, ".") {
			key += ".0"
		}
		keyed[key] = v
		list = append(list, map[string]any{"key": p, "value": v})
	}
	if a.keyed {
		return map[string]any{"values": keyed}
	}
	return map[string]any{"values": list}
}

func (a *percentilesAgg) empty() any { return a.values(nil) }
