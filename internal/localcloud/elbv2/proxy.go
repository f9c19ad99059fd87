package elbv2

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Listeners: each is a real HTTP server on ListenHost that forwards every
// request to one healthy target of its group, round robin.
//
// Ports: a listener binds the port it was created with when it can. Ports
// below 1024 are never bound (a local cloud must not need root, and two
// local clouds would fight over :80), and neither is a port already taken:
// both get a free port instead. DescribeListeners (and CreateListener's
// answer) report the port actually bound, and DNSName is ListenHost, so
// http://DNSName:Port/ always reaches the listener.

// openListenerLocked binds l (trying port first) and starts serving it.
func (s *Service) openListenerLocked(l *listener, port int) error {
	if s.closed {
		return errors.New("the service is closed")
	}
	var ln net.Listener
	var err error
	if port >= 1024 {
		ln, err = net.Listen("tcp", net.JoinHostPort(s.cfg.ListenHost, strconv.Itoa(port)))
	}
	if ln == nil {
		if err != nil {
			s.log.Info("listener port unavailable, binding a free one", "port", port, "error", err)
		}
		ln, err = net.Listen("tcp", net.JoinHostPort(s.cfg.ListenHost, "0"))
		if err != nil {
			return err
		}
	}
	l.Port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler:           s.listenerHandler(l.ARN, l.Port),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          nil,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connIDKey{}, newConnTraceID())
		},
	}
	l.srv = srv
	s.servers.Add(1)
	go func() {
		defer s.servers.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("listener stopped", "listener", l.ARN, "error", err)
		}
	}()
	return nil
}

func closeServers(srvs []*http.Server) {
	for _, srv := range srvs {
		if srv != nil {
			_ = srv.Close()
		}
	}
}

type connIDKey struct{}

// newConnTraceID is the access logs' conn_trace_id: one per client
// connection.
func newConnTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "TID_" + hex.EncodeToString(b[:])
}

// route is what one request needs to know, read under s.mu.
type route struct {
	elbID    string // app/NAME/ID
	tgARN    string
	addr     string // chosen target ip:port, "" when none
	gone     context.Context
	logTo    logDest
	logging  bool
	listener int // bound port
}

// pickLocked chooses the next healthy target of tg, round robin in
// registration order; with FailOpen and no healthy target, the next
// unhealthy one.
func (s *Service) pickLocked(tg *targetGroup) *target {
	pick := func(state string) *target {
		var c []*target
		for _, t := range tg.Targets {
			if t.state == state && !t.draining() && t.addr != "" {
				c = append(c, t)
			}
		}
		if len(c) == 0 {
			return nil
		}
		t := c[tg.rr%uint64(len(c))]
		tg.rr++
		return t
	}
	if t := pick(stateHealthy); t != nil {
		return t
	}
	if s.cfg.FailOpen {
		return pick(stateUnhealthy)
	}
	return nil
}

func (s *Service) routeFor(listenerARN string) (route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.listeners[listenerARN]
	if l == nil {
		return route{}, false
	}
	lb := s.lbs[l.LoadBalancerARN]
	if lb == nil {
		return route{}, false
	}
	r := route{elbID: lb.elbID(), tgARN: l.TargetGroupARN, listener: l.Port}
	if bucket, prefix, ok := lb.accessLogs(); ok {
		r.logging = true
		r.logTo = logDest{bucket: bucket, prefix: prefix, lbName: lb.Name, lbID: lb.ID, nodeIP: s.nodeIP()}
	}
	tg := s.tgs[l.TargetGroupARN]
	if tg == nil {
		return r, true
	}
	if t := s.pickLocked(tg); t != nil {
		r.addr, r.gone = t.addr, t.gone
	}
	return r, true
}

// nodeIP is the load balancer node address that access log names carry.
func (s *Service) nodeIP() string {
	if ip := net.ParseIP(s.cfg.ListenHost); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return "127.0.0.1"
}

// exchange records one proxied request for its access log line.
type exchange struct {
	received     time.Time
	sent         time.Time // request handed to the target
	answered     time.Time // target's response headers arrived
	targetStatus int       // 0: no response from a target
	targetAddr   string
	traceID      string
	client       context.Context // the client's request context
}

type exchangeKey struct{}

