package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/release"
	"github.com/handover-dev/handover/internal/testenv/browsertest"
)

// TestDashboard runs a handover and a rolling group update on the local
// cloud, then opens the controller's dashboard in headless Chromium: the
// handover's timeline shows every step the API recorded, in order, with
// the write pause; the update's page lists its handovers; a wrong token
// gets the login prompt and no data. With HANDOVER_DASHBOARD_SHOTS=DIR it
// writes screenshots at 1280 px and 390 px there (docs/dashboard/).
func TestDashboard(t *testing.T) {
	tok := randomToken(t)
	// The controller charts a read replica's lag, made below.
	pwFile := filepath.Join(t.TempDir(), "master.pw")
	if err := os.WriteFile(pwFile, []byte(replicaMasterPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{APIToken: tok, ControllerArgs: []string{"--replica", "tenants-rr", "--replica-master-password-file", pwFile,
		"--replica-sslmode", "disable", "--replica-interval", "1s"}})
	ctx := t.Context()
	primary := startReplica(t, e)
	keys, err := e.Load(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Run(ctx, ScenarioUpdate, keys, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	u, err := e.RunUpdate(ctx, ScenarioRolling, 8, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	checkUpdate(t, u)

	// An environment operation on the update's group: standby, then
	// resume (the ASG's tag is all env needs to find the group).
	bin, _ := binaries(t)
	cli := envCLI{t: t, e: e, bin: bin}
	if _, err := e.ASG.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: aws.String(u.Group),
		ResourceType: aws.String("auto-scaling-group"), Key: aws.String("handover:environment"), Value: aws.String("tenants")}}}); err != nil {
		t.Fatal(err)
	}
	// A short lease: the controller carries the abort once the
	// command's lease (kept while the standby lasts) lapses.
	code, out, errOut := cli.run("env", "standby", "tenants", "--poll", "200ms", "--lease-ttl", "2s", "--output", "json")
	if code != 0 {
		t.Fatalf("env standby: exit %d\n%s\n%s", code, out, errOut)
	}
	var standby struct{ ID string }
	if err := json.Unmarshal([]byte(out), &standby); err != nil || standby.ID == "" {
		t.Fatalf("env standby --output json: %v\n%s", err, out)
	}
	envOps := []string{standby.ID}

	mig, err := e.API().Migration(ctx, r.MigrationID)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range mig.Steps {
		want = append(want, s.State)
	}
	upd, err := e.API().Update(ctx, u.UpdateID)
	if err != nil {
		t.Fatal(err)
	}
	var wantMigs []string
	for _, m := range upd.Migrations {
		wantMigs = append(wantMigs, m.ID)
	}
	slices.Sort(wantMigs)
	if len(wantMigs) < 3 {
		t.Fatalf("update %s has %d handovers, want at least 3 (one per instance)", u.UpdateID, len(wantMigs))
	}

	writeToPrimary(t, primary)

	base := "http://" + e.Controllers()[0].APIAddr
	tab := browsertest.New(t, 2*time.Minute)
	shots := os.Getenv("HANDOVER_DASHBOARD_SHOTS")
	root := "/"
	page := func(hash, ready string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.Navigate(base+root+hash), chromedp.WaitVisible(chromedp.CSS(ready))); err != nil {
			t.Fatalf("opening %s (waiting for %s): %v", hash, ready, err)
		}
	}

	// The link `handover demo --dashboard` prints carries the token.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/#token="+tok),
		chromedp.WaitVisible(chromedp.CSS("#databases"))); err != nil {
		t.Fatalf("opening the overview with the token: %v", err)
	}
	if href := eval[string](t, tab, `location.hash`); href != "#/" {
		t.Errorf("the token stayed in the address bar: hash %q", href)
	}
	if body := eval[string](t, tab, `document.querySelector('#databases').innerText`); !strings.Contains(body, database) || !strings.Contains(body, r.Volume) {
		t.Errorf("the overview's databases do not show %s on %s:\n%s", database, r.Volume, body)
	}

	page("#/handover/"+r.MigrationID, ".gantt")
	got := eval[[]string](t, tab, `Array.from(document.querySelectorAll('.gantt .gantt-row')).map(g => g.dataset.state)`)
	if !slices.Equal(got, want) {
		t.Errorf("timeline rows %v, want the recorded steps %v in order", got, want)
	}
	table := eval[[]string](t, tab, `Array.from(document.querySelectorAll('#steps tbody tr td:nth-child(2)')).map(td => td.innerText.trim())`)
	if !slices.Equal(table, want) {
		t.Errorf("steps table %v, want %v", table, want)
	}
	if mig.WritePauseMS <= 0 {
		t.Fatalf("the API reports no write pause for %s: %+v", mig.ID, mig.Steps)
	}
	if n := eval[int](t, tab, `document.querySelectorAll('.gantt .pause-band').length`); n != 1 {
		t.Errorf("%d write pause bands on the timeline, want 1", n)
	}
	if pause, label := eval[string](t, tab, `document.querySelector('#write-pause').innerText`), formatMS(mig.WritePauseMS); pause != label {
		t.Errorf("write pause shows %q, want %q (%d ms)", pause, label, mig.WritePauseMS)
	}
	// Each step's cloud calls, as the ledger counted them.
	var calls int
	for _, s := range mig.Steps {
		calls += s.Calls
	}
	if calls == 0 {
		t.Errorf("no cloud call recorded in any step of %s: %+v", mig.ID, mig.Steps)
	}
	cells := eval[[]string](t, tab, `Array.from(document.querySelectorAll('#steps tbody td.calls')).map(td => td.innerText.trim())`)
	for i, s := range mig.Steps {
		if i < len(cells) && s.Calls > 0 && !strings.HasPrefix(cells[i], strconv.Itoa(s.Calls)) {
			t.Errorf("step %s shows cloud calls %q, want %d", s.State, cells[i], s.Calls)
		}
	}
	shoot(t, tab, shots, "handover-1280.png")

	page("#/env/"+envOps[0], "#env-steps")
	envSteps := eval[[]string](t, tab, `Array.from(document.querySelectorAll('.gantt .gantt-row')).map(g => g.dataset.state)`)
	var op struct {
		Timeline []struct{ Phase string }
	}
	apiGet(t, base+"/v1/envs/"+envOps[0], tok, &op)
	var wantPhases []string
	for _, s := range op.Timeline {
		wantPhases = append(wantPhases, s.Phase)
	}
	if len(wantPhases) < 2 || !slices.Equal(envSteps, wantPhases) {
		t.Errorf("the standby's page shows the steps %v, want the recorded %v", envSteps, wantPhases)
	}
	// The standby is aborted from its page: the button asks first, then
	// makes the call handover env abort makes, and the controller carries
	// it out (the instances come back, the standby ends Aborted).
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#abort")), chromedp.WaitVisible(chromedp.CSS("#modal-confirm"))); err != nil {
		t.Fatalf("the standby's abort button: %v", err)
	}
	shoot(t, tab, shots, "env-abort-1280.png")
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.CSS("#modal-reason"), "TestDashboard"), chromedp.Click(chromedp.CSS("#modal-confirm"))); err != nil {
		t.Fatalf("confirming the abort: %v", err)
	}
	var state string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var op struct{ State string }
		apiGet(t, base+"/v1/envs/"+standby.ID, tok, &op)
		if state = op.State; state == "Aborted" {
			break
		}
	}
	if state != "Aborted" {
		t.Fatalf("the standby aborted from the dashboard is %s, want Aborted", state)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+root+"#/envs"), chromedp.Navigate(base+root+"#/env/"+standby.ID),
		chromedp.WaitVisible(chromedp.CSS("#env-steps"))); err != nil {
		t.Fatal(err)
	}
	shoot(t, tab, shots, "env-1280.png")
	if n := eval[int](t, tab, `document.querySelectorAll('#abort').length`); n != 0 {
		t.Errorf("the aborted standby still offers its abort button")
	}

	// The replica's lag, as the controller read it every second.
	var reps api.Replicas
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		apiGet(t, base+"/v1/replicas", tok, &reps)
		if len(reps.Replicas) == 1 && len(reps.Replicas[0].Samples) >= 3 {
			break
		}
	}
	if len(reps.Replicas) != 1 || len(reps.Replicas[0].Samples) < 3 {
		t.Fatalf("the controller's readings of tenants-rr: %+v", reps)
	}
	page("#/replicas", ".replica svg.line")
	shoot(t, tab, shots, "replicas-1280.png")

	page("#/update/"+u.UpdateID, "#update-migrations")
	links := eval[[]string](t, tab, `Array.from(document.querySelectorAll('#update-migrations tbody tr td:first-child a')).map(a => a.title)`)
	slices.Sort(links)
	if !slices.Equal(links, wantMigs) {
		t.Errorf("update page lists handovers %v, want %v", links, wantMigs)
	}
	shoot(t, tab, shots, "update-1280.png")

	// An update aborted from its page while it bakes its first batch: the
	// button asks first, then makes the call handover update --abort
	// makes, and the update rolls back.
	poolSetup(t, e, PoolOptions{Name: "aborted", Instances: 2}, false)
	ab, err := e.StartUpdate(ctx, api.UpdateRequest{Group: "aborted", Strategy: "rolling", BatchSize: 1, MinHealthyPercent: 50, Bake: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, ab.ID, func(u api.Update) bool { return u.Phase == "bake" })
	checkHolders(t, e, tab, base, tok, "update/"+ab.ID, shots)
	page("#/update/"+ab.ID, "#abort")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#abort")), chromedp.WaitVisible(chromedp.CSS("#modal-confirm"))); err != nil {
		t.Fatalf("the update's abort button: %v", err)
	}
	shoot(t, tab, shots, "update-abort-1280.png")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#modal-confirm"))); err != nil {
		t.Fatalf("confirming the update's abort: %v", err)
	}
	if ab = finished(t, e, ab.ID); ab.State != ledger.UpdateAborted || !strings.Contains(ab.Error, "aborted from the dashboard") {
		t.Errorf("the update aborted from the dashboard ended %s (%q), want Aborted by the dashboard", ab.State, ab.Error)
	}
	checkReleases(t, e, tab, base, tok, u.Group, shots)
	checkMigrationPage(t, e, tab, base, shots)
	page("#/", "#databases")
	fenced := 0
	for _, m := range must(e.API().Migrations(ctx, nil)) {
		if m.WritePauseMS > 0 {
			fenced++
		}
	}
	checkBars := func(width string) {
		t.Helper()
		if n := eval[int](t, tab, `document.querySelectorAll('.bars rect.bar').length`); n != fenced {
			t.Errorf("at %s px the write pause chart has %d bars, want one per fenced handover (%d)", width, n, fenced)
		}
	}
	checkBars("1280")
	if q := eval[string](t, tab, `document.querySelector('#queue-depth').innerText + ' / ' + document.querySelector('#dlq-depth').innerText`); !strings.Contains(q, "waiting") || !strings.Contains(q, "DLQ 0") {
		t.Errorf("the overview's queue tile says %q, want the events queue's depth and an empty DLQ", q)
	}
	shoot(t, tab, shots, "overview-1280.png")

	// Phone width: the same pages, readable. A new document (the query),
	// so the first drawing already has the phone's width.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	root = "/?phone"
	page("#/", "#databases")
	fits := func(what string) {
		t.Helper()
		if bad := eval[[]string](t, tab, `Array.from(document.querySelectorAll('.chart')).filter(c => c.firstElementChild.getBoundingClientRect().width > c.clientWidth + 1).map(c => c.closest('section').querySelector('h2').innerText)`); len(bad) > 0 {
			t.Errorf("%s at 390 px: the charts %v are wider than their cards (cut off)", what, bad)
		}
	}
	fits("the overview")
	if w := eval[int](t, tab, `document.documentElement.scrollWidth`); w > 400 {
		t.Errorf("the overview is %d px wide at 390 px: it scrolls sideways", w)
	}
	checkBars("390")
	shoot(t, tab, shots, "overview-390.png")
	page("#/handover/"+r.MigrationID, ".gantt")
	if w := eval[int](t, tab, `document.documentElement.scrollWidth`); w > 400 {
		t.Errorf("the handover page is %d px wide at 390 px: it scrolls sideways", w)
	}
	fits("the handover page")
	shoot(t, tab, shots, "handover-390.png")

	// A wrong token, in a tab of its own (sessionStorage is per tab): the
	// login prompt, and none of the data.
	wrong, cancel := chromedp.NewContext(tab)
	defer cancel()
	if err := chromedp.Do(wrong, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/#token=not-the-token"),
		chromedp.WaitVisible(chromedp.CSS("#login-error"))); err != nil {
		t.Fatalf("a wrong token did not get the login prompt: %v", err)
	}
	text := eval[string](t, wrong, `document.body.innerText`)
	for _, secret := range []string{r.Volume, r.NewInstance} {
		if strings.Contains(text, secret) {
			t.Errorf("with a wrong token the page shows %q:\n%s", secret, text)
		}
	}
	if n := eval[int](t, wrong, `document.querySelector('#main').childElementCount`); n != 0 {
		t.Errorf("with a wrong token #main has %d elements, want none", n)
	}
	shoot(t, wrong, shots, "login-1280.png")
	// Typing the right one in signs in.
	if err := chromedp.Do(wrong, chromedp.SendKeys(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS("#login-form button")),
		chromedp.WaitVisible(chromedp.CSS("#databases"))); err != nil {
		t.Fatalf("signing in with the right token: %v", err)
	}
}

