package api

import (
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/release"
)

// Paths the dashboard reads beside the migrations and updates; like every
// /v1 path they are the public API, for scripts as much as for the page.
const (
	// PathReleases: GET, the release channels and their releases.
	PathReleases = "/v1/releases"
	// PathEnvs: GET, the environment operations; GET /{id} for one.
	PathEnvs = "/v1/envs"
	// PathLeases: GET, every lease held in the ledger, by any holder.
	PathLeases = "/v1/leases"
)

// Leases is GET /v1/leases: every lease held in the ledger at At (by this
// controller, the others sharing its ledger, a publish, an env command),
// ordered by name. Released and expired leases are left out.
type Leases struct {
	At     time.Time      `json:"at"`
	Leases []ledger.Lease `json:"leases"`
}

// QueueDepth is one queue's approximate message counts (SQS's
// ApproximateNumberOf… attributes), as of At.
type QueueDepth struct {
	URL      string    `json:"url"`
	Visible  int64     `json:"visible"`
	InFlight int64     `json:"in_flight"`
	Delayed  int64     `json:"delayed"`
	At       time.Time `json:"at"`
	// Error says why the counts could not be read (they are then zero).
	Error string `json:"error,omitempty"`
}

// Releases is GET /v1/releases: every channel, and every release of
// them, oldest first.
type Releases struct {
	Channels []*ledger.Channel `json:"channels"`
	Releases []*ledger.Release `json:"releases"`
	// Instances are, by channel, the instances of the channel's groups
	// and the releases of the release volumes attached to them, as the
	// cloud says (the volumes' handover:release tags), read at most every
	// few seconds; absent when the controller cannot read the cloud's
	// release volumes.
	Instances []ChannelInstances `json:"instances,omitempty"`
}

// ChannelInstances is what the instances of one channel run.
type ChannelInstances struct {
	Channel   string                    `json:"channel"`
	Instances []release.InstanceRelease `json:"instances"`
	At        time.Time                 `json:"at"`
	// Error says why they could not be read.
	Error string `json:"error,omitempty"`
}

// EnvOpSummary is one row of GET /v1/envs.
type EnvOpSummary struct {
	ID          string             `json:"id"`
	Environment string             `json:"environment"`
	Op          string             `json:"op"`
	State       ledger.UpdateState `json:"state"`
	Phase       string             `json:"phase"`
	// Dest is a clone's destination environment.
	Dest string `json:"dest,omitempty"`
	// Verify is the state of a clone's last verify (running, passed,
	// failed), if any.
	Verify    string    `json:"verify,omitempty"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// EnvOps is GET /v1/envs, newest first.
type EnvOps struct {
	Ops []EnvOpSummary `json:"ops"`
}

// EnvOp is GET /v1/envs/{id}: the ledger record, with the per-file
// manifest entries and per-object checksums left out (their counts and
// digests stay): they can run to megabytes, and `handover env verify`
// is what compares them.
type EnvOp struct {
	*ledger.EnvOp
}

// SummarizeEnvOp is the row of o.
func SummarizeEnvOp(o *ledger.EnvOp) EnvOpSummary {
	s := EnvOpSummary{ID: o.ID, Environment: o.Environment, Op: o.Op, State: o.State, Phase: o.Phase, Error: o.Error,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, EndedAt: o.EndedAt}
	if c := o.Cloning; c != nil {
		s.Dest = c.Dest
		if c.Verify != nil {
			s.Verify = c.Verify.State
		}
	}
	if m := o.Migration; m != nil {
		s.Dest = m.Dest
	}
	return s
}

// TrimEnvOp returns a copy of o without the bulky per-file and
// per-object details.
func TrimEnvOp(o *ledger.EnvOp) EnvOp {
	c := o.Clone()
	if c.Cloning != nil {
		for i := range c.Cloning.Manifests {
			c.Cloning.Manifests[i].Entries = nil
		}
		for i := range c.Cloning.Objects {
			c.Cloning.Objects[i].Sums = nil
		}
	}
	return EnvOp{c}
}

// PathLogs: GET, the access-log pipeline as the controller watches it
// (--logs-metrics-url, --logs-dead-letter-queue-url).
const PathLogs = "/v1/logs"

// LogSample is one reading of the log pipeline's counters (totals since
// the pipeline started; a restart starts them again from 0).
type LogSample struct {
	At          time.Time `json:"at"`
	Lines       float64   `json:"lines"`
	Bytes       float64   `json:"bytes"`
	Indexed     float64   `json:"indexed"`
	Duplicates  float64   `json:"duplicates"`
	Retries     float64   `json:"retries"`
	Objects     float64   `json:"objects"`
	DeadLetters float64   `json:"dead_letters"`
	// LagSum and LagCount are handover_logs_lag_seconds' sum and count
	// over every format: from S3's event time of an object to its last
	// line indexed.
	LagSum   float64 `json:"lag_sum_seconds"`
	LagCount float64 `json:"lag_count"`
	// DeadLettersByCause counts the dead letters of each cause.
	DeadLettersByCause map[string]float64 `json:"dead_letters_by_cause,omitempty"`
}

// LogDeadLetter is one message of the log pipeline's dead-letter queue.
type LogDeadLetter struct {
	SentAt time.Time `json:"sent_at"`
	Cause  string    `json:"cause,omitempty"`
	Reason string    `json:"reason"`
	Bucket string    `json:"bucket,omitempty"`
	Key    string    `json:"key,omitempty"`
	Offset int64     `json:"offset"`
}

// Logs is GET /v1/logs.
type Logs struct {
	// Configured is false when the controller was given neither
	// --logs-metrics-url nor --logs-dead-letter-queue-url.
	Configured bool   `json:"configured"`
	MetricsURL string `json:"metrics_url,omitempty"`
	// Samples are the readings of the last half hour, oldest first, one
	// every few seconds; Error is why the last reading failed.
	Samples []LogSample `json:"samples"`
	Error   string      `json:"error,omitempty"`
	// DeadLetterQueue is the pipeline's dead-letter queue's depth, and
	// RecentDeadLetters the newest (at most five) of the messages SQS
	// showed when the controller looked without taking them (a receive
	// with a visibility timeout of 0 sees at most ten, not necessarily
	// the newest of a long queue).
	DeadLetterQueue   *QueueDepth     `json:"dead_letter_queue,omitempty"`
	RecentDeadLetters []LogDeadLetter `json:"recent_dead_letters"`
	DeadLetterError   string          `json:"dead_letter_error,omitempty"`
}

// PathReplicas: GET, the read replicas the controller watches
// (--replica), with their lag over the last hour.
const PathReplicas = "/v1/replicas"

// ReplicaSample is one reading of a replica's lag.
type ReplicaSample struct {
	At         time.Time `json:"at"`
	LagBytes   int64     `json:"lag_bytes"`
	LagSeconds float64   `json:"lag_seconds"`
}

// ReplicaWatch is one watched replica: its last status (replica.Status,
// as `handover replica status --output json` prints it), why the last
// reading failed, and its readings, oldest first.
type ReplicaWatch struct {
	ID      string          `json:"id"`
	Status  any             `json:"status,omitempty"`
	Error   string          `json:"error,omitempty"`
	Samples []ReplicaSample `json:"samples"`
}

// Replicas is GET /v1/replicas.
type Replicas struct {
	Replicas []ReplicaWatch `json:"replicas"`
}
