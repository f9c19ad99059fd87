package elbv2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Health checks: one loop per target that needs one (see
// reconcileHealthLocked), each an HTTP GET of the group's path on the
// health check port, judged against the group's matcher and thresholds.

// healthCheckUserAgent is what ALB's health checker sends.
const healthCheckUserAgent = "ELB-HealthChecker/2.0"

func (s *Service) healthLoop(ctx context.Context, tgARN string, t *target) {
	defer s.loops.Done()
	for {
		interval, ok := s.checkTarget(ctx, tgARN, t)
		if !ok {
			return
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// probeResult is the outcome of one health check.
type probeResult struct {
	addr        string // ip:traffic-port, "" when the instance could not be resolved
	ok          bool
	invalid     bool // the instance is not running (or unknown): no verdict
	reason      string
	description string
}

// checkTarget runs one check and applies it. It returns the wait before
// the next one, and false when the loop should end.
func (s *Service) checkTarget(ctx context.Context, tgARN string, t *target) (time.Duration, bool) {
	s.mu.Lock()
	tg := s.tgs[tgARN]
	if tg == nil || ctx.Err() != nil {
		s.mu.Unlock()
		return 0, false
	}
	hc, typ, id, port := tg.HC, tg.TargetType, t.ID, t.Port
	s.mu.Unlock()

	interval := time.Duration(hc.Interval) * time.Second
	if s.cfg.HealthInterval > 0 {
		interval = s.cfg.HealthInterval
	}
	res := s.probe(ctx, hc, typ, id, port)

	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil || s.tgs[tgARN] != tg || tg.find(id, port) != t {
		return 0, false
	}
	s.applyLocked(tg, t, res)
	return interval, true
}

func (s *Service) probe(ctx context.Context, hc healthCheck, typ, id string, port int) probeResult {
	ip := id
	if typ == "instance" {
		var running bool
		var err error
		ip, running, err = s.cfg.Instances.PrivateIP(ctx, id)
		switch {
		case err != nil:
			return probeResult{invalid: true, reason: reasonInvalidState, description: fmt.Sprintf("Target is not a known instance: %v", err)}
		case !running:
			return probeResult{invalid: true, reason: reasonInvalidState, description: "Target is in the stopped state"}
		}
	}
	res := probeResult{addr: net.JoinHostPort(ip, strconv.Itoa(port))}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(hc.Timeout)*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(ip, hcPort(hc, port)) + hc.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.reason, res.description = reasonFailedHealthChecks, "Health checks failed"
		return res
	}
	req.Header.Set("User-Agent", healthCheckUserAgent)
	resp, err := s.checker.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			res.reason, res.description = reasonTimeout, "Request timed out"
		} else {
			res.reason, res.description = reasonFailedHealthChecks, "Health checks failed"
		}
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	m, _ := parseMatcher(hc.Matcher) // validated when the group was created
	if m.match(resp.StatusCode) {
		res.ok = true
		return res
	}
	res.reason = reasonResponseCodeMismatch
	res.description = fmt.Sprintf("Health checks failed with these codes: [%d]", resp.StatusCode)
	return res
}

// applyLocked moves t through ALB's health states: one passing check takes
// a new target from initial to healthy; HealthyThresholdCount consecutive
// passes bring an unhealthy one back; UnhealthyThresholdCount consecutive
// failures take any other out.
func (s *Service) applyLocked(tg *targetGroup, t *target, res probeResult) {
	if t.draining() {
		return
	}
	if res.addr != "" {
		t.addr = res.addr
	}
	was := t.state
	switch {
	case res.invalid:
		t.successes, t.failures = 0, 0
		t.state, t.reason, t.description = stateUnused, res.reason, res.description
	case res.ok:
		t.failures = 0
		t.successes++
		if t.state != stateUnhealthy || t.successes >= tg.HC.Healthy {
			t.state, t.reason, t.description = stateHealthy, "", ""
		}
	default:
		t.successes = 0
		t.failures++
		switch {
		case t.failures >= tg.HC.Unhealthy || t.state == stateUnhealthy:
			t.state, t.reason, t.description = stateUnhealthy, res.reason, res.description
		case t.state != stateHealthy:
			t.state, t.reason, t.description = stateInitial, reasonInitialHealthChecking, "Initial health checks in progress"
		}
	}
	if t.state != was {
		s.log.Info("target health changed", "target-group", tg.Name, "target", t.ID, "port", t.Port, "from", was, "to", t.state, "reason", t.reason)
	}
}

// matcher is a parsed Matcher.HttpCode: "200", "200,202", "200-299".
type matcher []codeRange

type codeRange struct{ lo, hi int }

func (m matcher) match(code int) bool {
	for _, r := range m {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

// parseMatcher reads an HttpCode matcher; ALB accepts codes 200 to 499.
func parseMatcher(s string) (matcher, error) {
	bad := func() (matcher, error) {
		return nil, errValidation("Matcher HttpCode '%s' must be codes from 200 to 499, as a list (200,202) or a range (200-299)", s)
	}
	if s == "" || len(s) > 64 {
		return bad()
	}
	var m matcher
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 200 || a > 499 {
			return bad()
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > 499 {
				return bad()
			}
		}
		m = append(m, codeRange{a, b})
	}
	return m, nil
}