// checkHolders: the overview's "Controllers and their leases" shows every
// holder in the ledger with what it holds: the controller with the lease
// of the update it is baking (held), and a second holder, the test itself
// through the ledger, as a second controller sharing it would be.
func checkHolders(t *testing.T, e *Env, tab context.Context, base, tok, held, shots string) {
	t.Helper()
	led := e.openLedger(t)
	const other, otherLease = "TestDashboard-second-holder", "TestDashboard/lease"
	l, err := led.AcquireLease(t.Context(), otherLease, other, time.Now(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer led.ReleaseLease(t.Context(), l)
	var st api.Status
	apiGet(t, base+"/v1/status", tok, &st)
	var ls api.Leases
	apiGet(t, base+api.PathLeases, tok, &ls)
	want := map[string][]string{st.Holder: nil}
	for _, l := range ls.Leases {
		want[l.Holder] = append(want[l.Holder], l.Name)
	}
	if !slices.Contains(want[st.Holder], held) || !slices.Equal(want[other], []string{otherLease}) {
		t.Fatalf("GET %s: %+v, want %s held by %s and %s by %s", api.PathLeases, ls.Leases, held, st.Holder, otherLease, other)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/#/"), chromedp.WaitVisible(chromedp.CSS(`#controllers [data-holder="`+other+`"]`))); err != nil {
		t.Fatalf("the overview does not show the second holder: %v", err)
	}
	// The controller's own leases may come and go between the two reads
	// (a reconcile's); the update's and the second holder's stay.
	shown := eval[map[string][]string](t, tab, `Object.fromEntries(Array.from(document.querySelectorAll('#controllers .holder')).map(d => [d.dataset.holder, Array.from(d.querySelectorAll('li')).map(li => li.dataset.lease)]))`)
	if !slices.Contains(shown[st.Holder], held) || !slices.Equal(shown[other], []string{otherLease}) {
		t.Errorf("the overview shows the holders and leases %v, want %s holding %s and %s holding only %s (GET %s: %v)", shown, st.Holder, held, other, otherLease, api.PathLeases, want)
	}
	if text := eval[string](t, tab, `document.querySelector('#controllers [data-holder="`+st.Holder+`"]').innerText`); !strings.Contains(text, "this controller") || !strings.Contains(text, "expires in") {
		t.Errorf("the controller's leases on the overview:\n%s", text)
	}
	shoot(t, tab, shots, "controllers-1280.png")
}

// checkReleases: the releases page shows which release each instance of a
// channel runs and how far its rollout is. The group joins channel web by
// its tag, and two of its instances get the release volumes a publish's
// rollout would have attached (tagged as release.Instances reads them: a
// real publish needs a release server and the agent's --release-mount,
// which internal/release's tests run); the controller reads them from the
// local cloud.
func checkReleases(t *testing.T, e *Env, tab context.Context, base, tok, group, shots string) {
	t.Helper()
	ctx := t.Context()
	led := e.openLedger(t)
	if err := led.SaveChannel(ctx, &ledger.Channel{ID: "web", Latest: "v2", Previous: "v1", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1", "v2"} {
		if err := led.CreateRelease(ctx, &ledger.Release{ID: ledger.ReleaseID("web", name), Channel: "web", Name: name, State: ledger.ReleasePublished,
			Publisher: "TestDashboard", CreatedAt: time.Now(), PublishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.ASG.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: aws.String(group),
		ResourceType: aws.String("auto-scaling-group"), Key: aws.String(release.TagChannel), Value: aws.String("web")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describing group %s: %v", group, err)
	}
	var inService []astypes.Instance
	for _, i := range out.AutoScalingGroups[0].Instances {
		if i.LifecycleState == astypes.LifecycleStateInService {
			inService = append(inService, i)
		}
	}
	slices.SortFunc(inService, func(a, b astypes.Instance) int { return strings.Compare(*a.InstanceId, *b.InstanceId) })
	if len(inService) < 3 {
		t.Fatalf("group %s has %d instances in service, want 3", group, len(inService))
	}
	want := map[string]string{*inService[0].InstanceId: "v2", *inService[1].InstanceId: "v1"}
	for inst, rel := range want {
		zone := *inService[slices.IndexFunc(inService, func(i astypes.Instance) bool { return *i.InstanceId == inst })].AvailabilityZone
		v, err := e.EC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
				{Key: aws.String(release.TagManaged), Value: aws.String("true")}, {Key: aws.String(handover.TagPurpose), Value: aws.String(release.PurposeInstance)},
				{Key: aws.String(release.TagChannel), Value: aws.String("web")}, {Key: aws.String(release.TagRelease), Value: aws.String(rel)}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: v.VolumeId, InstanceId: aws.String(inst), Device: aws.String("/dev/sdg")}); err != nil {
			t.Fatal(err)
		}
	}
	var doc api.Releases
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		apiGet(t, base+api.PathReleases, tok, &doc)
		if len(doc.Instances) == 1 && len(doc.Instances[0].Instances) >= 3 && doc.Instances[0].Error == "" {
			n := 0
			for _, i := range doc.Instances[0].Instances {
				if len(i.Releases) == 1 && i.Releases[0] == want[i.Instance] {
					n++
				}
			}
			if n == 2 {
				break
			}
		}
	}
	if len(doc.Instances) != 1 || doc.Instances[0].Error != "" || len(doc.Instances[0].Instances) < 3 {
		t.Fatalf("GET %s: instances %+v, want channel web's with %v", api.PathReleases, doc.Instances, want)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/#/releases"), chromedp.WaitVisible(chromedp.CSS("#instances-web"))); err != nil {
		t.Fatalf("the releases page has no instances of channel web: %v", err)
	}
	rows := eval[map[string]string](t, tab, `Object.fromEntries(Array.from(document.querySelectorAll('#instances-web tbody tr')).map(tr => [tr.querySelector('td').innerText.trim(), tr.querySelector('td:nth-child(4)').innerText.trim()]))`)
	for _, i := range doc.Instances[0].Instances {
		wantCell := "no release volume"
		if r := want[i.Instance]; r == "v2" {
			wantCell = "v2 (latest)"
		} else if r == "v1" {
			wantCell = "v1"
		}
		if rows[i.Instance] != wantCell {
			t.Errorf("the releases page says %s runs %q, want %q (all rows: %v)", i.Instance, rows[i.Instance], wantCell, rows)
		}
	}
	live := 0
	for _, i := range doc.Instances[0].Instances {
		if i.Lifecycle == "InService" {
			live++
		}
	}
	if got, wantTile := eval[string](t, tab, `document.querySelector('#rollout-web .tile-value').innerText`), fmt.Sprintf("1 of %d in service", live); got != wantTile {
		t.Errorf("the rollout tile says %q, want %q", got, wantTile)
	}
	shoot(t, tab, shots, "releases-1280.png")
}

// apiGet reads a /v1 document as a script would.
func apiGet(t *testing.T, url, token string, into any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

const replicaMasterPW = "master-Secret1"

// startReplica creates a PostgreSQL RDS instance and a read replica of it
// (real streaming replication in the local cloud) and returns the
// primary's address.
func startReplica(t *testing.T, e *Env) string {
	t.Helper()
	ctx := t.Context()
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint), Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	rc := rds.NewFromConfig(cfg)
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String("tenants-db"), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String("postgres"),
		MasterUsername: aws.String("app"), MasterUserPassword: aws.String(replicaMasterPW), DBName: aws.String("app"),
	}); err != nil {
		t.Fatal(err)
	}
	addr := waitDB(t, rc, "tenants-db")
	if _, err := rc.CreateDBInstanceReadReplica(ctx, &rds.CreateDBInstanceReadReplicaInput{
		DBInstanceIdentifier: aws.String("tenants-rr"), SourceDBInstanceIdentifier: aws.String("tenants-db")}); err != nil {
		t.Fatal(err)
	}
	waitDB(t, rc, "tenants-rr")
	return addr
}

