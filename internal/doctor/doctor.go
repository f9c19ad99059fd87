// Package doctor audits a handover deployment, on AWS or the local cloud:
// credentials, the events queue and its dead-letter queue, the EventBridge
// rules that feed the queue and the queue policy that lets them, the
// lifecycle hooks of every group handover serves (their metadata and
// heartbeat timeouts), the ledger, and on request the controller role's
// permissions. Each check gives one Result with a fix for what fails.
//
// It only reads: it must never create, change or delete anything in the
// cloud, never take a message from a queue, and never create a ledger
// (opening an existing one upgrades an older schema, as the controller's
// start would). The checks it shares with the controller's start
// (credentials, queues) are the daemon's own, so the two never disagree.
package doctor

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/ledger"
)

// Status is the outcome of one check.
type Status string

// The outcomes. Only Fail makes a deployment unhealthy.
const (
	OK   Status = "ok"
	Warn Status = "warn" // works, but something is worth changing
	Fail Status = "fail" // handover cannot work (or it could not be checked)
	Skip Status = "skip" // not checked: a check it depends on failed
)

// Result is one check's row.
type Result struct {
	// Check names the check: "queue", "hooks/orders-db", "iam/Ledger".
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Detail says what was found and, where a rule decides, the rule.
	Detail string `json:"detail"`
	// Fix says what to do; set for every Fail, and for some warnings.
	Fix string `json:"fix,omitempty"`
}

// Report is every check's result, in the order they are shown.
type Report struct {
	Checks []Result `json:"checks"`
}

// Count returns how many checks ended in s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Config is what to audit. The fields mirror the controller's flags.
type Config struct {
	QueueURL string
	// DeadLetterURL is the controller's --dead-letter-queue-url ("" to use
	// the redrive policy's).
	DeadLetterURL string
	LedgerURL     string
	// Groups are the groups handover serves, with their replace-all
	// replacements; empty means every group with a hook named HookPrefix….
	Groups     []string
	HookPrefix string
	// AdvanceEvery and ReconcileEvery are the controller's intervals, which
	// the hooks' heartbeat timeouts must fit.
	AdvanceEvery, ReconcileEvery time.Duration
	// Fence is "http" or "ssm"; it decides which permissions are checked.
	Fence string
	// RoleARN is the controller's role, whose permissions the IAM check
	// simulates (with Deps.IAM set).
	RoleARN string
}

// Deps are the clients the checks call. IAM nil skips the IAM check.
type Deps struct {
	Credentials aws.CredentialsProvider
	SQS         daemon.Redrive
	Events      EventsAPI
	AutoScaling AutoScalingAPI
	// IAM is used only for the IAM check, of Config.RoleARN.
	IAM IAMAPI
	// OpenLedger opens the ledger a URL names (dial.Open).
	OpenLedger func(ctx context.Context, url string) (ledger.Ledger, error)
	Clock      clock.Clock
	Logger     *slog.Logger
}

// audit carries what the checks learn for the checks after them.
type audit struct {
	cfg  Config
	deps Deps
	rep  Report

	queues  daemon.Queues
	queueOK bool
	served  []group // groups handover serves, with their hooks
	// delivering are the enabled rules that deliver events, untransformed,
	// to the queue.
	delivering []rule
}

func (a *audit) add(r Result) { a.rep.Checks = append(a.rep.Checks, r) }

// Run runs every check and returns their results. It never fails as a
// whole: a check that cannot run says so in its row.
func Run(ctx context.Context, cfg Config, deps Deps) Report {
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HookPrefix == "" {
		cfg.HookPrefix = "handover"
	}
	a := &audit{cfg: cfg, deps: deps}
	credsOK := a.credentials(ctx)
	if credsOK {
		a.checkQueues(ctx)
	} else {
		a.skip("the credentials did not resolve", "queue", "dead-letter-queue")
	}
	// The groups are read before the rules (their hook names go into the
	// sample events) but shown after them.
	var groupRows []Result
	if credsOK {
		groupRows = a.checkGroups(ctx)
	}
	switch {
	case !credsOK:
		a.skip("the credentials did not resolve", "events", "queue-policy")
	case !a.queueOK:
		a.skip("the events queue could not be read", "events", "queue-policy")
	default:
		a.checkRules(ctx)
		a.checkQueuePolicy()
	}
	if credsOK {
		a.rep.Checks = append(a.rep.Checks, groupRows...)
	} else {
		a.skip("the credentials did not resolve", "hooks")
	}
	a.checkLedger(ctx)
	if deps.IAM != nil {
		if credsOK && a.queueOK {
			a.checkIAM(ctx)
		} else {
			a.skip("the events queue could not be read, so its ARN is unknown", "iam")
		}
	}
	return a.rep
}

func (a *audit) skip(why string, checks ...string) {
	for _, c := range checks {
		a.add(Result{Check: c, Status: Skip, Detail: "not checked: " + why})
	}
}
