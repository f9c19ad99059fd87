package fence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client calls the fence endpoints of a service. The zero Client is ready to
// use. It is safe for concurrent use.
type Client struct {
	// HTTP is the client used for every call. Nil means one that talks
	// directly to the instance (no proxy from the environment: a proxy
	// would turn "instance unreachable" into "proxy answered 502") and
	// does not follow redirects.
	HTTP *http.Client
	// Port is used when addr carries none. Zero means DefaultPort.
	Port int
	// Token, when set, is sent as "Authorization: Bearer Token".
	Token string
	// Timeout bounds each call; past it the call fails with
	// ErrUnreachable. Zero means DefaultTimeout.
	Timeout time.Duration
}

var defaultHTTP = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
})

// Fence asks the service at addr (its private IP or host name, optionally
// with ":port") to stop accepting writes and flush everything it
// acknowledged, under epoch. It returns nil only when the service confirmed
// it is fenced under epoch. Safe to repeat: fencing again with the same
// epoch succeeds again.
func (c *Client) Fence(ctx context.Context, addr string, epoch int64) error {
	return c.call(ctx, "fencing", addr, PathFence, epoch, true)
}

// Unfence asks the service at addr to accept writes again. It succeeds if the
// service was fenced under epoch and now is not, or was not fenced at all;
// it fails with ErrStaleEpoch if the service is fenced under another epoch,
// which the caller must then leave alone. Safe to repeat.
func (c *Client) Unfence(ctx context.Context, addr string, epoch int64) error {
	return c.call(ctx, "unfencing", addr, PathUnfence, epoch, false)
}

// Retire asks the service at addr to stop answering from its own data:
// fenced under epoch, it forwards every read and write to successor (the
// new instance's address, with ":port" or the client's Port) from then on.
// It returns nil only when the service confirmed it is retired under epoch
// to that successor. Safe to repeat. A service that does not implement
// retire answers 404: IsNotImplemented(err) is then true.
func (c *Client) Retire(ctx context.Context, addr string, epoch int64, successor string) error {
	hostport, err := c.hostPort(addr)
	if err != nil {
		return fmt.Errorf("retiring %q at epoch %d: %w", addr, epoch, err)
	}
	succ, err := c.hostPort(successor)
	if err != nil {
		return fmt.Errorf("retiring %s at epoch %d: successor: %w", hostport, epoch, err)
	}
	what := fmt.Sprintf("retiring %s at epoch %d in favour of %s", hostport, epoch, succ)
	if epoch < 1 {
		return fmt.Errorf("%s: epoch must be at least 1", what)
	}
	body, err := json.Marshal(RetireRequest{Epoch: epoch, Successor: succ})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	code, header, resp, err := c.do(ctx, http.MethodPost, hostport, PathRetire, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %w", what, newStatusError(code, header, resp))
	}
	if err := checkAnswer(resp, epoch, true); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var r Response
	if err := json.Unmarshal(resp, &r); err != nil || !r.Retired || r.Successor != succ {
		return fmt.Errorf("%s: %w: answered 200 with retired %v to %q", what, ErrBadResponse, r.Retired, r.Successor)
	}
	return nil
}

// SuccessorAddr returns addr as the host:port a retire request names: the
// client's Port is added when addr has none.
func (c *Client) SuccessorAddr(addr string) (string, error) { return c.hostPort(addr) }

// Healthy returns nil when the service at addr answers 200 to GET /healthz.
func (c *Client) Healthy(ctx context.Context, addr string) error {
	hostport, err := c.hostPort(addr)
	if err != nil {
		return fmt.Errorf("checking health of %q: %w", addr, err)
	}
	what := "checking health of " + hostport
	code, header, body, err := c.do(ctx, http.MethodGet, hostport, PathHealth, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %w", what, newStatusError(code, header, body))
	}
	return nil
}

