package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// idleEngine and idleQueue stand in for the controller's collaborators:
// these tests only read the API, which serves the ledger.
type idleEngine struct{}

func (idleEngine) HandleMessage(context.Context, string) ([]string, error) { return nil, nil }
func (idleEngine) Advance(context.Context, string) error                   { return nil }
func (idleEngine) Reconcile(context.Context) error                         { return nil }
func (idleEngine) Sweep(context.Context) (handover.SweepResult, error) {
	return handover.SweepResult{}, nil
}

type idleQueue struct{ daemon.Queue }

// GetQueueAttributes answers for an empty queue: /v1/status reads the
// queues' depths.
func (idleQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{}}, nil
}

func apiFixture(t *testing.T, token string) string {
	t.Helper()
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	led := memory.New()
	m := &ledger.Migration{ID: "tok-7", Database: "orders", Group: "g", Hook: "handover-launch", Instance: "i-new", Source: "i-old",
		State: ledger.Committed, FromEpoch: 3, CreatedAt: now.Add(-time.Minute), UpdatedAt: now, StepStartedAt: now,
		Timeline: []ledger.Step{
			{State: ledger.Fencing, Start: now.Add(-time.Minute), End: now.Add(-time.Minute + 15*time.Millisecond)},
			{State: ledger.Committed, Start: now, End: now},
		}}
	if err := led.CreateMigration(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if err := led.SaveDatabase(t.Context(), &ledger.Database{ID: "orders", Volume: "vol-9", Instance: "i-new", Zone: "us-east-1b", Epoch: 4}); err != nil {
		t.Fatal(err)
	}
	// A database an environment abort dropped.
	if err := led.SaveDatabase(t.Context(), &ledger.Database{ID: "orders-prod", Volume: "vol-p", Zone: "us-east-1a", Epoch: 1,
		DroppedAt: now.Add(-time.Hour), DroppedBy: "env-0abort"}); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.QueueURL, cfg.Holder = "q", "controller-1"
	d, err := daemon.New(cfg, idleEngine{}, idleQueue{}, led, clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler(token))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusAndMigrationsCommands(t *testing.T) {
	url := apiFixture(t, "")
	out, errs, code := run(t, "status", "--api", url)
	if code != 0 || !strings.Contains(out, "controller controller-1") || !strings.Contains(out, "orders       i-new     vol-9   us-east-1b  4      -       -") ||
		!strings.Contains(out, "dropped by env-0abort at 2026-11-26T08:00:00Z") {
		t.Errorf("status = %d\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, "status", "--api", url, "--output", "json")
	var rep StatusReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Databases) != 2 || rep.Databases[1].DroppedBy != "env-0abort" || rep.Databases[0].DroppedBy != "" {
		t.Errorf("status --output json = %d\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, "migrations", "list", "--api", url, "--output", "json")
	var ms api.Migrations
	if code != 0 || json.Unmarshal([]byte(out), &ms) != nil || len(ms.Migrations) != 1 || ms.Migrations[0].ID != "tok-7" {
		t.Errorf("migrations list --output json = %d\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, "migrations", "show", "tok-7", "--api", url)
	if code != 0 || !strings.Contains(out, "from i-old") || !strings.Contains(out, "Fencing") || !strings.Contains(out, "15ms") {
		t.Errorf("migrations show = %d\n%s%s", code, out, errs)
	}
	_, errs, code = run(t, "migrations", "show", "nope", "--api", url)
	if code == 0 || !strings.Contains(errs, "handover migrations list") {
		t.Errorf("show of an unknown id = %d: %s", code, errs)
	}
}

func TestStatusNeedsTheToken(t *testing.T) {
	url := apiFixture(t, "s3cret")
	_, errs, code := run(t, "status", "--api", url)
	if code == 0 || !strings.Contains(errs, "HANDOVER_API_TOKEN") {
		t.Errorf("without the token: %d %s", code, errs)
	}
	t.Setenv("HANDOVER_API_TOKEN", "s3cret")
	if _, errs, code := run(t, "status", "--api", url); code != 0 {
		t.Errorf("with the token from the environment: %d %s", code, errs)
	}
	_, errs, code = run(t, "status", "--api", "localhost:7070")
	if code != 2 || !strings.Contains(errs, "http://127.0.0.1:7070") {
		t.Errorf("a bad --api: %d %s", code, errs)
	}
}

func TestControllerRefusesBadSettings(t *testing.T) {
	t.Setenv("HANDOVER_API_TOKEN", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no queue", []string{"controller"}, "--queue-url is required"},
		{"API off loopback without a token", []string{"controller", "--queue-url", "q", "--listen", "0.0.0.0:7070"}, "without a bearer token"},
		{"leases lapse", []string{"controller", "--queue-url", "q", "--advance-interval", "20s", "--lease-ttl", "30s"}, "under half of --lease-ttl"},
		{"bad ledger", []string{"controller", "--queue-url", "q", "--ledger", "mysql://x"}, "ledger"},
		{"release port", []string{"controller", "--queue-url", "q", "--releases", "--release-port", "0"}, "--release-port 0: give the services' port"},
		{"release interval", []string{"controller", "--queue-url", "q", "--releases", "--release-interval", "0s"}, "--release-interval 0s: give a positive duration"},
		{"release lease", []string{"controller", "--queue-url", "q", "--releases", "--release-lease-ttl", "1s"}, "--release-lease-ttl 1s: give at least 3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := run(t, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}

func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(prefix string, args []string)
	walk = func(prefix string, args []string) {
		root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
		cmd, _, err := root.Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Runnable() && cmd.Example == "" {
			t.Errorf("%s has no examples in --help", prefix)
		}
		for _, c := range cmd.Commands() {
			if c.Name() == "help" || c.Name() == "completion" {
				continue
			}
			walk(prefix+" "+c.Name(), append(append([]string{}, args...), c.Name()))
		}
	}
	walk("handover", nil)
}

func TestControllerRefusesUnknownFence(t *testing.T) {
	_, errs, code := run(t, "controller", "--queue-url", "q", "--fence", "carrier-pigeon")
	if code != 2 || !strings.Contains(errs, "use http or ssm") {
		t.Errorf("exit %d, %q", code, errs)
	}
}