// waitDB waits for a DB instance to be available and returns host:port.
func waitDB(t *testing.T, rc *rds.Client, id string) string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		if db := out.DBInstances[0]; aws.ToString(db.DBInstanceStatus) == "available" && db.Endpoint != nil {
			return fmt.Sprintf("%s:%d", aws.ToString(db.Endpoint.Address), aws.ToInt32(db.Endpoint.Port))
		}
	}
	t.Fatalf("DB instance %s not available after 2 minutes", id)
	return ""
}

// writeToPrimary writes a few hundred rows, for the replica to replay.
func writeToPrimary(t *testing.T, addr string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), "postgres://app:"+replicaMasterPW+"@"+addr+"/app?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, body text)"); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := conn.Exec(t.Context(), "INSERT INTO orders (body) SELECT repeat('x', 1000) FROM generate_series(1, 50)"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func randomToken(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// formatMS is the dashboard's dur() for the values a write pause takes.
func formatMS(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms < 1000:
		return strings.TrimSuffix(d.Round(time.Millisecond).String(), "ms") + " ms"
	case d < 10*time.Second:
		return strconvFixed(d.Seconds(), 2) + " s"
	case d < time.Minute:
		return strconvFixed(d.Seconds(), 1) + " s"
	}
	return d.String()
}

func strconvFixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkMigrationPage: a finished migration's page shows its cutover (the
// entry listener, what it forwards to, verify, the lift) and no abort
// button (past its drop there is nothing to go back to). The migration is
// recorded in the ledger as env migrate records one (TestEnvMigrate runs
// the real thing; a browser on top of it would double its minute).
func checkMigrationPage(t *testing.T, e *Env, tab context.Context, base, shots string) {
	t.Helper()
	ctx := t.Context()
	led := e.openLedger(t)
	now := time.Now().UTC()
	entry := "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/shop/0123456789abcdef/fedcba9876543210"
	var steps []ledger.UpdateStep
	for i, ph := range []string{"migrate-clone", "migrate-verify", "migrate-entry", "migrate-cutover", "migrate-switched", "migrate-bake", "migrate-drop", "migrate-retag", "done"} {
		steps = append(steps, ledger.UpdateStep{Phase: ph, Start: now.Add(time.Duration(i-9) * 5 * time.Second), End: now.Add(time.Duration(i-8) * 5 * time.Second)})
	}
	op := &ledger.EnvOp{ID: "env-dashmigrate", Environment: "shop", SelectorKey: "handover:environment", Op: "migrate",
		State: ledger.UpdateSucceeded, Phase: "done", CreatedAt: now.Add(-45 * time.Second), UpdatedAt: now, EndedAt: now, Timeline: steps,
		Migration: &ledger.EnvMigration{Dest: "shop-next", CloneOp: "env-dashmigrate-clone", Entry: entry,
			SourceTG: "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop/1", EntryTG: "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop-next-entry/2",
			Verified: true, SwitchedAt: now.Add(-25 * time.Second), LiftedAt: now.Add(-8 * time.Second), Bake: 3 * time.Second,
			Unchanged: []string{"bucket shop-next-assets (S3 names cannot change)"}}}
	if err := led.CreateEnvOp(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/#/env/"+op.ID), chromedp.WaitVisible(chromedp.CSS("#migration"))); err != nil {
		t.Fatalf("the migration's page has no Migration card: %v", err)
	}
	text := eval[string](t, tab, `document.querySelector('#migration').innerText`)
	for _, want := range []string{"shop-next", entry, "shop-next-entry", "pass", "env-dashmigrate-clone", "bucket shop-next-assets"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Migration card does not say %q:\n%s", want, text)
		}
	}
	if n := eval[int](t, tab, `document.querySelectorAll('#abort').length`); n != 0 {
		t.Errorf("a migration past its drop offers %d abort buttons, want none", n)
	}
	if title := eval[string](t, tab, `document.querySelector('h1').innerText`); !strings.Contains(title, "shop-next") {
		t.Errorf("the page's title %q does not name the destination", title)
	}
	shoot(t, tab, shots, "env-migrate-1280.png")
}
