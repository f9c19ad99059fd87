package localcloud

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The OpenSearch endpoint is served under /_opensearch beside the AWS
// APIs, takes faults from the admin API, and keeps its indices across a
// restart of the local cloud.
func TestOpenSearchEndpoint(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Cloud, *httptest.Server) {
		c, err := New(Config{DataDir: dir, Tick: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return c, httptest.NewServer(c.Handler())
	}
	call := func(srv *httptest.Server, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	c, srv := open()
	if st, b := call(srv, "POST", "/_localcloud/faults", `{"service":"es","action":"BulkItem","kind":"throttle","rate":1,"count":1}`); st != 201 {
		t.Fatalf("fault: %d %s", st, b)
	}
	var bulk bytes.Buffer
	for _, id := range []string{"a", "b"} {
		bulk.WriteString(`{"create":{"_index":"logs","_id":"` + id + `"}}` + "\n{\"n\":1}\n")
	}
	st, b := call(srv, "POST", "/_opensearch/_bulk", bulk.String())
	var res struct {
		Items []map[string]struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	_ = json.Unmarshal([]byte(b), &res)
	if st != 200 || len(res.Items) != 2 || res.Items[0]["create"].Status != 429 || res.Items[1]["create"].Status != 201 {
		t.Fatalf("bulk with one throttled item: %d %s", st, b)
	}
	srv.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, srv = open()
	defer func() { srv.Close(); c.Close() }()
	if st, b := call(srv, "GET", "/_opensearch/logs/_count", ""); st != 200 || !strings.Contains(b, `"count":1`) {
		t.Fatalf("count after restart: %d %s", st, b)
	}
	if st, b := call(srv, "GET", "/_opensearch", ""); st != 200 || !strings.Contains(b, `"distribution":"opensearch"`) {
		t.Fatalf("root: %d %s", st, b)
	}
}