func (s *Service) newReverseProxy() http.Handler {
	return &httputil.ReverseProxy{
		Transport: s.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			ex := pr.In.Context().Value(exchangeKey{}).(*exchange)
			pr.SetURL(&url.URL{Scheme: "http", Host: ex.targetAddr})
			pr.Out.Host = pr.In.Host
			// ALB appends the client to X-Forwarded-For and sets
			// X-Forwarded-Proto and -Port; it adds no X-Forwarded-Host.
			if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
				pr.Out.Header["X-Forwarded-For"] = prior
			}
			pr.SetXForwarded()
			pr.Out.Header.Del("X-Forwarded-Host")
			pr.Out.Header.Set("X-Forwarded-Port", pr.In.Context().Value(listenerPortKey{}).(string))
			pr.Out.Header.Set("X-Amzn-Trace-Id", ex.traceID)
			ex.sent = s.clk.Now()
		},
		ModifyResponse: func(resp *http.Response) error {
			ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
			ex.answered = s.clk.Now()
			ex.targetStatus = resp.StatusCode
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			ex := r.Context().Value(exchangeKey{}).(*exchange)
			ex.targetStatus = 0
			s.log.Debug("target failed", "target", ex.targetAddr, "error", err)
			if ex.client.Err() != nil {
				// The client left first: ALB logs that as 460.
				w.WriteHeader(statusClientClosed)
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				writeELBError(w, http.StatusGatewayTimeout)
				return
			}
			writeELBError(w, http.StatusBadGateway)
		},
	}
}

type listenerPortKey struct{}

// statusClientClosed is the elb_status_code ALB logs when the client
// closed the connection before the response.
const statusClientClosed = 460

// writeELBError answers as the load balancer itself, in ALB's style.
func writeELBError(w http.ResponseWriter, code int) {
	text := strconv.Itoa(code) + " " + http.StatusText(code)
	if code == http.StatusServiceUnavailable {
		text = "503 Service Temporarily Unavailable"
	}
	body := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text + "</h1></center>\r\n</body>\r\n</html>\r\n"
	h := w.Header()
	h.Set("Server", "awselb/2.0")
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (s *Service) listenerHandler(listenerARN string, port int) http.Handler {
	portStr := strconv.Itoa(port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.clk.Now()
		ex := &exchange{received: now, traceID: traceID(r.Header.Get("X-Amzn-Trace-Id"), now), client: r.Context()}
		body := &countingReader{r: r.Body}
		r.Body = body
		cw := &countingWriter{ResponseWriter: w}
		rt, ok := s.routeFor(listenerARN)
		switch {
		case !ok:
			writeELBError(cw, http.StatusServiceUnavailable)
		case rt.addr == "":
			writeELBError(cw, http.StatusServiceUnavailable)
		default:
			ex.targetAddr = rt.addr
			ctx, cancel := context.WithCancel(r.Context())
			stop := context.AfterFunc(rt.gone, cancel) // the target left: abort
			ctx = context.WithValue(ctx, exchangeKey{}, ex)
			ctx = context.WithValue(ctx, listenerPortKey{}, portStr)
			s.proxy.ServeHTTP(cw, r.WithContext(ctx))
			stop()
			cancel()
		}
		if ok && rt.logging {
			conn, _ := r.Context().Value(connIDKey{}).(string)
			line := formatLogLine(logEntry{
				r: r, ex: ex, elbID: rt.elbID, tgARN: rt.tgARN, listenerPort: rt.listener,
				elbStatus: cw.status(), receivedBytes: requestSize(r) + body.n, sentBytes: cw.headerSize() + cw.n,
				done: s.clk.Now(), connTraceID: conn,
			})
			s.logs.add(rt.logTo, line)
		}
	})
}

// traceID returns the X-Amzn-Trace-Id to forward: ALB keeps a client's
// Root (adding Self) or makes a new Root.
func traceID(in string, now time.Time) string {
	id := func() string {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return fmt.Sprintf("1-%08x-%s", now.Unix(), hex.EncodeToString(b[:]))
	}
	if strings.Contains(in, "Root=") && len(in) < 7<<10 {
		fields := strings.Split(in, ";")
		kept := fields[:0]
		for _, f := range fields {
			if !strings.HasPrefix(f, "Self=") {
				kept = append(kept, f)
			}
		}
		return "Self=" + id() + ";" + strings.Join(kept, ";")
	}
	return "Root=" + id()
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// countingWriter remembers the status and counts the body bytes sent.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
	hdr  int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 && code >= 200 { // 1xx responses are interim, not the status
		c.code = code
		c.hdr = headerSize(c.ResponseWriter.Header()) + int64(len("HTTP/1.1 000 "+http.StatusText(code)+"\r\n\r\n"))
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// Flush keeps streaming responses streaming through the proxy.
func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

func (c *countingWriter) headerSize() int64 { return c.hdr }

// headerSize is the size of h on the wire in HTTP/1.1.
func headerSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(": ") + len(v) + len("\r\n"))
		}
	}
	return n
}

// requestSize is the size of r's request line and headers on the wire.
func requestSize(r *http.Request) int64 {
	n := int64(len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2)
	n += int64(len("Host: ") + len(r.Host) + 2)
	return n + headerSize(r.Header) + 2
}
