package api

import (
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/update"
)

// PathUpdates is where group updates live: POST to start one (or plan it
// with ?dry_run=true), GET to list, GET /{id} for one, POST /{id}/abort.
const PathUpdates = "/v1/updates"

// UpdateRequest is the body of POST /v1/updates. Durations are Go
// durations ("90s", "15m").
type UpdateRequest struct {
	Group                 string `json:"group"`
	Strategy              string `json:"strategy"`
	LaunchTemplateVersion string `json:"launch_template_version,omitempty"`
	ImageID               string `json:"image_id,omitempty"`
	BatchSize             int32  `json:"batch_size"`
	MinHealthyPercent     int32  `json:"min_healthy_percent"`
	Pause                 string `json:"pause,omitempty"`
	Bake                  string `json:"bake,omitempty"`
	SignalTimeout         string `json:"signal_timeout,omitempty"`
	MigrationGroup        string `json:"migration_group,omitempty"`
	MigrationTimeout      string `json:"migration_timeout,omitempty"`
}

// AbortRequest is the body of POST /v1/updates/{id}/abort.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Plan is the answer to a dry run.
type Plan = update.Plan

// Update is GET /v1/updates/{id}: the ledger record with the handovers it
// caused.
type Update struct {
	*ledger.Update
	Migrations []MigrationSummary `json:"migrations"`
}

// Updates is GET /v1/updates.
type Updates struct {
	Updates []*ledger.Update `json:"updates"`
}
