package fence

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HeaderForwarded marks a request a retired service forwarded to its
// successor; its value counts the hops. A chain of retirements (A retired
// to B, B later retired to C) forwards more than once; a loop, which only a
// misconfiguration makes, is cut at MaxForwardHops.
const HeaderForwarded = "Handover-Forwarded"

// MaxForwardHops bounds how many retired services one request passes.
const MaxForwardHops = 4

// hopByHop are the headers a proxy must not pass on (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate"}

// Forwarder sends what a retired service can no longer answer correctly to
// its successor and copies the answer back. The zero Forwarder is ready to
// use; it is safe for concurrent use.
//
// It must never fall back to answering from the retired service's data: a
// successor that does not answer makes the request fail with 503 and
// Retry-After, which clients retry. A stale answer would be worse than
// none (invariant no-stale-reads).
type Forwarder struct {
	// HTTP is the client used; nil means one that talks directly to the
	// successor (no proxy from the environment) and follows no redirects.
	HTTP *http.Client
	// Timeout bounds one forwarded request. Zero means DefaultTimeout.
	Timeout time.Duration
}

var forwardHTTP = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
})

// Forward sends r, with body (already read by the caller; nil for none),
// to the same path and query on successor ("host:port"), and writes the
// successor's answer to w.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, successor string, body []byte) {
	hops, _ := strconv.Atoi(r.Header.Get(HeaderForwarded))
	if hops >= MaxForwardHops {
		refuseForward(w, "retired: forwarded "+strconv.Itoa(hops)+" times already (a forwarding loop?)")
		return
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: successor, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		refuseForward(w, "retired: cannot forward: "+err.Error())
		return
	}
	copyHeaders(req.Header, r.Header)
	req.Header.Set(HeaderForwarded, strconv.Itoa(hops+1))
	hc := f.HTTP
	if hc == nil {
		hc = forwardHTTP()
	}
	resp, err := hc.Do(req)
	if err != nil {
		refuseForward(w, "retired: successor "+successor+" does not answer")
		return
	}
	defer resp.Body.Close()
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func copyHeaders(dst, src http.Header) {
	for k, vs := range src {
		if isHopByHop(k) {
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}

func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if strings.EqualFold(k, h) {
			return true
		}
	}
	return false
}

// refuseForward answers a request a retired service could not forward: 503
// with Retry-After, like a fenced write, so clients retry.
func refuseForward(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: msg})
}
