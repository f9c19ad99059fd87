package handovertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
)

// Service is an in-memory handover.Service: one fence.Gate per address, as
// the service on that instance would keep it (persisted across restarts),
// with switches for reachability and health. Every address is reachable and
// healthy until the test says otherwise.
type Service struct {
	mu sync.Mutex
	// Calls records every call as "Fence addr epoch", "Unfence addr epoch"
	// or "Healthy addr", failed ones included.
	Calls []string
	// NextErr maps a method name ("Fence") to an error its next call
	// returns instead of doing anything. Each entry is used once.
	NextErr map[string]error

	gates       map[string]*fence.Gate
	unreachable map[string]bool
	unhealthy   map[string]bool
	noRetire    map[string]bool
}

var (
	_ handover.Service = (*Service)(nil)
	_ handover.Retirer = (*Service)(nil)
)

// NewService returns a service with every address reachable and healthy.
func NewService() *Service {
	s := &Service{}
	s.Reset()
	return s
}

// Reset forgets every gate, switch, call and injected error.
func (s *Service) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls = nil
	s.NextErr = map[string]error{}
	s.gates = map[string]*fence.Gate{}
	s.unreachable = map[string]bool{}
	s.unhealthy = map[string]bool{}
	s.noRetire = map[string]bool{}
}

// SetRetireSupported makes addr's service implement retire (true, the
// default) or answer it 404 as a service without the endpoint does.
func (s *Service) SetRetireSupported(addr string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noRetire[addr] = !ok
}

// Gate returns the gate of the service at addr, creating an unfenced one.
func (s *Service) Gate(addr string) *fence.Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gate(addr)
}

func (s *Service) gate(addr string) *fence.Gate {
	g, ok := s.gates[addr]
	if !ok {
		g = &fence.Gate{}
		s.gates[addr] = g
	}
	return g
}

// SetReachable makes addr answer (true) or time out (false).
func (s *Service) SetReachable(addr string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreachable[addr] = !ok
}

// SetHealthy makes addr's health check pass (true) or fail (false).
func (s *Service) SetHealthy(addr string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unhealthy[addr] = !ok
}

// CallsOf returns the recorded calls of method, in order.
func (s *Service) CallsOf(method string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.Calls {
		if strings.HasPrefix(c, method+" ") {
			out = append(out, c)
		}
	}
	return out
}

// enter records the call and returns an injected error or the timeout of
// an unreachable address. s.mu must be held.
func (s *Service) enter(method, addr string, args ...string) error {
	s.Calls = append(s.Calls, strings.Join(append([]string{method, addr}, args...), " "))
	if err, ok := s.NextErr[method]; ok {
		delete(s.NextErr, method)
		return fmt.Errorf("%s %s (injected): %w", method, addr, err)
	}
	if s.unreachable[addr] {
		return fmt.Errorf("%s %s: connection timed out: %w", method, addr, fence.ErrUnreachable)
	}
	return nil
}

// Fence implements handover.Service with the gate's own semantics: a lower
// epoch than the gate has seen fails with fence.ErrStaleEpoch.
func (s *Service) Fence(_ context.Context, t handover.Target, epoch int64) error {
	addr := t.Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Fence", addr, strconv.FormatInt(epoch, 10)); err != nil {
		return err
	}
	if err := s.gate(addr).Fence(epoch); err != nil {
		return fmt.Errorf("fencing %s: %w", addr, err)
	}
	return nil
}

// Unfence implements handover.Service.
func (s *Service) Unfence(_ context.Context, t handover.Target, epoch int64) error {
	addr := t.Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Unfence", addr, strconv.FormatInt(epoch, 10)); err != nil {
		return err
	}
	if err := s.gate(addr).Unfence(epoch); err != nil {
		return fmt.Errorf("unfencing %s: %w", addr, err)
	}
	return nil
}

// Retire implements handover.Retirer with the gate's semantics; the
// successor is its address with port 8080. Call: "Retire addr epoch
// successor-addr".
func (s *Service) Retire(_ context.Context, t handover.Target, epoch int64, successor handover.Target) error {
	addr := t.Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Retire", addr, strconv.FormatInt(epoch, 10), successor.Addr); err != nil {
		return err
	}
	if s.noRetire[addr] {
		return fmt.Errorf("retiring %s: %w", addr, fence.NewStatusError(http.StatusNotFound, nil, []byte("404 page not found")))
	}
	if err := s.gate(addr).Retire(epoch, net.JoinHostPort(successor.Addr, "8080")); err != nil {
		return fmt.Errorf("retiring %s: %w", addr, err)
	}
	return nil
}

// Healthy implements handover.Service.
func (s *Service) Healthy(_ context.Context, t handover.Target) error {
	addr := t.Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Healthy", addr); err != nil {
		return err
	}
	if s.unhealthy[addr] {
		return fmt.Errorf("health of %s: 503 from %s", addr, fence.PathHealth)
	}
	return nil
}