func (c *Client) call(ctx context.Context, op, addr, path string, epoch int64, wantFenced bool) error {
	hostport, err := c.hostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q at epoch %d: %w", op, addr, epoch, err)
	}
	what := fmt.Sprintf("%s %s at epoch %d", op, hostport, epoch)
	if epoch < 1 {
		return fmt.Errorf("%s: epoch must be at least 1", what)
	}
	body, err := json.Marshal(Request{Epoch: epoch})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	code, header, resp, err := c.do(ctx, http.MethodPost, hostport, path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %w", what, newStatusError(code, header, resp))
	}
	if err := checkAnswer(resp, epoch, wantFenced); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// checkAnswer insists on the exact confirmation the protocol promises: a
// fence is only done when the service says it is fenced under our epoch.
func checkAnswer(body []byte, epoch int64, wantFenced bool) error {
	var r struct {
		Fenced *bool  `json:"fenced"`
		Epoch  *int64 `json:"epoch"`
	}
	if len(body) > maxResponseBody {
		return fmt.Errorf("%w: answered 200 with more than %d bytes", ErrBadResponse, maxResponseBody)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%w: answered 200 with %q: %v", ErrBadResponse, printable(string(body)), err)
	}
	switch {
	case r.Fenced == nil:
		return fmt.Errorf("%w: answered 200 without \"fenced\"", ErrBadResponse)
	case *r.Fenced != wantFenced:
		return fmt.Errorf("%w: answered 200 with \"fenced\": %v", ErrBadResponse, *r.Fenced)
	case wantFenced && (r.Epoch == nil || *r.Epoch != epoch):
		got := "none"
		if r.Epoch != nil {
			got = strconv.FormatInt(*r.Epoch, 10)
		}
		return fmt.Errorf("%w: answered 200 fenced under epoch %s, not %d", ErrBadResponse, got, epoch)
	}
	return nil
}

// do makes one request bounded by c.Timeout and reads at most
// maxResponseBody+1 bytes of the answer.
func (c *Client) do(ctx context.Context, method, hostport, path string, body []byte) (int, http.Header, []byte, error) {
	return c.doLimit(ctx, method, hostport, path, body, maxResponseBody)
}

// doLimit is do reading at most limit+1 bytes of the answer.
func (c *Client) doLimit(ctx context.Context, method, hostport, path string, body []byte, limit int64) (int, http.Header, []byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u := (&url.URL{Scheme: "http", Host: hostport, Path: path}).String()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, noAnswer(ctx, cctx, timeout, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		// Half an answer is no answer: the service may or may not
		// have acted.
		return 0, nil, nil, noAnswer(ctx, cctx, timeout, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// noAnswer classifies a failed exchange. The caller's own context ending is
// not the instance's fault and must not escalate to a hard fence, so it is
// returned as is; everything else is ErrUnreachable. The cause is kept as
// text, not wrapped, so that a per-call timeout does not look like the
// caller's deadline to errors.Is.
func noAnswer(parent, call context.Context, timeout time.Duration, err error) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	if errors.Is(call.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer within %v", ErrUnreachable, timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the caller's message
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// hostPort turns addr — "10.0.0.5", "ip-10-0-0-5.ec2.internal", "fd00::5",
// "[fd00::5]", or any of them with ":port" — into host:port.
func (c *Client) hostPort(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty address")
	}
	if strings.ContainsAny(addr, "/?#@ ") {
		return "", fmt.Errorf("address %q: want a host or IP, optionally with :port, not a URL", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port (or a bare IPv6 address, whose colons confuse
		// SplitHostPort): use the configured one.
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		port = strconv.Itoa(DefaultPort)
		if c.Port != 0 {
			port = strconv.Itoa(c.Port)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("address %q: port %q out of range", addr, port)
	}
	if host == "" || strings.ContainsAny(host, "[]") {
		return "", fmt.Errorf("address %q: no host", addr)
	}
	return net.JoinHostPort(host, port), nil
}
