package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/handover-dev/handover/internal/ledger"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client reads a controller's API.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// NewClient returns a client of the controller at baseURL
// (http://127.0.0.1:7070). token, if set, is sent as a bearer token.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("controller API address %q is not an http(s) URL such as http://127.0.0.1:7070", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// ErrNotFound is returned for a migration the controller does not know.
var ErrNotFound = errors.New("not found")

// Status reads GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.get(ctx, PathStatus, nil, &s)
}

// Migrations reads GET /v1/migrations, filtered by q (keys: state,
// database, unfinished).
func (c *Client) Migrations(ctx context.Context, q url.Values) ([]MigrationSummary, error) {
	var ms Migrations
	err := c.get(ctx, PathMigrations, q, &ms)
	return ms.Migrations, err
}

// Migration reads GET /v1/migrations/{id}.
func (c *Client) Migration(ctx context.Context, id string) (Migration, error) {
	var m Migration
	return m, c.get(ctx, PathMigrations+"/"+url.PathEscape(id), nil, &m)
}

// Databases reads GET /v1/databases.
func (c *Client) Databases(ctx context.Context) ([]Database, error) {
	var ds Databases
	err := c.get(ctx, PathDatabases, nil, &ds)
	return ds.Databases, err
}

// StartUpdate starts a group update (or, with dryRun, returns its plan in
// plan and nil).
func (c *Client) StartUpdate(ctx context.Context, r UpdateRequest, dryRun bool) (*Update, *Plan, error) {
	q := url.Values{}
	if dryRun {
		var p Plan
		q.Set("dry_run", "true")
		return nil, &p, c.do(ctx, http.MethodPost, PathUpdates, q, r, &p)
	}
	var u Update
	return &u, nil, c.do(ctx, http.MethodPost, PathUpdates, q, r, &u)
}

// Update returns one update with its handovers.
func (c *Client) Update(ctx context.Context, id string) (Update, error) {
	var u Update
	err := c.get(ctx, PathUpdates+"/"+url.PathEscape(id), nil, &u)
	return u, err
}

// Updates lists updates (q: group, unfinished).
func (c *Client) Updates(ctx context.Context, q url.Values) ([]*ledger.Update, error) {
	var us Updates
	err := c.get(ctx, PathUpdates, q, &us)
	return us.Updates, err
}

// AbortUpdate asks a running update to roll back.
func (c *Client) AbortUpdate(ctx context.Context, id, reason string) (Update, error) {
	var u Update
	err := c.do(ctx, http.MethodPost, PathUpdates+"/"+url.PathEscape(id)+"/abort", nil, AbortRequest{Reason: reason}, &u)
	return u, err
}

func (c *Client) get(ctx context.Context, path string, q url.Values, into any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, into)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, into any) error {
	u := c.base.JoinPath(path)
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
		if u.RawPath != "" {
			u.RawPath = "/" + u.RawPath
		}
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request for %s: %w", u.Path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if in != nil && err == nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err != nil {
		return fmt.Errorf("building request for %s: %w", u, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the controller at %s (is `handover controller` running there? set --api or HANDOVER_API): %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, u.Path, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e Error
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%s %s: %s: %w", method, u.Path, msg, ErrNotFound)
		case http.StatusUnauthorized:
			return fmt.Errorf("%s %s: %s (pass the controller's token with --api-token or HANDOVER_API_TOKEN)", method, u.Path, msg)
		case http.StatusBadRequest, http.StatusConflict:
			return fmt.Errorf("%s", msg)
		}
		return fmt.Errorf("%s %s: %s: %s", method, u.Path, resp.Status, msg)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, u.Path, err)
	}
	if ch, ok := into.(checked); ok {
		if err := ch.check(); err != nil {
			return fmt.Errorf("%s %s: %w (is %s a handover controller? check --api)", method, u.Path, err, c.base)
		}
	}
	return nil
}
