package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func release(t *testing.T, root, name string, unhealthy bool) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		".handover-release.json": `{"channel":"web","name":"` + name + `","manifest_hash":"blake3:00"}`,
		"index.html":             "<h1>" + name + "</h1>",
	}
	if unhealthy {
		files["UNHEALTHY"] = ""
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServesWhatItTookUp: a flipped link changes nothing until a reload;
// then the release, its files and its health are the new one's.
func TestServesWhatItTookUp(t *testing.T) {
	root := t.TempDir()
	v1, v2 := release(t, root, "v1", false), release(t, root, "v2", true)
	link := filepath.Join(root, "current")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	first, err := load(link)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{link: link}
	s.cur.Store(first)
	ts := httptest.NewServer(s.handler())
	defer ts.Close()

	check := func(when, release, page string, health int) {
		t.Helper()
		if _, body := get(t, ts.URL+"/release"); !strings.Contains(body, `"release":"`+release+`"`) {
			t.Errorf("%s: /release = %s, want %s", when, body, release)
		}
		if _, body := get(t, ts.URL+"/index.html"); body != page {
			t.Errorf("%s: /index.html = %q, want %q", when, body, page)
		}
		if code, _ := get(t, ts.URL+"/healthz"); code != health {
			t.Errorf("%s: /healthz = %d, want %d", when, code, health)
		}
	}
	check("at start", "v1", "<h1>v1</h1>", 200)
	if code, _ := get(t, ts.URL+"/.handover-release.json"); code != 404 {
		t.Errorf("the marker is served: %d", code)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(v2, link); err != nil {
		t.Fatal(err)
	}
	check("after the flip, before the reload", "v1", "<h1>v1</h1>", 200)
	if _, err := s.reload(); err != nil {
		t.Fatal(err)
	}
	check("after the reload", "v2", "<h1>v2</h1>", 503)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if _, err := s.reload(); err == nil {
		t.Error("a reload with no release behind the link did not fail")
	}
	check("after a failed reload", "v2", "<h1>v2</h1>", 503)
}
