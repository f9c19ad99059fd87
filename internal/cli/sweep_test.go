package cli

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
	"github.com/handover-dev/handover/internal/localcloud"
)

// sweepWorld is a local cloud holding four managed resources, and an
// SQLite ledger that owns two of them:
//
//	ghostVol, ghostSnap  tagged by migration tok-ghost, unknown to the ledger
//	ownedVol             the authoritative volume of database orders
//	liveSnap             tagged by migration tok-live, still Snapshotting
type sweepWorld struct {
	endpoint, ledgerURL                     string
	ec2                                     *awsec2.Client
	ghostVol, ghostSnap, ownedVol, liveSnap string
}

func newSweepWorld(t *testing.T) *sweepWorld {
	t.Helper()
	dir := t.TempDir()
	lc, err := localcloud.New(localcloud.Config{DataDir: filepath.Join(dir, "cloud")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"HANDOVER_LEDGER": "", "HANDOVER_SWEEP_GRACE": "",
	} {
		t.Setenv(k, v)
	}
	w := &sweepWorld{endpoint: srv.URL, ledgerURL: "sqlite://" + filepath.Join(dir, "ledger.db")}
	w.ec2 = awsec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", "")})
	ctx := t.Context()
	tags := func(kind ec2types.ResourceType, migration string) []ec2types.TagSpecification {
		return []ec2types.TagSpecification{{ResourceType: kind, Tags: []ec2types.Tag{
			{Key: aws.String(handover.TagManaged), Value: aws.String("true")},
			{Key: aws.String(handover.TagMigration), Value: aws.String(migration)},
			{Key: aws.String(handover.TagDatabase), Value: aws.String("orders")},
			{Key: aws.String(handover.TagPurpose), Value: aws.String("final")},
		}}}
	}
	volume := func(migration string) string {
		out, err := w.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
			TagSpecifications: tags(ec2types.ResourceTypeVolume, migration)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VolumeId)
	}
	snapshot := func(vol, migration string) string {
		out, err := w.ec2.CreateSnapshot(ctx, &awsec2.CreateSnapshotInput{VolumeId: aws.String(vol),
			TagSpecifications: tags(ec2types.ResourceTypeSnapshot, migration)})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.SnapshotId)
		// Pending snapshots are left for a later pass: wait for it.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			d, err := w.ec2.DescribeSnapshots(ctx, &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
			if err == nil && len(d.Snapshots) == 1 && d.Snapshots[0].State == ec2types.SnapshotStateCompleted {
				return id
			}
			if time.Now().After(deadline) {
				t.Fatalf("snapshot %s not completed after 30s (%v)", id, err)
			}
		}
	}
	w.ghostVol = volume("tok-ghost")
	w.ghostSnap = snapshot(w.ghostVol, "tok-ghost")
	w.ownedVol = volume("tok-0")
	w.liveSnap = snapshot(w.ownedVol, "tok-live")

	led, err := dial.Open(ctx, w.ledgerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	now := time.Now()
	if err := led.SaveDatabase(ctx, &ledger.Database{ID: "orders", Volume: w.ownedVol, Zone: "us-east-1a", Epoch: 2, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := led.CreateMigration(ctx, &ledger.Migration{ID: "tok-live", Database: "orders", State: ledger.Snapshotting,
		CreatedAt: now, UpdatedAt: now, StepStartedAt: now}); err != nil {
		t.Fatal(err)
	}
	return w
}

// exists reports whether EC2 still has the volume or snapshot.
func (w *sweepWorld) exists(t *testing.T, id string) bool {
	t.Helper()
	if strings.HasPrefix(id, "vol-") {
		out, err := w.ec2.DescribeVolumes(t.Context(), &awsec2.DescribeVolumesInput{
			Filters: []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{id}}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Volumes) == 1 && out.Volumes[0].State != ec2types.VolumeStateDeleted
	}
	out, err := w.ec2.DescribeSnapshots(t.Context(), &awsec2.DescribeSnapshotsInput{
		Filters: []ec2types.Filter{{Name: aws.String("snapshot-id"), Values: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Snapshots) == 1
}

func (w *sweepWorld) sweep(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = executeNoPanic(t, append([]string{"sweep", "--endpoint-url", w.endpoint, "--ledger", w.ledgerURL, "--log-level", "warn"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestSweepCommand: on the local cloud, the dry run lists the leaked
// volume and snapshot of a migration the ledger does not know, with its
// tags and why nobody owns them, and deletes nothing; a pass then deletes
// exactly those, and never what the ledger owns.
func TestSweepCommand(t *testing.T) {
	w := newSweepWorld(t)

	// Within the grace period (30 minutes by default) the unknown
	// migration's resources may still be being recorded: kept.
	code, out, errs := w.sweep(t, "--dry-run", "--output", "json")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	var rep SweepReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("dry run output is not the JSON report: %v\n%s", err, out)
	}
	if !rep.DryRun || rep.Managed != 4 || rep.Delete != 0 || rep.Kept != 4 || len(rep.Resources) != 0 {
		t.Errorf("dry run within the grace: %+v, want all 4 kept", rep)
	}

	// Past it, the dry run gives up the two leaked resources and says why.
	code, out, errs = w.sweep(t, "--dry-run", "--all", "--output", "json", "--sweep-grace", "0s")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	rep = SweepReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Managed != 4 || rep.Delete != 2 || rep.Kept != 2 || rep.Deleted != 0 {
		t.Errorf("dry run past the grace: %+v", rep)
	}
	want := map[string]struct {
		kind, reason string
		delete       bool
	}{
		w.ghostVol:  {handover.SweepVolume, "migration tok-ghost is not in the ledger", true},
		w.ghostSnap: {handover.SweepSnapshot, "migration tok-ghost is not in the ledger", true},
		w.ownedVol:  {handover.SweepVolume, "the authoritative volume of database orders", false},
		w.liveSnap:  {handover.SweepSnapshot, "migration tok-live is still Snapshotting", false},
	}
	for _, r := range rep.Resources {
		wr, ok := want[r.ID]
		if !ok {
			t.Errorf("unexpected resource %+v", r)
			continue
		}
		if r.Kind != wr.kind || r.Delete != wr.delete || !strings.Contains(r.Reason, wr.reason) || r.Deleted {
			t.Errorf("%s: %s delete=%v deleted=%v %q; want %s delete=%v with %q", r.ID, r.Kind, r.Delete, r.Deleted, r.Reason, wr.kind, wr.delete, wr.reason)
		}
		if r.Tags[handover.TagPurpose] != "final" || r.Database != "orders" || r.Migration == "" {
			t.Errorf("%s: tags %v, database %q, migration %q", r.ID, r.Tags, r.Database, r.Migration)
		}
	}
	for id := range want {
		if !w.exists(t, id) {
			t.Errorf("the dry run deleted %s", id)
		}
	}

	// The text dry run names them too.
	code, out, _ = w.sweep(t, "--dry-run", "--sweep-grace", "0s")
	if code != 0 || !strings.Contains(out, "a pass would delete 2 of the 4") || !strings.Contains(out, w.ghostVol) ||
		!strings.Contains(out, w.ghostSnap) || strings.Contains(out, w.ownedVol) || !strings.Contains(out, "handover:purpose=final") {
		t.Errorf("text dry run (exit %d):\n%s", code, out)
	}

	// One pass deletes the leaked two and nothing else.
	code, out, errs = w.sweep(t, "--sweep-grace", "0s")
	if code != 0 {
		t.Fatalf("sweep: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "deleted 2 of the 4") || !strings.Contains(out, w.ghostVol) || !strings.Contains(out, w.ghostSnap) {
		t.Errorf("sweep output:\n%s", out)
	}
	for id, wr := range want {
		if w.exists(t, id) == wr.delete {
			t.Errorf("after the pass, %s exists = %v", id, !wr.delete)
		}
	}
	// Nothing is left to sweep.
	if code, out, _ = w.sweep(t, "--sweep-grace", "0s"); code != 0 || !strings.Contains(out, "deleted 0 of the 2") {
		t.Errorf("second pass (exit %d):\n%s", code, out)
	}
}

// TestSweepRefusesTheWrongLedger: against a ledger that does not exist, an
// in-memory one, or one that knows no database, every resource would look
// unowned: sweep refuses, says what to pass, and deletes nothing.
func TestSweepRefusesTheWrongLedger(t *testing.T) {
	w := newSweepWorld(t)
	missing := filepath.Join(t.TempDir(), "typo.db")
	empty := "sqlite://" + filepath.Join(t.TempDir(), "empty.db")
	led, err := dial.Open(t.Context(), empty, nil)
	if err != nil {
		t.Fatal(err)
	}
	led.Close()
	for _, c := range []struct {
		ledger, want string
	}{
		{"sqlite://" + missing, "pass the ledger the controller writes"},
		{"memory://", "pass the controller's --ledger"},
		{empty, "knows no database"},
	} {
		t.Run(c.ledger, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := executeNoPanic(t, []string{"sweep", "--endpoint-url", w.endpoint, "--ledger", c.ledger, "--sweep-grace", "0s"}, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, errb.String(), c.want)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("sweep created the missing ledger")
	}
	for _, id := range []string{w.ghostVol, w.ghostSnap, w.ownedVol, w.liveSnap} {
		if !w.exists(t, id) {
			t.Errorf("%s deleted against the wrong ledger", id)
		}
	}
	// The dry run still shows what an empty ledger would mean, with a warning.
	var out, errb bytes.Buffer
	if code := executeNoPanic(t, []string{"sweep", "--dry-run", "--endpoint-url", w.endpoint, "--ledger", empty, "--sweep-grace", "0s"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "warning: ") || !strings.Contains(out.String(), "would delete 4 of the 4") {
		t.Errorf("dry run on an empty ledger (exit %d):\n%s%s", code, out.String(), errb.String())
	}
}

// TestSweepWhileTheControllerSweeps: a pass while another holder has the
// sweeper lease does nothing and exits 1 saying so.
func TestSweepWhileTheControllerSweeps(t *testing.T) {
	w := newSweepWorld(t)
	led, err := dial.Open(t.Context(), w.ledgerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.AcquireLease(t.Context(), "sweeper", "controller-1", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	led.Close()
	code, _, errs := w.sweep(t, "--sweep-grace", "0s")
	if code != 1 || !strings.Contains(errs, "holds the sweeper lease") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if !w.exists(t, w.ghostVol) {
		t.Error("swept under another holder's lease")
	}
}
