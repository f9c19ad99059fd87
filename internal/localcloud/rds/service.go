// Package rds is the local cloud's Amazon RDS for PostgreSQL: the Query
// protocol (2014-10-31) over real PostgreSQL servers, one postmaster of
// Debian's PostgreSQL per DB instance, each with its own data directory
// and port. Read replicas stream for real (a base backup with a
// replication slot, then a hot standby); snapshots are online physical
// base backups; the master user is no superuser, as on RDS, while a hidden
// superuser reachable only over the instance's socket runs replication
// and backups.
//
// The API answers at once and the work runs in the background (creating
// → available), as on RDS. State is saved under the data directory; after
// a restart every server comes back as after a reboot and unfinished work
// carries on.
//
// It must never touch a server it did not start, nor hand the hidden
// superuser to a client.
package rds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/statefile"
)

const (
	apiVersion = "2014-10-31"
	xmlns      = "http://rds.amazonaws.com/doc/" + apiVersion + "/"
	// ServiceName is the SigV4 service name and the fault injector's.
	ServiceName = "rds"
)

// Limits, as RDS's defaults.
const (
	maxReplicas  = 15
	maxInstances = 40
	maxSnapshots = 100
)

// Config configures the service.
type Config struct {
	// DataDir keeps rds.json, the instances' data directories and the
	// snapshots (required).
	DataDir   string
	Region    string
	AccountID string
	Zones     []string
	// Faults, when set, is asked before every API call.
	Faults awsproto.FaultInjector
	// MonitorInterval is how often replication state is read for
	// StatusInfos (default 1s).
	MonitorInterval time.Duration
	Clock           clock.Clock
	Logger          *slog.Logger
}

// Validate says what is missing.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("rds: a data directory is required")
	case c.Region == "":
		return errors.New("rds: a region is required")
	case len(c.AccountID) != 12:
		return fmt.Errorf("rds: account id %q must be 12 digits", c.AccountID)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if len(c.Zones) == 0 {
		c.Zones = []string{c.Region + "a"}
	}
	if c.MonitorInterval <= 0 {
		c.MonitorInterval = time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Service is the RDS endpoint; it is an http.Handler for API requests.
type Service struct {
	cfg Config
	log *slog.Logger
	pg  *pg
	api http.Handler

	ctx    context.Context // ends at Close; jobs run under it
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu      sync.Mutex // guards st, servers, repl, closed
	st      *state
	servers map[string]*server // by resource id
	repl    map[string]replState
	// startLocks serialise the starts of one instance's server.
	startLocks map[string]*sync.Mutex
	closed     bool
	saver      *statefile.Saver
}

// replState is what the monitor last read of a replica.
type replState struct {
	streaming bool
	message   string
}

// New opens (or creates) the service's state under cfg.DataDir and brings
// every instance back: running servers start again, unfinished jobs carry
// on.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "instances"), filepath.Join(cfg.DataDir, "snapshots")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating the RDS data directory: %w", err)
		}
	}
	p, err := findPG()
	if err != nil {
		return nil, err
	}
	if err := p.reachable(filepath.Join(cfg.DataDir, "instances")); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger, pg: p, ctx: ctx, cancel: cancel, st: st,
		servers: map[string]*server{}, repl: map[string]replState{}, startLocks: map[string]*sync.Mutex{}}
	s.saver = statefile.NewSaver(50*time.Millisecond, s.save, s.log)
	s.api = s.newAPI()
	s.mu.Lock()
	s.resumeLocked()
	s.mu.Unlock()
	s.bg.Go(s.monitor)
	return s, nil
}

// Close stops the jobs and every server (a fast shutdown), and saves the
// state. What was available is available again after the next New.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.bg.Wait()
	s.mu.Lock()
	servers := make([]*server, 0, len(s.servers))
	for _, srv := range s.servers {
		servers = append(servers, srv)
	}
	s.servers = map[string]*server{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(srv.stop)
	}
	wg.Wait()
	return s.saver.Close()
}

