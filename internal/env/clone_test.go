package env

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

// fakeReader is CloneReader over user data by template name and a set of
// names that exist.
type fakeReader struct {
	userData map[string]string
	taken    map[Resource]bool
}

func (f *fakeReader) TemplateUserData(_ context.Context, ref ledger.TemplateRef) (string, error) {
	ud, ok := f.userData[ref.Name]
	if !ok {
		return "", errors.New("InvalidLaunchTemplateName.NotFoundException")
	}
	return ud, nil
}

func (f *fakeReader) Taken(_ context.Context, names []Resource) ([]Resource, error) {
	var out []Resource
	for _, n := range names {
		if f.taken[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

const stagingUserData = `#!/bin/sh
export DB_URL=postgres://app@staging-pg.abc123.us-east-1.rds.amazonaws.com:5432/app
export ASSETS=s3://staging-assets/static
export PEER=http://staging-lb-1.us-east-1.elb.amazonaws.com/
export SMTP=mail.example.com
export PEER_ADDR=staging-lb-1.us-east-1.elb.amazonaws.com:80
`

// cloneRig is staging: a kvstore pool group of 2 databases behind a load
// balancer, an RDS instance and a bucket, all referenced by user data.
func cloneRig(t *testing.T) (*rig, *fakeReader) {
	x := newRig(t)
	x.cloud.addGroup("staging", "staging-kv", 2, 4, 2, 0)
	g := x.cloud.groups["staging-kv"]
	g.Template = ledger.TemplateRef{Name: "staging-kv-lt", Version: "3"}
	g.TargetGroups = []string{"arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc"}
	g.Hooks = []Hook{{Name: "handover-launch", Transition: "autoscaling:EC2_INSTANCE_LAUNCHING", Metadata: `{"database":"kv","count":2,"seed_snapshot":"snap-old"}`}}
	g.Tags["Peer"] = "staging-lb-1.us-east-1.elb.amazonaws.com"
	x.cloud.lbs = []LoadBalancer{{ARN: "arn:lb/staging-lb", Name: "staging-lb", DNSName: "staging-lb-1.us-east-1.elb.amazonaws.com",
		Listeners: []Listener{{ARN: "arn:l/1", Protocol: "HTTP", Port: 80, TargetGroup: g.TargetGroups[0], Entry: true}}}}
	x.cloud.tgs = []TargetGroup{{ARN: g.TargetGroups[0], Name: "staging-kv-tg"}}
	x.cloud.rds = []DBInstance{{ID: "staging-pg", Engine: "postgres", Status: "available", Endpoint: "staging-pg.abc123.us-east-1.rds.amazonaws.com:5432"}}
	x.cloud.buckets = []Bucket{{Name: "staging-assets"}}
	must(t, x.led.SaveDatabase(t.Context(), &ledger.Database{ID: "kv-1", Group: "staging-kv", Volume: "vol-1", Zone: "us-east-1a", Epoch: 4}))
	must(t, x.led.SaveDatabase(t.Context(), &ledger.Database{ID: "kv-2", Group: "staging-kv", Volume: "vol-2", Zone: "us-east-1b", Epoch: 1}))
	return x, &fakeReader{userData: map[string]string{"staging-kv-lt": stagingUserData}, taken: map[Resource]bool{}}
}

func TestPlanCloneListsEverything(t *testing.T) {
	x, fr := cloneRig(t)
	p, _, err := x.r.PlanClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod",
		Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Quiesce != QuiesceFence || len(p.Fence) != 2 || p.Fence[0] != (FencePlan{Database: "kv-1", Group: "staging-kv", Epoch: 4, Volume: "vol-1"}) {
		t.Errorf("fence %+v", p.Fence)
	}
	wantSnaps := []SnapshotPlan{{Kind: "ebs", Of: "kv-1", Volume: "vol-1", For: "kv-1-prod"}, {Kind: "ebs", Of: "kv-2", Volume: "vol-2", For: "kv-2-prod"}, {Kind: "rds", Of: "staging-pg", For: "prod-pg"}}
	if !slices.Equal(p.Snapshots, wantSnaps) {
		t.Errorf("snapshots %+v, want %+v", p.Snapshots, wantSnaps)
	}
	if !slices.Equal(p.Copies, []CopyPlan{{From: "staging-assets", To: "prod-assets"}}) {
		t.Errorf("copies %+v", p.Copies)
	}
	created := map[string]CreatePlan{}
	for _, c := range p.Creates {
		created[c.Kind+" "+c.Name] = c
	}
	for _, want := range []string{"target-group prod-kv-tg", "load-balancer prod-lb", "rds prod-pg", "bucket prod-assets", "launch-template prod-kv-lt", "group prod-kv", "database kv-1-prod", "database kv-2-prod"} {
		if _, ok := created[want]; !ok {
			t.Errorf("plan creates no %s: %+v", want, p.Creates)
		}
	}
	grp := created["group prod-kv"].Detail
	for _, want := range []string{`{"databases":["kv-1-prod","kv-2-prod"]}`, "target groups prod-kv-tg", "min 2 desired 2 max 4", "from prod-kv-lt"} {
		if !strings.Contains(grp, want) {
			t.Errorf("group detail %q lacks %q", grp, want)
		}
	}
	if strings.Contains(grp, "snap-old") {
		t.Errorf("DST's hook keeps the pool's seed snapshot: %q", grp)
	}
	if d := created["load-balancer prod-lb"].Detail; d != "HTTP:80 -> prod-kv-tg (entry point)" {
		t.Errorf("load balancer detail %q", d)
	}
	rw := map[string]RewritePlan{}
	for _, r := range p.Rewrites {
		rw[r.From] = r
	}
	if r := rw["staging-pg.abc123.us-east-1.rds.amazonaws.com:5432"]; r.Why != "rds-endpoint" || !strings.Contains(r.ToOf, "prod-pg") || len(r.Where) != 1 {
		t.Errorf("rds endpoint rewrite %+v", r)
	}
	if r := rw["staging-assets"]; r.To != "prod-assets" || len(r.Where) != 1 {
		t.Errorf("bucket rewrite %+v", r)
	}
	if r := rw["staging-lb-1.us-east-1.elb.amazonaws.com"]; r.Why != "lb-dns" || !slices.Equal(r.Where, []string{"user data of launch template staging-kv-lt", "tag Peer of group staging-kv"}) {
		t.Errorf("lb rewrite %+v", r)
	}
	if r := rw["mail.example.com"]; r.To != "mail.prod.example.com" || r.Why != "--set" {
		t.Errorf("--set rewrite %+v", r)
	}
	if _, ok := rw["staging-pg.abc123.us-east-1.rds.amazonaws.com"]; ok {
		t.Errorf("the endpoint's host was counted again inside host:port: %+v", p.Rewrites)
	}
	if len(p.Unrewritable) != 0 {
		t.Errorf("unrewritable %+v", p.Unrewritable)
	}

	for _, n := range p.Notes {
		if strings.Contains(n, "RDS instance") {
			t.Errorf("an available RDS instance got a note: %q", n)
		}
	}
	x.cloud.rds[0].Status = "backing-up"
	bp, _, err := x.r.PlanClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}})
	if err != nil || !slices.ContainsFunc(bp.Notes, func(n string) bool {
		return strings.Contains(n, "RDS instance staging-pg is backing-up: the clone waits for it to be available before it quiesces")
	}) {
		t.Errorf("a busy RDS instance: %v, notes %q", err, bp.Notes)
	}
	x.cloud.rds[0].Status = "available"

	sp, _, err := x.r.PlanClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod", Quiesce: QuiesceStandby})
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Fence) != 0 || len(sp.Standby) != 1 || len(sp.Standby[0].Standby) != 2 || sp.Standby[0].ToMin != 0 {
		t.Errorf("standby quiesce %+v", sp.Standby)
	}
	if len(x.cloud.log) != 0 {
		t.Errorf("a plan changed the cloud: %v", x.cloud.log)
	}
	if ops, _ := x.led.ListEnvOps(t.Context(), ledger.EnvOpQuery{}); len(ops) != 0 {
		t.Errorf("a plan recorded %d operations", len(ops))
	}
}

