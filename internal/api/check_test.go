package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestIncompleteAnswers: a 200 whose body decodes but holds no update
// (`{}`, `null`, a list with a null in it) is an error that names the
// path, never a document with a nil record for the caller to trip on.
func TestIncompleteAnswers(t *testing.T) {
	calls := []struct {
		name string
		call func(*Client) error
	}{
		{"Update", func(c *Client) error { _, err := c.Update(t.Context(), "upd-1"); return err }},
		{"AbortUpdate", func(c *Client) error { _, err := c.AbortUpdate(t.Context(), "upd-1", ""); return err }},
		{"StartUpdate", func(c *Client) error {
			_, _, err := c.StartUpdate(t.Context(), UpdateRequest{Group: "g"}, false)
			return err
		}},
		{"Updates", func(c *Client) error { _, err := c.Updates(t.Context(), nil); return err }},
	}
	for _, body := range []string{`{}`, `null`, `{"updates":[null]}`, `{"updates":[{}]}`, `{"migrations":[]}`} {
		for _, c := range calls {
			if c.name == "Updates" && !strings.Contains(body, "updates") {
				continue // an empty list is a fine answer
			}
			t.Run(c.name+" "+body, func(t *testing.T) {
				_, cl := newStub(t, http.StatusOK, body, "")
				err := c.call(cl)
				if !errors.Is(err, errIncomplete) {
					t.Fatalf("err = %v, want an incomplete answer", err)
				}
				if !strings.Contains(err.Error(), "/v1/updates") || !strings.Contains(err.Error(), "check --api") {
					t.Errorf("err %q does not name the path and what to check", err)
				}
			})
		}
	}
	// A complete answer passes.
	_, cl := newStub(t, http.StatusOK, `{"id":"upd-1","group":"g","state":"Running","migrations":[]}`, "")
	if u, err := cl.Update(t.Context(), "upd-1"); err != nil || u.ID != "upd-1" {
		t.Errorf("complete answer: %+v, %v", u, err)
	}
	_, cl = newStub(t, http.StatusOK, `{"updates":[]}`, "")
	if us, err := cl.Updates(t.Context(), nil); err != nil || len(us) != 0 {
		t.Errorf("empty list: %v, %v", us, err)
	}
}
