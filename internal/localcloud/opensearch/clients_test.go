package opensearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	elasticsearch "github.com/elastic/go-elasticsearch/v8"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/opensearch-project/opensearch-go/v4/opensearchutil"

	"github.com/handover-dev/handover/internal/localcloud/faults"
)

// serve starts the service behind a real HTTP server under the prefix the
// local cloud uses, and returns the address a client is given.
func serve(t *testing.T, cfg Config) (*Service, string) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler("/_opensearch"))
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, srv.URL + "/_opensearch"
}

func osClient(t *testing.T, addr string) *opensearchapi.Client {
	t.Helper()
	c, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{Addresses: []string{addr}, DisableRetry: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const logsTemplate = `{"index_patterns":["logs-*"],"priority":10,"template":{"settings":{"number_of_replicas":0},"mappings":{"properties":{
	"time":{"type":"date"},"client_ip":{"type":"ip"},"status":{"type":"integer"},"elb":{"type":"keyword"},
	"duration":{"type":"double"},"url":{"type":"text","fields":{"raw":{"type":"keyword"}}}}}}}`

func bulkBody(lines ...string) io.Reader { return strings.NewReader(strings.Join(lines, "\n") + "\n") }

func doc(id, ts, ip string, status int, dur float64) string {
	return fmt.Sprintf(`{"create":{"_id":%q}}`+"\n"+`{"time":%q,"client_ip":%q,"status":%d,"elb":"app/web/1","duration":%v,"url":"GET /api/items"}`, id, ts, ip, status, dur)
}

func TestOpenSearchGoClient(t *testing.T) {
	ctx := context.Background()
	_, addr := serve(t, Config{})
	c := osClient(t, addr)

	info, err := c.Info(ctx, nil)
	if err != nil || info.Version.Distribution != "opensearch" {
		t.Fatalf("info: %v %+v", err, info)
	}
	if _, err := c.IndexTemplate.Create(ctx, opensearchapi.IndexTemplateCreateReq{IndexTemplate: "logs", Body: strings.NewReader(logsTemplate)}); err != nil {
		t.Fatalf("template: %v", err)
	}
	// Bulk into an index that does not exist yet: created from the template.
	resp, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: "logs-2024.05.01", Body: bulkBody(
		doc("a", "2024-05-01T10:00:01.5Z", "10.0.0.1", 200, 0.010),
		doc("b", "2024-05-01T10:00:30Z", "10.0.0.2", 200, 0.020),
		doc("c", "2024-05-01T10:01:10Z", "::ffff:10.0.0.3", 503, 0.300),
		doc("d", "2024-05-01T10:03:00Z", "10.0.0.1", 404, 0.040),
		doc("a", "2024-05-01T10:00:01.5Z", "10.0.0.1", 200, 0.010), // redelivered
	)})
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if !resp.Errors || len(resp.Items) != 5 {
		t.Fatalf("bulk answer: errors=%v items=%d", resp.Errors, len(resp.Items))
	}
	for i, want := range []int{201, 201, 201, 201, 409} {
		it := resp.Items[i]["create"]
		if it.Status != want {
			t.Errorf("item %d: status %d, want %d (%+v)", i, it.Status, want, it.Error)
		}
	}
	if e := resp.Items[4]["create"].Error; e == nil || e.Type != "version_conflict_engine_exception" {
		t.Errorf("duplicate create: %+v", e)
	}
	if _, err := c.Indices.Refresh(ctx, &opensearchapi.IndicesRefreshReq{Index: []string{"logs-*"}}); err != nil {
		t.Fatal(err)
	}

	got, err := c.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: "logs-2024.05.01", DocumentID: "c"})
	if err != nil || !got.Found || got.Version != 1 {
		t.Fatalf("get: %v %+v", err, got)
	}
	var src map[string]any
	_ = json.Unmarshal(got.Source, &src)
	if src["status"] != float64(503) {
		t.Errorf("source: %s", got.Source)
	}
	if _, err := c.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: "logs-2024.05.01", DocumentID: "zz"}); err == nil {
		t.Error("missing document: no error")
	}

	cnt, err := c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: []string{"logs-*"}})
	if err != nil || cnt.Count != 4 {
		t.Fatalf("count: %v %+v", err, cnt)
	}

	for _, tc := range []struct {
		name  string
		body  string
		total int
		ids   []string
	}{
		{"match_all", `{"query":{"match_all":{}},"sort":[{"time":"asc"}]}`, 4, []string{"a", "b", "c", "d"}},
		{"term keyword", `{"query":{"term":{"elb":"app/web/1"}},"size":1,"sort":[{"time":{"order":"desc"}}]}`, 4, []string{"d"}},
		{"term ip mapped", `{"query":{"term":{"client_ip":"10.0.0.3"}}}`, 1, []string{"c"}},
		{"term number", `{"query":{"term":{"status":200}},"sort":["time"]}`, 2, []string{"a", "b"}},
		{"range number", `{"query":{"range":{"status":{"gte":400}}},"sort":[{"status":"desc"}]}`, 2, []string{"c", "d"}},
		{"range date", `{"query":{"range":{"time":{"gt":"2024-05-01T10:00:01.5Z","lt":"2024-05-01T10:03:00Z"}}},"sort":["time"]}`, 2, []string{"b", "c"}},
		{"bool", `{"query":{"bool":{"filter":[{"term":{"status":200}}],"must_not":{"term":{"_id":"x"}},"should":[]}},"sort":[{"duration":"desc"}]}`, 2, []string{"b", "a"}},
		{"match text", `{"query":{"match":{"url":"items"}},"size":0}`, 4, nil},
		{"keyword sub-field", `{"query":{"term":{"url.raw":"GET /api/items"}},"size":0}`, 4, nil},
		{"unmapped field", `{"query":{"term":{"nope":"x"}}}`, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Search(ctx, &opensearchapi.SearchReq{Indices: []string{"logs-2024.05.01"}, Body: strings.NewReader(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Hits.Total.Value != tc.total {
				t.Errorf("total %d, want %d", res.Hits.Total.Value, tc.total)
			}
			var ids []string
			for _, h := range res.Hits.Hits {
				ids = append(ids, h.ID)
			}
			if tc.ids != nil && strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
				t.Errorf("ids %v, want %v", ids, tc.ids)
			}
		})
	}

	res, err := c.Search(ctx, &opensearchapi.SearchReq{Indices: []string{"logs-*"}, Body: strings.NewReader(`{"size":0,"aggs":{
		"codes":{"terms":{"field":"status"}},
		"ips":{"terms":{"field":"client_ip","size":1}},
		"per_minute":{"date_histogram":{"field":"time","fixed_interval":"1m"}},
		"latency":{"percentiles":{"field":"duration","percents":[50,100]}}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var aggs struct {
		Codes struct {
			Buckets []struct {
				Key      float64 `json:"key"`
				DocCount int     `json:"doc_count"`
			} `json:"buckets"`
		} `json:"codes"`
		IPs struct {
			SumOther int `json:"sum_other_doc_count"`
			Buckets  []struct {
				Key      string `json:"key"`
				DocCount int    `json:"doc_count"`
			} `json:"buckets"`
		} `json:"ips"`
		PerMinute struct {
			Buckets []struct {
				Key      int64  `json:"key"`
				KeyStr   string `json:"key_as_string"`
				DocCount int    `json:"doc_count"`
			} `json:"buckets"`
		} `json:"per_minute"`
		Latency struct {
			Values map[string]float64 `json:"values"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(res.Aggregations, &aggs); err != nil {
		t.Fatalf("%v: %s", err, res.Aggregations)
	}
	if b := aggs.Codes.Buckets; len(b) != 3 || b[0].Key != 200 || b[0].DocCount != 2 {
		t.Errorf("terms on status: %+v", b)
	}
	if b := aggs.IPs.Buckets; len(b) != 1 || b[0].Key != "10.0.0.1" || b[0].DocCount != 2 || aggs.IPs.SumOther != 2 {
		t.Errorf("terms on ip: %+v other %d", b, aggs.IPs.SumOther)
	}
	var hist []string
	for _, b := range aggs.PerMinute.Buckets {
		hist = append(hist, fmt.Sprintf("%s=%d", b.KeyStr[11:16], b.DocCount))
	}
	if strings.Join(hist, " ") != "10:00=2 10:01=1 10:02=0 10:03=1" {
		t.Errorf("date_histogram: %v", hist)
	}
	if v := aggs.Latency.Values; v["50.0"] != 0.03 || v["100.0"] != 0.3 {
		t.Errorf("percentiles: %v", v)
	}

	cat, err := c.Cat.Indices(ctx, &opensearchapi.CatIndicesReq{})
	if err != nil || len(cat.Indices) != 1 || cat.Indices[0].Index != "logs-2024.05.01" || cat.Indices[0].DocsCount == nil || *cat.Indices[0].DocsCount != 4 {
		t.Fatalf("cat indices: %v %+v", err, cat)
	}
	if cat.Indices[0].Health != "green" { // the template set no replicas
		t.Errorf("health %s", cat.Indices[0].Health)
	}

	// opensearchutil's BulkIndexer, as users of the client index with it.
	bi, err := opensearchutil.NewBulkIndexer(opensearchutil.BulkIndexerConfig{Client: c, Index: "logs-2024.05.02", FlushBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := bi.Add(ctx, opensearchutil.BulkIndexerItem{Action: "create", DocumentID: fmt.Sprint(i),
			Body: strings.NewReader(fmt.Sprintf(`{"time":"2024-05-02T00:00:%02dZ","status":%d}`, i, 200+i%3))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := bi.Stats(); st.NumCreated != 50 || st.NumFailed != 0 {
		t.Errorf("bulk indexer stats %+v", st)
	}
	cnt, err = c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: []string{"logs-*"}, Body: strings.NewReader(`{"query":{"term":{"status":201}}}`)})
	if err != nil || cnt.Count != 17 {
		t.Fatalf("count with a query: %v %+v", err, cnt)
	}
}

func TestGoElasticsearchClient(t *testing.T) {
	ctx := context.Background()
	_, addr := serve(t, Config{})
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{addr}, DisableRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, res interface {
		IsError() bool
		String() string
	}, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.IsError() {
			t.Fatalf("%s: %s", what, res.String())
		}
	}
	r1, err := es.Indices.Create("web", es.Indices.Create.WithBody(strings.NewReader(`{"mappings":{"properties":{"time":{"type":"date"},"status":{"type":"long"},"path":{"type":"keyword"}}}}`)), es.Indices.Create.WithContext(ctx))
	check("create index", r1, err)
	r1.Body.Close()
	r2, err := es.Indices.Create("web")
	if err != nil || r2.StatusCode != 400 || !strings.Contains(r2.String(), "resource_already_exists_exception") {
		t.Fatalf("second create: %v %s", err, r2)
	}
	var body bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&body, `{"create":{"_index":"web","_id":"r%d"}}`+"\n"+`{"time":%d,"status":%d,"path":"/p%d"}`+"\n", i, 1714557600000+int64(i)*1000, 200+100*(i%4), i%5)
	}
	r3, err := es.Bulk(bytes.NewReader(body.Bytes()), es.Bulk.WithRefresh("true"))
	check("bulk", r3, err)
	var bulk struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	_ = json.NewDecoder(r3.Body).Decode(&bulk)
	r3.Body.Close()
	if bulk.Errors || len(bulk.Items) != 20 {
		t.Fatalf("bulk: %+v", bulk)
	}
	r4, err := es.Get("web", "r7")
	check("get", r4, err)
	var gd struct {
		Found  bool           `json:"found"`
		Source map[string]any `json:"_source"`
	}
	_ = json.NewDecoder(r4.Body).Decode(&gd)
	if !gd.Found || gd.Source["path"] != "/p2" {
		t.Errorf("get: %+v", gd)
	}
	r5, err := es.Count(es.Count.WithIndex("web"), es.Count.WithBody(strings.NewReader(`{"query":{"range":{"time":{"gte":"2024-05-01T10:00:10Z"}}}}`)))
	check("count", r5, err)
	var cd struct {
		Count int `json:"count"`
	}
	_ = json.NewDecoder(r5.Body).Decode(&cd)
	if cd.Count != 10 {
		t.Errorf("count %d, want 10", cd.Count)
	}
	r6, err := es.Search(es.Search.WithIndex("web"), es.Search.WithBody(strings.NewReader(`{"size":3,"sort":[{"time":"desc"}],"query":{"term":{"status":500}},"aggs":{"paths":{"terms":{"field":"path"}}}}`)))
	check("search", r6, err)
	var sr struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID   string `json:"_id"`
				Sort []any  `json:"sort"`
			} `json:"hits"`
		} `json:"hits"`
		Aggregations map[string]struct {
			Buckets []struct {
				Key string `json:"key"`
			} `json:"buckets"`
		} `json:"aggregations"`
	}
	_ = json.NewDecoder(r6.Body).Decode(&sr)
	if sr.Hits.Total.Value != 5 || len(sr.Hits.Hits) != 3 || sr.Hits.Hits[0].ID != "r19" || sr.Hits.Hits[0].Sort[0] != float64(1714557619000) {
		t.Errorf("search: %+v", sr.Hits)
	}
	if len(sr.Aggregations["paths"].Buckets) != 5 {
		t.Errorf("aggs: %+v", sr.Aggregations)
	}
	r7, err := es.Cat.Indices(es.Cat.Indices.WithV(true))
	check("cat", r7, err)
	text, _ := io.ReadAll(r7.Body)
	if !strings.HasPrefix(string(text), "health status index") || !strings.Contains(string(text), " web ") {
		t.Errorf("cat indices:\n%s", text)
	}
}

