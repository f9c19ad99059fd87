// Package lambdahandler runs the handover controller as an AWS Lambda
// function behind the events queue: an SQS batch is handled record by
// record exactly as the long-running controller handles a message, and a
// scheduled EventBridge invocation runs reconcile and the sweeper.
//
// It must never report a record as processed (leave it out of
// batchItemFailures, so Lambda deletes it) before its effect is committed to
// the ledger, or dead-lettered when it is poison.
package lambdahandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/handover"
)

// Handler is the function's entry point. Create it with New.
type Handler struct {
	eng    daemon.Engine
	dlq    daemon.Sender
	dlqURL string
	log    *slog.Logger
	// Margin is kept free of advancing before the invocation's deadline,
	// so the response gets out in time.
	Margin time.Duration
}

// New returns a handler. dlqURL may be empty when the queue has no
// dead-letter queue: poison records are then reported as failures, and
// SQS's own redrive (or retention) ends them.
func New(eng daemon.Engine, dlq daemon.Sender, dlqURL string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{eng: eng, dlq: dlq, dlqURL: dlqURL, log: log, Margin: 3 * time.Second}
}

// Result of a scheduled invocation.
type Result struct {
	Reconciled       bool     `json:"reconciled"`
	ReconcileError   string   `json:"reconcile_error,omitempty"`
	DeletedVolumes   []string `json:"deleted_volumes,omitempty"`
	DeletedSnapshots []string `json:"deleted_snapshots,omitempty"`
	SweepError       string   `json:"sweep_error,omitempty"`
}

// Invoke handles one invocation: an SQS batch (answered with
// batchItemFailures) or a scheduled event (reconcile, then sweep). Any
// other payload is an error that says what was expected.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("invocation payload is not JSON: %w", err)
	}
	switch {
	case len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:sqs":
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decoding the SQS batch: %w", err)
		}
		return h.Batch(ctx, ev), nil
	case probe.Source == "aws.events" && probe.DetailType == "Scheduled Event":
		return h.Scheduled(ctx), nil
	}
	return nil, errors.New("unrecognised invocation: expected an SQS batch from the events queue (eventSource aws:sqs) or a scheduled EventBridge event (source aws.events, detail-type \"Scheduled Event\")")
}

// Batch handles every record and reports the ones to redeliver. The
// migrations the batch touched are then advanced while time remains.
func (h *Handler) Batch(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	var ids []string
	seen := map[string]bool{}
	for _, r := range ev.Records {
		log := h.log.With("message-id", r.MessageId)
		got, err := h.eng.HandleMessage(ctx, r.Body)
		var poison *handover.PoisonError
		switch {
		case errors.As(err, &poison):
			if err := daemon.SendToDeadLetter(ctx, h.dlq, h.dlqURL, r.Body, r.MessageId, poison.Reason.Error()); err != nil {
				log.Error("poison record left for redelivery", "reason", poison.Reason, "err", err)
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				continue
			}
			log.Warn("poison record moved to the dead-letter queue", "reason", poison.Reason)
		case err != nil:
			log.Warn("record not processed; it will be redelivered", "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		default:
			for _, id := range got {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	// Advancing is a head start, not a duty: the scheduled reconcile
	// advances whatever this invocation leaves.
	for _, id := range ids {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < h.Margin {
			h.log.Info("leaving migrations to the scheduled reconcile", "left", len(ids))
			break
		}
		if err := h.eng.Advance(ctx, id); err != nil {
			h.log.Warn("advancing migration", "migration-id", id, "err", err)
		}
	}
	return resp
}

// Scheduled runs reconcile (which advances every unfinished migration),
// then the sweeper.
func (h *Handler) Scheduled(ctx context.Context) Result {
	var res Result
	if err := h.eng.Reconcile(ctx); err != nil {
		res.ReconcileError = err.Error()
		h.log.Warn("reconcile", "err", err)
	}
	res.Reconciled = true
	sw, err := h.eng.Sweep(ctx)
	if err != nil {
		res.SweepError = err.Error()
		h.log.Warn("sweep", "err", err)
	}
	res.DeletedVolumes, res.DeletedSnapshots = sw.DeletedVolumes, sw.DeletedSnapshots
	return res
}