func (s *Service) save() error {
	s.mu.Lock()
	b, err := marshalState(s.st)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return statefile.WriteFile(statePath(s.cfg.DataDir), b)
}

// changedLocked schedules a save; s.mu is held.
func (s *Service) changedLocked() { s.saver.MarkDirty() }

// ServeHTTP answers one RDS Query request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) }

type handler func(s *Service, ctx context.Context, v awsproto.Values) (any, error)

var handlers = map[string]handler{
	"CreateDBInstance":                (*Service).createDBInstance,
	"DescribeDBInstances":             (*Service).describeDBInstances,
	"CreateDBInstanceReadReplica":     (*Service).createReadReplica,
	"PromoteReadReplica":              (*Service).promoteReadReplica,
	"ModifyDBInstance":                (*Service).modifyDBInstance,
	"DeleteDBInstance":                (*Service).deleteDBInstance,
	"CreateDBSnapshot":                (*Service).createDBSnapshot,
	"DescribeDBSnapshots":             (*Service).describeDBSnapshots,
	"DeleteDBSnapshot":                (*Service).deleteDBSnapshot,
	"RestoreDBInstanceFromDBSnapshot": (*Service).restoreFromSnapshot,
	"AddTagsToResource":               (*Service).addTags,
	"ListTagsForResource":             (*Service).listTags,
	"RemoveTagsFromResource":          (*Service).removeTags,
}

func (s *Service) newAPI() *awsproto.Query[any] {
	q := &awsproto.Query[any]{
		Service: ServiceName,
		Version: apiVersion,
		Actions: map[string]awsproto.Action[any]{},
		Faults:  s.cfg.Faults,
		Before:  s.gate,
		WriteResult: func(w http.ResponseWriter, action string, result any) {
			awsproto.WriteQueryResult(w, xmlns, action, result)
		},
		WriteError: func(w http.ResponseWriter, err error) { awsproto.WriteQueryError(w, xmlns, err) },
		Log:        s.log,
	}
	for name, h := range handlers {
		q.Actions[name] = func(ctx context.Context, v awsproto.Values) (any, error) { return h(s, ctx, v) }
	}
	return q
}

func (s *Service) gate(context.Context, string, awsproto.Values) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &awsproto.Error{Code: "ServiceUnavailable", Message: "The local RDS service is shutting down.", Status: http.StatusServiceUnavailable, Receiver: true}
	}
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now().UTC() }

func (s *Service) instanceARN(id string) string {
	return fmt.Sprintf("arn:%s:rds:%s:%s:db:%s", partition(s.cfg.Region), s.cfg.Region, s.cfg.AccountID, id)
}

func (s *Service) snapshotARN(id string) string {
	return fmt.Sprintf("arn:%s:rds:%s:%s:snapshot:%s", partition(s.cfg.Region), s.cfg.Region, s.cfg.AccountID, id)
}

func partition(region string) string {
	switch {
	case len(region) > 3 && region[:3] == "cn-":
		return "aws-cn"
	case len(region) > 7 && region[:7] == "us-gov-":
		return "aws-us-gov"
	}
	return "aws"
}

func (s *Service) instLayout(resourceID string) layout {
	return layout{root: filepath.Join(s.cfg.DataDir, "instances", resourceID)}
}

func (s *Service) snapDir(resourceID string) string {
	return filepath.Join(s.cfg.DataDir, "snapshots", resourceID)
}

func newResourceID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// goJob runs f in the background until Close. s.mu is held.
func (s *Service) goJobLocked(f func(ctx context.Context)) {
	if s.closed {
		return
	}
	s.bg.Go(func() { f(s.ctx) })
}

// Unavailable answers every RDS request with why the service could not
// start (no PostgreSQL installed, a data directory the postgres user
// cannot enter), so the rest of the local cloud still serves.
func Unavailable(reason error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		awsproto.WriteQueryError(w, xmlns, &awsproto.Error{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable, Receiver: true,
			Message: "RDS is not available on this local cloud: " + reason.Error()})
	})
}