func TestPlanCloneRefuses(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(*rig, *fakeReader)
		req    CloneRequest
		target error
		want   string
	}{
		{"unknown SRC", nil, CloneRequest{Source: ByName("nope"), Dest: "prod"}, ErrUnknownEnvironment, "tag the environment's resources"},
		{"DST is SRC", nil, CloneRequest{Source: ByName("staging"), Dest: "staging"}, ErrBadRequest, "a new environment's name"},
		{"bad DST name", nil, CloneRequest{Source: ByName("staging"), Dest: "prod_1"}, ErrBadRequest, "letters, digits and hyphens"},
		{"bad quiesce", nil, CloneRequest{Source: ByName("staging"), Dest: "prod", Quiesce: "freeze"}, ErrBadRequest, "want fence"},
		{"DST exists", func(x *rig, _ *fakeReader) { x.cloud.addGroup("prod", "prod-web", 1, 2, 1, 0) },
			CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBadRequest, "environment prod exists"},
		{"a DST name is taken", func(_ *rig, fr *fakeReader) { fr.taken[Resource{KindBucket, "prod-assets"}] = true },
			CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBadRequest, "would create bucket prod-assets, and the name is taken"},
		{"a DST database is in the ledger", func(x *rig, _ *fakeReader) {
			must(x.t, x.led.SaveDatabase(x.t.Context(), &ledger.Database{ID: "kv-2-prod", Group: "elsewhere"}))
		}, CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBadRequest, "database kv-2-prod"},
		{"group mid-update", func(x *rig, _ *fakeReader) {
			must(x.t, x.led.CreateUpdate(x.t.Context(), &ledger.Update{ID: "upd-1", Group: "staging-kv", State: ledger.UpdateRunning, Phase: "launch", CreatedAt: epoch}))
		}, CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBusy, "handover update --abort upd-1"},
		{"database mid-handover", func(x *rig, _ *fakeReader) {
			d, err := x.led.GetDatabase(x.t.Context(), "kv-1")
			must(x.t, err)
			d.Claim = "mig-7"
			must(x.t, x.led.SaveDatabase(x.t.Context(), d))
		}, CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBusy, "database kv-1 is being moved (handover mig-7)"},
		{"in standby", func(x *rig, _ *fakeReader) { x.standby("staging") },
			CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrBusy, "standby operation"},
		{"--set matching nothing", nil, CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "typo.example.com", To: "x"}}}, ErrBadRequest, `"typo.example.com" appears in none`},
		{"untagged resource in user data", func(_ *rig, fr *fakeReader) {
			fr.userData["staging-kv-lt"] += "export LOGS=s3://shared-logs/app\n"
		}, CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrUnrewritable, "s3://shared-logs (bucket, in user data of launch template staging-kv-lt)"},
		{"another bucket whose name starts with SRC's", func(_ *rig, fr *fakeReader) {
			fr.userData["staging-kv-lt"] += "export OLD=s3://staging-assets-old/x\n"
		}, CloneRequest{Source: ByName("staging"), Dest: "prod"}, ErrUnrewritable, "s3://staging-assets-old (bucket"},
		{"DST name too long", nil, CloneRequest{Source: ByName("staging"), Dest: "a-very-long-environment-name-for-a-load-balancer"}, ErrBadRequest, "would not be valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, fr := cloneRig(t)
			if c.setup != nil {
				c.setup(x, fr)
			}
			before := len(x.cloud.log)
			_, _, err := x.r.PlanClone(t.Context(), fr, c.req)
			if !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %v saying %q", err, c.target, c.want)
			}
			if len(x.cloud.log) != before {
				t.Errorf("a refused plan changed the cloud: %v", x.cloud.log[before:])
			}
		})
	}
}