func TestBadRequests(t *testing.T) {
	_, addr := serve(t, Config{})
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := do("PUT", "/t", `{"mappings":{"properties":{"n":{"type":"long"}}}}`); st != 200 {
		t.Fatalf("create: %d %s", st, b)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"bad index name", "PUT", "/Bad", ``, 400, "invalid_index_name_exception"},
		{"unknown mapping type", "PUT", "/u", `{"mappings":{"properties":{"g":{"type":"geo_point"}}}}`, 400, "no handler for type [geo_point]"},
		{"bad date format", "PUT", "/u", `{"mappings":{"properties":{"d":{"type":"date","format":"yyyy"}}}}`, 400, "date format [yyyy]"},
		{"malformed action", "POST", "/_bulk", "{not json\n", 400, "Malformed action/metadata line [1]"},
		{"unknown action", "POST", "/_bulk", `{"upsert":{"_index":"t"}}` + "\n{}\n", 400, "found [upsert]"},
		{"source missing", "POST", "/_bulk", `{"index":{"_index":"t"}}` + "\n", 400, "without its source line"},
		{"empty bulk", "POST", "/_bulk", "\n", 400, "no requests added"},
		{"wrong type in document", "POST", "/_bulk", `{"index":{"_index":"t","_id":"1"}}` + "\n" + `{"n":"abc"}` + "\n", 200, "mapper_parsing_exception"},
		{"document not an object", "POST", "/_bulk", `{"index":{"_index":"t","_id":"1"}}` + "\n" + `[1]` + "\n", 200, "not a JSON object"},
		{"update refused per item", "POST", "/_bulk", `{"update":{"_index":"t","_id":"1"}}` + "\n" + `{"doc":{}}` + "\n", 200, "does not support the update action"},
		{"unknown query", "POST", "/t/_search", `{"query":{"fuzzy":{"n":1}}}`, 400, "unknown query [fuzzy]"},
		{"unknown key", "POST", "/t/_search", `{"highlight":{}}`, 400, "Unknown key [highlight]"},
		{"sub-aggregations", "POST", "/t/_search", `{"aggs":{"a":{"terms":{"field":"n"},"aggs":{}}}}`, 400, "sub-aggregations are not supported"},
		{"unsupported aggregation", "POST", "/t/_search", `{"aggs":{"a":{"cardinality":{"field":"n"}}}}`, 400, "type [cardinality] is not supported"},
		{"result window", "POST", "/t/_search", `{"from":9999,"size":2}`, 400, "Result window is too large"},
		{"missing index", "POST", "/nope/_search", `{}`, 404, "index_not_found_exception"},
		{"sort on unmapped", "POST", "/t/_search", `{"sort":["zz"]}`, 400, "No mapping found for [zz]"},
		{"bad date math", "POST", "/t/_search", `{"query":{"range":{"n":{"gte":"abc"}}}}`, 400, "not a number"},
		{"unknown path", "GET", "/_nodes/stats", ``, 405, "does not serve GET /_nodes/stats"},
		{"missing doc", "GET", "/t/_doc/none", ``, 404, `"found":false`},
		{"missing template", "DELETE", "/_index_template/none", ``, 404, "index_template_missing_exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b := do(tc.method, tc.path, tc.body)
			if st != tc.status || !strings.Contains(b, tc.want) {
				t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, st, b, tc.status, tc.want)
			}
		})
	}
}

