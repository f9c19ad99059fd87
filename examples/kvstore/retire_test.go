package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// copyVolume copies a fenced store's directory, as a snapshot of its
// volume and a new volume from it would.
func copyVolume(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func hostPort(t *testing.T, in *instance) string {
	t.Helper()
	u, err := url.Parse(in.url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestRetireForwardsAndNeverAnswersStale is the cutover of docs/fence-
// protocol.md on two real stores: the new one starts fenced from a copy,
// the old one retires in its favour, the new one is unfenced; from then on
// the old one answers every read and write through the new one, and never
// from its own data, not even after a restart or with the new one down.
func TestRetireForwardsAndNeverAnswersStale(t *testing.T) {
	t.Parallel()
	oldDir := t.TempDir()
	old := start(t, oldDir, 1)
	old.want("PUT", "/kv/a", "1", 204, "")
	old.want("POST", "/admin/fence", `{"epoch": 2}`, 200, "")

	// The new instance starts from the copy, fenced under epoch 2: reads
	// yes, writes no.
	newDir := copyVolume(t, oldDir)
	nw := startWith(t, Config{DataDir: newDir, Epoch: 2, StartFenced: true})
	nw.want("GET", "/kv/a", "", 200, "1")
	nw.want("PUT", "/kv/a", "x", 503, "")

	succ := hostPort(t, nw)
	old.want("POST", "/admin/retire", fmt.Sprintf(`{"epoch": 2, "successor": %q}`, succ), 200,
		fmt.Sprintf(`{"fenced":true,"epoch":2,"retired":true,"successor":%q}`, succ))
	old.want("GET", "/kv/a", "", 200, "1") // through the new one
	old.want("PUT", "/kv/b", "2", 503, "") // the new one is still fenced

	nw.want("POST", "/admin/unfence", `{"epoch": 2}`, 200, "")
	old.want("PUT", "/kv/b", "2", 204, "") // forwarded, acknowledged by the new one
	old.want("GET", "/kv/b", "", 200, "2") // the old data has no b: a stale store would say 404
	nw.want("GET", "/kv/b", "", 200, "2")
	old.want("DELETE", "/kv/a", "", 204, "")
	nw.want("GET", "/kv/a", "", 404, "")
	if _, ok, err := old.st.Get("b"); err != nil || ok {
		t.Fatalf("the forwarded write landed in the retired store's own data (%v)", err)
	}

	// The new one goes away: the old one refuses rather than answer from
	// its own (stale) data.
	nw.stop()
	old.want("GET", "/kv/a", "", 503, "")
	old.want("PUT", "/kv/c", "3", 503, "")

	// Restarted under its own old epoch, it is still retired.
	old.stop()
	old2 := start(t, oldDir, 1)
	old2.want("GET", "/kv/a", "", 503, "")
	old2.want("POST", "/admin/fence", `{"epoch": 2}`, 200, "")
	old2.want("GET", "/kv/a", "", 503, "") // a late fence does not lift it

	// The new one restarted with the same tag stays unfenced: the
	// controller unfenced it.
	nw2 := startWith(t, Config{DataDir: newDir, Epoch: 2, StartFenced: true})
	nw2.want("PUT", "/kv/c", "3", 204, "")
}

// TestRetireRolledBack: the controller's rollback unfences the old store
// under the retirement's epoch, and it answers from its own data again
// (the new one never took a write).
func TestRetireRolledBack(t *testing.T) {
	t.Parallel()
	old := start(t, t.TempDir(), 1)
	old.want("PUT", "/kv/a", "1", 204, "")
	old.want("POST", "/admin/retire", `{"epoch": 2, "successor": "127.0.0.1:1"}`, 200, "")
	old.want("GET", "/kv/a", "", 503, "")
	old.want("POST", "/admin/unfence", `{"epoch": 2}`, 200, `{"fenced":false,"epoch":2}`)
	old.want("GET", "/kv/a", "", 200, "1")
	old.want("PUT", "/kv/a", "2", 204, "")
}
