// Package elbv2 is the local cloud's Elastic Load Balancing v2: the
// awsquery API (version 2015-12-01) that the unmodified aws-sdk-go-v2 and
// AWS CLI talk to, backed by real HTTP reverse proxies on loopback ports
// that forward to the healthy targets of a target group, health-check them,
// drain them on deregistration and write ALB-format access logs into a
// bucket.
//
// It implements Application Load Balancers with HTTP listeners whose
// default action forwards to one target group of instance or ip targets.
// Where it differs from AWS on purpose:
//
//   - A listener asked for a port below 1024, or for a taken one, binds a
//     free port; DescribeListeners reports the bound port and DNSName is
//     the listen address, so http://DNSName:Port/ reaches it (proxy.go).
//   - With no healthy target a listener answers 503 unless
//     Config.FailOpen asks for ALB's documented fail-open.
//   - Health check intervals go down to 1 s (Config.HealthInterval lower
//     still, for tests).
//
// It must never reach past its consumer-owned interfaces: EC2 through
// Instances, S3 through ObjectPutter.
package elbv2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// janitorInterval is how often draining targets past their delay are
// removed (and their in-flight requests aborted) without an API call.
const janitorInterval = 100 * time.Millisecond

// Service is the ELBv2 endpoint. It is an http.Handler for API requests;
// listeners run their own servers.
type Service struct {
	cfg Config
	log *slog.Logger
	clk clock.Clock

	mu        sync.Mutex
	lbs       map[string]*loadBalancer
	tgs       map[string]*targetGroup
	listeners map[string]*listener
	seq       int64
	runCtx    context.Context // set by Start; nil before
	closed    bool

	loops   sync.WaitGroup // health loops, janitor, log flusher
	servers sync.WaitGroup // listener Serve goroutines
	stop    context.CancelFunc

	persistMu   sync.Mutex
	persistSeq  uint64 // guarded by mu: snapshots taken
	persistDone uint64 // guarded by persistMu: newest snapshot written

	logs      *logBuffer
	proxy     http.Handler
	api       http.Handler
	transport *http.Transport
	checker   *http.Client
}

// New builds a Service, restores the state under cfg.DataDir (if any) and
// re-opens the restored listeners. Health checks and log flushing start
// with Start.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger.With("service", "elbv2"),
		clk:       cfg.Clock,
		lbs:       map[string]*loadBalancer{},
		tgs:       map[string]*targetGroup{},
		listeners: map[string]*listener{},
		logs:      newLogBuffer(),
	}
	s.transport = &http.Transport{
		Proxy:               nil, // never route target traffic through an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     60 * time.Second,
	}
	// Health checks close their connection after each check, as ALB does.
	s.checker = &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a status code to match, not to follow
		},
	}
	s.proxy = s.newReverseProxy()
	s.api = s.newAPI()
	if err := s.restore(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start begins health checking, the removal of drained targets and access
// log flushing. They stop when ctx ends or on Close.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("elbv2: Start after Close")
	}
	if s.runCtx != nil {
		return errors.New("elbv2: already started")
	}
	s.runCtx, s.stop = context.WithCancel(ctx)
	s.reconcileHealthLocked()
	s.loops.Add(2)
	go s.janitor(s.runCtx)
	go s.flusher(s.runCtx)
	return nil
}

// Close stops the listeners and background work, then writes the access
// logs still buffered. It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.stop != nil {
		s.stop()
	}
	var servers []*http.Server
	for _, l := range s.listeners {
		if l.srv != nil {
			servers = append(servers, l.srv)
			l.srv = nil
		}
	}
	for _, tg := range s.tgs {
		for _, t := range tg.Targets {
			s.stopHealthLocked(t)
		}
	}
	s.mu.Unlock()

	for _, srv := range servers {
		_ = srv.Close()
	}
	s.servers.Wait()
	s.loops.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.FlushLogs(ctx)
	s.transport.CloseIdleConnections()
	s.mu.Lock()
	for _, tg := range s.tgs {
		for _, t := range tg.Targets {
			t.leave()
		}
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("elbv2: flushing access logs on close: %w", err)
	}
	return nil
}

// janitor removes draining targets whose delay has passed, so their
// in-flight requests end even when nobody calls the API.
func (s *Service) janitor(ctx context.Context) {
	defer s.loops.Done()
	tick := time.NewTicker(janitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.mu.Lock()
			changed := s.sweepLocked()
			var snap *snapshot
			if changed {
				snap = s.snapshotLocked()
			}
			s.mu.Unlock()
			if changed {
				if err := s.persist(snap); err != nil {
					s.log.Warn("persisting after drain", "error", err)
				}
			}
		}
	}
}

// sweepLocked removes every target whose drain is over and reports whether
// any was removed.
func (s *Service) sweepLocked() bool {
	now := s.clk.Now()
	changed := false
	for _, tg := range s.tgs {
		kept := tg.Targets[:0]
		for _, t := range tg.Targets {
			if t.draining() && !now.Before(t.DrainUntil) {
				s.stopHealthLocked(t)
				t.leave()
				changed = true
				s.log.Info("target deregistered", "target-group", tg.Name, "target", t.ID, "port", t.Port)
				continue
			}
			kept = append(kept, t)
		}
		clear(tg.Targets[len(kept):])
		tg.Targets = kept
	}
	return changed
}

// nextSeqLocked numbers resources in creation order, the order Describe*
// lists them in.
func (s *Service) nextSeqLocked() int64 {
	s.seq++
	return s.seq
}
