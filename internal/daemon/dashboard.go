package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
)

// The parts of the API the dashboard added: the controller's leases and
// queue depths in /v1/status, releases and environment operations.

// leaseLister is what an Engine or Updater that keeps leases offers
// (*handover.Controller, *update.Runner).
type leaseLister interface{ Leases() []ledger.Lease }

// queueSample is the last reading of the queues' depths.
type queueSample struct {
	at           time.Time
	events, dead *api.QueueDepth
}

// queueSampleAge bounds how often /v1/status reads the queues: a page
// that polls every 2 s, or several, costs at most one GetQueueAttributes
// per queue per interval.
const queueSampleAge = 3 * time.Second

// showDeadLetter records the dead-letter queue's URL for the API once
// Run knows it.
func (d *Daemon) showDeadLetter(url string) {
	d.mu.Lock()
	d.status.deadLetterURL = url
	d.mu.Unlock()
}

// leases lists the leases this process holds.
func (d *Daemon) leases() []ledger.Lease {
	out := []ledger.Lease{}
	for _, x := range []any{d.eng, d.updates} {
		if l, ok := x.(leaseLister); ok {
			out = append(out, l.Leases()...)
		}
	}
	return out
}

// queueDepths returns the queues' depths, read again when the last
// reading is older than queueSampleAge.
func (d *Daemon) queueDepths(ctx context.Context) (events, dead *api.QueueDepth) {
	now := d.clk.Now()
	d.mu.Lock()
	s, dlq := d.status.queues, d.status.deadLetterURL
	d.mu.Unlock()
	if !s.at.IsZero() && now.Sub(s.at) < queueSampleAge && (s.dead != nil) == (dlq != "") {
		return s.events, s.dead
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s = queueSample{at: now, events: d.depth(ctx, d.cfg.QueueURL)}
	if dlq != "" {
		s.dead = d.depth(ctx, dlq)
	}
	d.mu.Lock()
	d.status.queues = s
	d.mu.Unlock()
	return s.events, s.dead
}

func (d *Daemon) depth(ctx context.Context, url string) *api.QueueDepth {
	q := &api.QueueDepth{URL: url, At: d.clk.Now()}
	out, err := d.queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		q.Error = fmt.Sprintf("reading the depth of %s: %v", url, err)
		return q
	}
	n := func(k sqstypes.QueueAttributeName) int64 {
		v, _ := strconv.ParseInt(out.Attributes[string(k)], 10, 64)
		return v
	}
	q.Visible = n(sqstypes.QueueAttributeNameApproximateNumberOfMessages)
	q.InFlight = n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
	q.Delayed = n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)
	return q
}

func (d *Daemon) routeDashboard(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathReleases, d.serveReleases)
	mux.HandleFunc("GET "+api.PathLeases, d.serveLeases)
	mux.HandleFunc("GET "+api.PathEnvs, d.serveEnvs)
	mux.HandleFunc("GET "+api.PathEnvs+"/{id}", d.serveEnv)
	mux.HandleFunc("GET "+api.PathLogs, d.serveLogs)
	mux.HandleFunc("GET "+api.PathReplicas, d.serveReplicas)
	mux.HandleFunc("POST "+api.PathEnvs+"/{id}/abort", d.serveAbortEnv)
}

func (d *Daemon) serveReleases(w http.ResponseWriter, r *http.Request) {
	chs, err := d.led.ListChannels(r.Context())
	if err != nil {
		d.fail(w, "listing release channels", err)
		return
	}
	rels, err := d.led.ListReleases(r.Context(), "")
	if err != nil {
		d.fail(w, "listing releases", err)
		return
	}
	out := api.Releases{Channels: chs, Releases: rels}
	if d.relInstances != nil {
		out.Instances = d.relInstances.read(r.Context(), d.clk.Now(), chs)
	}
	if out.Channels == nil {
		out.Channels = []*ledger.Channel{}
	}
	if out.Releases == nil {
		out.Releases = []*ledger.Release{}
	}
	writeJSON(w, http.StatusOK, out)
}

// serveLeases lists the ledger's held leases: unlike /v1/status's, which
// are this process's, these are every holder's, so one page shows all the
// controllers sharing a ledger.
func (d *Daemon) serveLeases(w http.ResponseWriter, r *http.Request) {
	now := d.clk.Now()
	ls, err := d.led.ListLeases(r.Context(), now)
	if err != nil {
		d.fail(w, "listing leases", err)
		return
	}
	if ls == nil {
		ls = []ledger.Lease{}
	}
	writeJSON(w, http.StatusOK, api.Leases{At: now, Leases: ls})
}

func (d *Daemon) serveEnvs(w http.ResponseWriter, r *http.Request) {
	ops, err := d.led.ListEnvOps(r.Context(), ledger.EnvOpQuery{})
	if err != nil {
		d.fail(w, "listing environment operations", err)
		return
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].CreatedAt.After(ops[j].CreatedAt) })
	out := api.EnvOps{Ops: make([]api.EnvOpSummary, 0, len(ops))}
	for _, o := range ops {
		out.Ops = append(out.Ops, api.SummarizeEnvOp(o))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) serveEnv(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	o, err := d.led.GetEnvOp(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no environment operation %q; list them with GET %s", id, api.PathEnvs)})
		return
	}
	if err != nil {
		d.fail(w, "reading environment operation "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, api.TrimEnvOp(o))
}
