// Package sqs is the local cloud's Amazon SQS: standard queues with
// visibility timeouts, delays, long polling, retention, dead-letter
// redrive and batch operations, served to unmodified clients over both
// protocols SQS speaks — AWS JSON 1.0 (current SDKs) and the older Query
// protocol (the AWS CLI v2 that Debian ships) — and to the local cloud's
// own services in process (SendByARN), so EventBridge rules and S3
// notifications can feed queues.
//
// Behaviour lives in this file and in ops.go; json.go and query.go only
// translate wire formats, so both protocols see the same queues. The
// package must never let a protocol detail leak into behaviour, nor hold a
// message anywhere but in its queue (so a crash or restart, with DataDir
// set, loses nothing that was acknowledged to a sender).
package sqs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

// DefaultAccountID is the account the local cloud pretends to be.
const DefaultAccountID = "000000000000"

// Config configures a Service.
type Config struct {
	// Region goes into queue ARNs; default us-east-1.
	Region string
	// AccountID goes into queue URLs and ARNs; default 000000000000.
	AccountID string
	// DataDir, when set, is where queues and messages are saved (as
	// sqs.json, replaced atomically shortly after each change) and loaded
	// from by New. Empty keeps everything in memory.
	DataDir string
	// Clock drives visibility timeouts, delays and retention; default the
	// wall clock. Long-poll waits are measured in real time, since they
	// hold a real connection open, but notice a fake clock's advances
	// within pollInterval.
	Clock clock.Clock
	// Logger receives operational messages; default discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if len(c.AccountID) != 12 || strings.Trim(c.AccountID, "0123456789") != "" {
		return fmt.Errorf("sqs: account id %q is not 12 digits", c.AccountID)
	}
	if strings.ContainsAny(c.Region, ": /") {
		return fmt.Errorf("sqs: region %q is not a region name", c.Region)
	}
	return nil
}

// pollInterval bounds how long a long poll sleeps before looking again, so
// it notices messages that become visible through a fake clock's advance.
const pollInterval = 100 * time.Millisecond

// saveDelay is how long changes gather before they are written.
const saveDelay = 50 * time.Millisecond

// Service is the SQS endpoint: an http.Handler for both protocols, plus
// the in-process SendByARN. Close it to stop its saver and flush state.
type Service struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger

	mu     sync.Mutex
	queues map[string]*queue

	closeOnce sync.Once
	closed    chan struct{}
	saver     *statefile.Saver // nil without DataDir
}

// New returns a Service, loading saved state from cfg.DataDir if any.
func New(cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:    cfg,
		clock:  cfg.Clock,
		log:    cfg.Logger,
		queues: map[string]*queue{},
		closed: make(chan struct{}),
	}
	if cfg.DataDir != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
		s.saver = statefile.NewSaver(saveDelay, s.save, s.log.With("data-dir", cfg.DataDir))
	}
	return s, nil
}

// Close stops the Service's background work and saves its state. It is
// safe to call more than once; long polls still waiting return empty.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.saver != nil {
		return s.saver.Close()
	}
	return nil
}

// SendByARN sends body to the queue with the ARN, as EventBridge and S3
// notifications do. Like SendMessage it is not idempotent: a retry after
// an unclear failure may deliver twice (at-least-once). It returns an
// error wrapping ErrNoSuchQueue when there is no such queue.
func (s *Service) SendByARN(ctx context.Context, queueARN, body string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name, ok := s.nameFromARN(queueARN)
	if !ok {
		return fmt.Errorf("sending to %s: %w", queueARN, ErrNoSuchQueue)
	}
	if _, err := s.send(name, sendInput{Body: body}); err != nil {
		return fmt.Errorf("sending to %s: %w", queueARN, err)
	}
	return nil
}

// QueueARN returns the ARN of the queue called name in this Service's
// region and account (whether or not it exists).
func (s *Service) QueueARN(name string) string {
	return "arn:aws:sqs:" + s.cfg.Region + ":" + s.cfg.AccountID + ":" + name
}

// nameFromARN returns the queue name in arn if arn names a queue of this
// region and account.
func (s *Service) nameFromARN(arn string) (string, bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" ||
		parts[3] != s.cfg.Region || parts[4] != s.cfg.AccountID || parts[5] == "" {
		return "", false
	}
	return parts[5], true
}

// queueURL is the URL of queue name as seen by the caller of r: the host
// the caller used, so the URL works from wherever the caller is.
func (s *Service) queueURL(r *http.Request, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host + "/" + s.cfg.AccountID + "/" + name
}

// nameFromURL returns the queue name in a queue URL
// (http://HOST/ACCOUNT/NAME). Any host is accepted, since callers reach the
// local cloud by many names; the account must be this Service's.
func (s *Service) nameFromURL(raw string) (string, error) {
	if raw == "" {
		return "", errMissingParameter("QueueUrl")
	}
	path := raw
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", errInvalidAddress(raw)
		}
		path = u.Path
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) != 2 || parts[1] == "" {
		return "", errInvalidAddress(raw)
	}
	if parts[0] != s.cfg.AccountID {
		return "", errQueueDoesNotExist()
	}
	return parts[1], nil
}

// lookupLocked returns the queue called name.
func (s *Service) lookupLocked(name string) (*queue, error) {
	q := s.queues[name]
	if q == nil {
		return nil, errQueueDoesNotExist()
	}
	return q, nil
}

// queueByARNLocked returns the queue with the ARN, or nil.
func (s *Service) queueByARNLocked(arn string) *queue {
	name, ok := s.nameFromARN(arn)
	if !ok {
		return nil
	}
	return s.queues[name]
}

// wakeLocked wakes the long polls waiting on q.
func wakeLocked(q *queue) {
	close(q.notify)
	q.notify = make(chan struct{})
}

// markDirtyLocked schedules a save.
func (s *Service) markDirtyLocked() {
	if s.saver != nil {
		s.saver.MarkDirty()
	}
}

func (s *Service) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// ServeHTTP serves an SQS request in either protocol: AWS JSON 1.0 when
// X-Amz-Target names AmazonSQS, the Query protocol otherwise.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
		s.serveJSON(w, r)
		return
	}
	s.serveQuery(w, r)
}