func TestPlanCloneKeepsAnUntaggedReferenceBySet(t *testing.T) {
	x, fr := cloneRig(t)
	fr.userData["staging-kv-lt"] += "export LOGS=s3://shared-logs/app\n"
	p, _, err := x.r.PlanClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "s3://shared-logs", To: "s3://shared-logs"}}})
	if err != nil {
		t.Fatalf("--set REF=REF did not accept the reference: %v", err)
	}
	if len(p.Unrewritable) != 0 {
		t.Errorf("unrewritable %+v", p.Unrewritable)
	}
}

func TestBlank(t *testing.T) {
	for _, c := range []struct {
		body, from string
		bounded    bool
		want       string
		found      bool
	}{
		{"s3://b1/x", "b1", true, "s3://\x00\x00/x", true},
		{"b1.s3.amazonaws.com", "b1", true, "\x00\x00.s3.amazonaws.com", true},
		{"s3://b1-old b1", "b1", true, "s3://b1-old \x00\x00", true},
		{"sub.b1", "b1", true, "sub.b1", false},
		{"127.0.0.1:5432/app 127.0.0.1:54321", "127.0.0.1:5432", true, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00/app 127.0.0.1:54321", true},
		{"xb1x", "b1", false, "x\x00\x00x", true},
		{"", "b1", true, "", false},
	} {
		got, found := blank(c.body, c.from, c.bounded)
		if got != c.want || found != c.found {
			t.Errorf("blank(%q, %q, %v) = %q, %v; want %q, %v", c.body, c.from, c.bounded, got, found, c.want, c.found)
		}
	}
}

func TestParseSet(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Set
		ok   bool
	}{
		{"a=b", Set{"a", "b"}, true},
		{"a=", Set{"a", ""}, true},
		{"url=x=y", Set{"url", "x=y"}, true},
		{"=b", Set{}, false},
		{"ab", Set{}, false},
	} {
		got, err := ParseSet(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSet(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func TestCloneName(t *testing.T) {
	for _, c := range []struct{ kind, name, want string }{
		{KindGroup, "staging-kv", "Prod-kv"},
		{KindBucket, "staging-assets", "prod-assets"},
		{KindBucket, "assets", "assets-prod"},
		{KindRDS, "Staging-pg", "Staging-pg-prod"},
		{KindDatabase, "kv-1", "kv-1-Prod"},
	} {
		if got := cloneName(c.kind, c.name, "staging", "Prod"); got != c.want {
			t.Errorf("cloneName(%s, %s) = %s, want %s", c.kind, c.name, got, c.want)
		}
	}
}

// FuzzPlanCloneUserData: whatever a launch template's user data holds,
// the plan is made or refused as a bad request, never panics, every
// reference it reports is text of the user data, and every rewrite's FROM
// is found there or in the group's tags.
func FuzzPlanCloneUserData(f *testing.F) {
	f.Add(stagingUserData)
	f.Add("s3://shared-logs/x arn:aws:s3:::other-bucket b.s3.amazonaws.com")
	f.Add("x.y.us-east-1.rds.amazonaws.com:5432 lb-1.eu-west-1.elb.amazonaws.com")
	f.Add("\x00staging-assets\x00")
	f.Add("")
	f.Fuzz(func(t *testing.T, ud string) {
		x, fr := cloneRig(t)
		fr.userData["staging-kv-lt"] = ud
		p, _, err := x.r.PlanClone(context.Background(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod"})
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("user data %q: %v, want a plan or a bad request", ud, err)
		}
		if p == nil {
			return
		}
		for _, u := range p.Unrewritable {
			if !strings.Contains(ud, u.Text) && !strings.Contains(x.cloud.groups["staging-kv"].Tags[strings.TrimSuffix(strings.TrimPrefix(u.Where, "tag "), " of group staging-kv")], u.Text) {
				t.Errorf("reference %q is in neither the user data nor %s", u.Text, u.Where)
			}
		}
		for _, r := range p.Rewrites {
			in := strings.Contains(ud, r.From)
			for _, v := range x.cloud.groups["staging-kv"].Tags {
				in = in || strings.Contains(v, r.From)
			}
			if !in {
				t.Errorf("rewrite of %q, found nowhere", r.From)
			}
		}
	})
}