func TestFaultsAndQueue(t *testing.T) {
	ctx := context.Background()
	in := faults.New(7)
	s, addr := serve(t, Config{Faults: in, QueueSize: 40})
	c := osClient(t, addr)
	lines := func(from, n int) io.Reader {
		var b strings.Builder
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, `{"create":{"_index":"f","_id":"%d"}}`+"\n"+`{"i":%d}`+"\n", i, i)
		}
		return strings.NewReader(b.String())
	}
	statuses := func(r *opensearchapi.BulkResp) map[int]int {
		m := map[int]int{}
		for _, it := range r.Items {
			m[it["create"].Status]++
		}
		return m
	}

	rule, _ := in.Add(faults.Rule{Service: ServiceName, Action: "BulkItem", Kind: faults.Throttle, Rate: 0.3})
	r, err := c.Bulk(ctx, opensearchapi.BulkReq{Body: lines(0, 40)})
	if err != nil {
		t.Fatal(err)
	}
	st := statuses(r)
	if st[429] == 0 || st[201] == 0 || st[429]+st[201] != 40 {
		t.Fatalf("30%% item throttling: %v", st)
	}
	if r.Items[0]["create"].Error == nil && st[429] > 0 {
		for _, it := range r.Items {
			if it["create"].Status == 429 && it["create"].Error.Type != "es_rejected_execution_exception" {
				t.Errorf("429 item type %s", it["create"].Error.Type)
			}
		}
	}
	in.Remove(rule.ID)

	// More items than the queue holds: the rest are rejected per item.
	r, err = c.Bulk(ctx, opensearchapi.BulkReq{Body: lines(100, 50)})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(r); st[201] != 40 || st[429] != 10 {
		t.Errorf("queue of 40, 50 items: %v", st)
	}
	// A full queue rejects the request whole.
	s.inflight.Add(40)
	_, err = c.Bulk(ctx, opensearchapi.BulkReq{Body: lines(200, 1)})
	s.inflight.Add(-40)
	if err == nil || !strings.Contains(err.Error(), "es_rejected_execution_exception") {
		t.Errorf("full queue: %v", err)
	}

	in.Add(faults.Rule{Service: ServiceName, Action: "Bulk", Kind: faults.Error, Count: 1})
	if _, err := c.Bulk(ctx, opensearchapi.BulkReq{Body: lines(300, 1)}); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("5xx fault: %v", err)
	}
	in.Add(faults.Rule{Service: ServiceName, Action: "Search", Kind: faults.Latency, Delay: 50 * time.Millisecond, Count: 1})
	start := time.Now()
	if _, err := c.Search(ctx, &opensearchapi.SearchReq{Indices: []string{"f"}}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("latency fault not applied")
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler("/_opensearch"))
	c := osClient(t, srv.URL+"/_opensearch")
	if _, err := c.IndexTemplate.Create(ctx, opensearchapi.IndexTemplateCreateReq{IndexTemplate: "logs", Body: strings.NewReader(logsTemplate)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: "logs-1", Body: bulkBody(doc("a", "2024-05-01T10:00:00Z", "10.0.0.1", 200, 1), doc("b", "2024-05-01T10:00:00Z", "10.0.0.1", 200, 1))}); err != nil {
		t.Fatal(err)
	}
	// A field no mapping named: added dynamically, and kept.
	if _, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: "logs-1", Body: bulkBody(`{"index":{"_id":"c"}}`, `{"extra":"hello world","time":"2024-05-01T11:00:00Z"}`)}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, addr := serve(t, Config{DataDir: dir})
	c = osClient(t, addr)
	cnt, err := c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: []string{"logs-1"}})
	if err != nil || cnt.Count != 3 {
		t.Fatalf("count after restart: %v %+v", err, cnt)
	}
	r, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: "logs-1", Body: bulkBody(doc("a", "2024-05-01T10:00:00Z", "10.0.0.1", 200, 1), `{"index":{"_id":"b"}}`, `{"status":201}`)})
	if err != nil {
		t.Fatal(err)
	}
	if it := r.Items[0]["create"]; it.Status != 409 {
		t.Errorf("create of an existing id after restart: %+v", it)
	}
	if it := r.Items[1]["index"]; it.Status != 200 || it.Result != "updated" || it.Version != 2 || it.SeqNo != 3 {
		t.Errorf("index over an existing document after restart: %+v", it)
	}
	res, err := c.Search(ctx, &opensearchapi.SearchReq{Indices: []string{"logs-1"}, Body: strings.NewReader(`{"query":{"term":{"extra.keyword":"hello world"}}}`)})
	if err != nil || res.Hits.Total.Value != 1 {
		t.Fatalf("dynamic mapping after restart: %v %+v", err, res)
	}
	// The template survived too: a new index gets its mapping.
	if _, err := c.Bulk(ctx, opensearchapi.BulkReq{Index: "logs-2", Body: bulkBody(`{"create":{"_id":"x"}}`, `{"status":"200"}`)}); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	typ := s.indices["logs-2"].fields["status"].Type
	s.mu.RUnlock()
	if typ != "integer" {
		t.Errorf("status in logs-2 is %s, want the template's integer", typ)
	}
}
