// Package api is the controller's HTTP API: the JSON documents it serves
// and the client `handover status` and `handover migrations` use. The
// server lives in internal/daemon. Documents only grow: a field once served
// keeps its name and meaning, so scripts reading --output json keep working.
package api

import (
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Paths served by the controller.
const (
	PathHealth     = "/healthz"
	PathStatus     = "/v1/status"
	PathMigrations = "/v1/migrations"
	PathDatabases  = "/v1/databases"
	PathMetrics    = "/metrics"
)

// Status is GET /v1/status: what the controller is doing.
type Status struct {
	Holder    string    `json:"holder"`
	StartedAt time.Time `json:"started_at"`
	Queue     string    `json:"queue"`
	Ledger    string    `json:"ledger"` // the backend, without credentials
	// Migrations counts migrations by state name.
	Migrations map[string]int `json:"migrations"`
	Unfinished int            `json:"unfinished"`
	Databases  int            `json:"databases"`

	MessagesHandled int64     `json:"messages_handled"`
	MessagesPoison  int64     `json:"messages_poison"`
	LastMessageAt   time.Time `json:"last_message_at,omitzero"`
	// QueueLagSeconds is the age of the last message handled when it was
	// received.
	QueueLagSeconds float64 `json:"queue_lag_seconds"`

	LastReconcileAt    time.Time `json:"last_reconcile_at,omitzero"`
	LastReconcileError string    `json:"last_reconcile_error,omitempty"`
	LastSweepAt        time.Time `json:"last_sweep_at,omitzero"`
	LastSweepError     string    `json:"last_sweep_error,omitempty"`
	SweptVolumes       int       `json:"swept_volumes"`
	SweptSnapshots     int       `json:"swept_snapshots"`
	// LastReleasePassAt is the release controller's last pass in this
	// process (handover controller --releases); zero when it does not run
	// here.
	LastReleasePassAt    time.Time `json:"last_release_pass_at,omitzero"`
	LastReleasePassError string    `json:"last_release_pass_error,omitempty"`

	// Leases are the leases this controller holds now (migration/<id>,
	// update/<id>): the records it is working. Controllers sharing the
	// ledger each report their own.
	Leases []ledger.Lease `json:"leases"`
	// EventsQueue and DeadLetterQueue are the queues' depths, read at most
	// every few seconds (absent when the controller has no such queue).
	EventsQueue     *QueueDepth `json:"events_queue,omitempty"`
	DeadLetterQueue *QueueDepth `json:"dead_letter_queue,omitempty"`
}

// MigrationSummary is one row of GET /v1/migrations.
type MigrationSummary struct {
	ID        string    `json:"id"`
	Database  string    `json:"database"`
	Group     string    `json:"group"`
	Instance  string    `json:"instance"`
	Source    string    `json:"source,omitempty"`
	State     string    `json:"state"`
	Cause     string    `json:"cause,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// DurationMS is from creation to the end (or to now, if unfinished).
	DurationMS int64  `json:"duration_ms"`
	LastError  string `json:"last_error,omitempty"`
	// WritePauseMS is how long the database was fenced: from the start of
	// Fencing to the commit (or the abort, or now while it runs); 0 when
	// the migration never fenced (a first boot, a dead source).
	WritePauseMS int64 `json:"write_pause_ms"`
	// Attempts counts the consecutive failures of the current step.
	Attempts int `json:"attempts,omitempty"`
}

// Migrations is GET /v1/migrations.
type Migrations struct {
	Migrations []MigrationSummary `json:"migrations"`
}

// Step is one entry of a migration's timeline.
type Step struct {
	State      string    `json:"state"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	DurationMS int64     `json:"duration_ms"`
	Note       string    `json:"note,omitempty"`
	// Calls, Throttled, Errors and Paced are the step's cloud calls, as
	// ledger.Step counts them.
	Calls     int `json:"calls,omitempty"`
	Throttled int `json:"throttled,omitempty"`
	Errors    int `json:"errors,omitempty"`
	Paced     int `json:"paced,omitempty"`
}

// Migration is GET /v1/migrations/{id}.
type Migration struct {
	MigrationSummary
	Hook            string            `json:"hook"`
	Zone            string            `json:"zone,omitempty"`
	SourceVolume    string            `json:"source_volume,omitempty"`
	SourceFate      string            `json:"source_fate,omitempty"`
	FromEpoch       int64             `json:"from_epoch"`
	FenceEpoch      int64             `json:"fence_epoch,omitempty"`
	PreCopySnapshot string            `json:"pre_copy_snapshot,omitempty"`
	FinalSnapshot   string            `json:"final_snapshot,omitempty"`
	Volume          string            `json:"volume,omitempty"`
	Result          string            `json:"result,omitempty"`
	Resources       []ledger.Resource `json:"resources,omitempty"`
	Steps           []Step            `json:"steps"`
}

// Database is one row of GET /v1/databases.
type Database struct {
	ID           string    `json:"id"`
	Volume       string    `json:"volume,omitempty"`
	Zone         string    `json:"zone,omitempty"`
	Instance     string    `json:"instance,omitempty"`
	Group        string    `json:"group,omitempty"`
	Epoch        int64     `json:"epoch"`
	BaseSnapshot string    `json:"base_snapshot,omitempty"`
	Claim        string    `json:"claim,omitempty"`
	DroppedAt    time.Time `json:"dropped_at,omitzero"`
	DroppedBy    string    `json:"dropped_by,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Databases is GET /v1/databases.
type Databases struct {
	Databases []Database `json:"databases"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Summarize turns a ledger migration into its summary as of now.
func Summarize(m *ledger.Migration, now time.Time) MigrationSummary {
	end := now
	if m.State.Terminal() {
		end = m.UpdatedAt
		if n := len(m.Timeline); n > 0 {
			end = m.Timeline[n-1].Start
		}
	}
	return MigrationSummary{
		ID: m.ID, Database: m.Database, Group: m.Group, Instance: m.Instance, Source: m.Source,
		State: m.State.String(), Cause: m.Cause, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		DurationMS: end.Sub(m.CreatedAt).Milliseconds(), LastError: m.LastError,
		WritePauseMS: WritePause(m.Timeline, now).Milliseconds(), Attempts: m.Attempts,
	}
}

// WritePause is how long a timeline kept its database fenced: from the
// first Fencing step to the start of Committed or Aborted, or to now
// while neither is reached. Zero without a Fencing step.
func WritePause(steps []ledger.Step, now time.Time) time.Duration {
	var from time.Time
	for _, s := range steps {
		switch {
		case s.State == ledger.Fencing && from.IsZero():
			from = s.Start
		case s.State.Terminal() && !from.IsZero():
			return s.Start.Sub(from)
		}
	}
	if from.IsZero() {
		return 0
	}
	return now.Sub(from)
}

// Detail turns a ledger migration into its full document as of now.
func Detail(m *ledger.Migration, now time.Time) Migration {
	out := Migration{
		MigrationSummary: Summarize(m, now), Hook: m.Hook, Zone: m.Zone, SourceVolume: m.SourceVolume,
		SourceFate: m.SourceFate, FromEpoch: m.FromEpoch, FenceEpoch: m.FenceEpoch, PreCopySnapshot: m.PreCopySnapshot,
		FinalSnapshot: m.FinalSnapshot, Volume: m.Volume, Result: m.Result, Resources: m.Resources,
		Steps: make([]Step, 0, len(m.Timeline)),
	}
	for _, s := range m.Timeline {
		end := s.End
		if end.IsZero() {
			end = now
		}
		out.Steps = append(out.Steps, Step{State: s.State.String(), Start: s.Start, End: s.End, DurationMS: end.Sub(s.Start).Milliseconds(), Note: s.Note,
			Calls: s.Calls, Throttled: s.Throttled, Errors: s.Errors, Paced: s.Paced})
	}
	return out
}

// FromDatabase turns a ledger database into its document.
func FromDatabase(d *ledger.Database) Database {
	return Database{ID: d.ID, Volume: d.Volume, Zone: d.Zone, Instance: d.Instance, Group: d.Group, Epoch: d.Epoch,
		BaseSnapshot: d.BaseSnapshot, Claim: d.Claim, DroppedAt: d.DroppedAt, DroppedBy: d.DroppedBy, UpdatedAt: d.UpdatedAt}
}
