package env

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/ledger"
)

// CloneReader is what a clone's plan reads beyond discovery: the launch
// templates' user data, whether DST's physical names are free. All reads.
type CloneReader interface {
	// TemplateUserData returns the user data of the template version the
	// group launches from, decoded from base64 ("" when it has none).
	TemplateUserData(ctx context.Context, ref ledger.TemplateRef) (string, error)
	// Taken returns those of names that exist already in the account and
	// region (bucket names: anywhere S3 says they are owned).
	Taken(ctx context.Context, names []Resource) ([]Resource, error)
}

// Resource kinds a clone creates, as its plan names them.
const (
	KindLaunchTemplate = "launch-template"
	KindGroup          = "group"
	KindLoadBalancer   = "load-balancer"
	KindTargetGroup    = "target-group"
	KindRDS            = "rds"
	KindBucket         = "bucket"
	KindDatabase       = "database" // a handover database, in the ledger
)

// Resource is a resource by kind and physical name.
type Resource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (r Resource) String() string { return r.Kind + " " + r.Name }

// Quiesce modes of a clone.
const (
	QuiesceFence   = "fence"   // every database fenced; reads stay up
	QuiesceStandby = "standby" // every InService instance to Standby
)

// Set is one --set FROM=TO: the text FROM in SRC's user data and tags
// becomes TO in DST's.
type Set struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ParseSet reads a --set value, FROM=TO. TO may be empty (the reference
// is removed) and may hold "="; FROM may not be empty.
func ParseSet(s string) (Set, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" {
		return Set{}, fmt.Errorf("--set %q: want FROM=TO, the text in SRC's user data or tags and what it becomes in DST's (e.g. --set staging.example.com=prod.example.com)", s)
	}
	return Set{From: from, To: to}, nil
}

// CloneRequest is what handover env clone is asked.
type CloneRequest struct {
	Source  Selector
	Dest    string
	Quiesce string // QuiesceFence or QuiesceStandby; "" is fence
	Sets    []Set
	// NoManifests: do not read SRC's databases' content manifests at the
	// quiesce point (env clone --manifests=false); verify then compares
	// no volume.
	NoManifests bool
	// HoldQuiesce keeps SRC fenced when the clone ends (a migration's
	// clone: its migration lifts the fence after the cutover); Parent is
	// that migration, which is not an operation in SRC's way.
	HoldQuiesce bool
	Parent      string
}

// ClonePlan is what a clone will do: what --dry-run prints. Nothing in it
// has happened.
type ClonePlan struct {
	Source      string   `json:"source"`
	Selector    Selector `json:"selector"`
	Destination string   `json:"destination"`
	Quiesce     string   `json:"quiesce"`
	// Manifests: each fenced database's content manifest is read through
	// its fence route while the snapshots start, for env verify.
	Manifests bool `json:"manifests"`
	// HoldQuiesce: SRC stays fenced after the snapshots, until a
	// migration's cutover (see CloneRequest).
	HoldQuiesce bool `json:"hold_quiesce,omitempty"`
	// Parent is the migration whose clone this is (see CloneRequest).
	Parent string `json:"parent,omitempty"`
	// Fence lists the databases fenced under their current epochs (fence
	// mode); Standby the groups' standbys (standby mode).
	Fence   []FencePlan `json:"fence,omitempty"`
	Standby []GroupPlan `json:"standby,omitempty"`
	// Snapshots are started in parallel while SRC is quiesced; SRC is
	// un-quiesced once every one has started.
	Snapshots []SnapshotPlan `json:"snapshots"`
	// Copies run in parallel with the snapshots.
	Copies []CopyPlan `json:"bucket_copies"`
	// Creates are DST's resources, in the order they are made.
	Creates  []CreatePlan  `json:"creates"`
	Rewrites []RewritePlan `json:"rewrites"`
	// Unrewritable are references in SRC's user data or tags to resources
	// that are not SRC's and have no --set: the clone refuses them.
	Unrewritable []Reference `json:"unrewritable,omitempty"`
	// Notes are what the plan wants the operator to know.
	Notes []string `json:"notes,omitempty"`

	// userData is the user data of each of SRC's groups, as read; a
	// clone's record keeps it.
	userData map[string]string
}

// FencePlan is one database a fence quiesce fences.
type FencePlan struct {
	Database string `json:"database"`
	Group    string `json:"group"`
	Epoch    int64  `json:"epoch"`
	Volume   string `json:"volume"`
}

// SnapshotPlan is one snapshot a clone takes.
type SnapshotPlan struct {
	Kind string `json:"kind"` // ebs or rds
	// Of is the database (ebs) or RDS instance (rds) snapshotted.
	Of     string `json:"of"`
	Volume string `json:"volume,omitempty"`
	// For is the DST resource that starts from it.
	For string `json:"for"`
}

// CopyPlan is one bucket copy.
type CopyPlan struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// CreatePlan is one resource of DST.
type CreatePlan struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	From   string `json:"from"`             // SRC's resource it copies
	Detail string `json:"detail,omitempty"` // hooks, seed, listeners…
}

// RewritePlan is one reference rewritten in DST's user data and tags.
type RewritePlan struct {
	From string `json:"from"`
	// To is the text put in; empty until it is known (an RDS endpoint or
	// a load balancer's DNS name exists once DST's is made), ToOf says
	// whose it is then.
	To    string   `json:"to,omitempty"`
	ToOf  string   `json:"to_of,omitempty"`
	Why   string   `json:"why"`   // "bucket", "rds-endpoint", "lb-dns", "--set"
	Where []string `json:"where"` // "user data of group G", "tag K of group G"
}

// Reference is a reference to a resource found in SRC's user data or tags.
type Reference struct {
	Text  string `json:"text"`
	Kind  string `json:"kind"`
	Where string `json:"where"`
}

// ErrUnrewritable: SRC's user data or tags reference a resource that is
// not SRC's; the clone cannot tell what DST's should be.
var ErrUnrewritable = errors.New("references that cannot be rewritten")

// Names of a clone's resources. A SRC name holding SRC's name has it
// replaced by DST's (staging-orders → prod-orders); any other gets
// "-DST" appended. Bucket and RDS names are lowercase.
func cloneName(kind, name, src, dst string) string {
	d := dst
	if kind == KindBucket || kind == KindRDS {
		d = strings.ToLower(dst)
	}
	for _, s := range []string{src, strings.ToLower(src)} {
		if strings.Contains(name, s) {
			return strings.ReplaceAll(name, s, d)
		}
	}
	return name + "-" + d
}

var (
	lbName     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)
	rdsName    = regexp.MustCompile(`^[a-z]([a-z0-9]|-[a-z0-9]){0,62}$`)
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ltName     = regexp.MustCompile(`^[A-Za-z0-9()./_-]{3,128}$`)
)

// checkName says why name cannot be a kind's name, or nil.
func checkName(kind, name string) error {
	ok := true
	var rule string
	switch kind {
	case KindLoadBalancer, KindTargetGroup:
		ok, rule = lbName.MatchString(name), "1-32 letters, digits and hyphens, not starting or ending with a hyphen"
	case KindRDS:
		ok, rule = rdsName.MatchString(name), "1-63 lowercase letters, digits and single hyphens, starting with a letter"
	case KindBucket:
		ok, rule = bucketName.MatchString(name) && !strings.Contains(name, ".."), "3-63 lowercase letters, digits, dots and hyphens"
	case KindLaunchTemplate:
		ok, rule = ltName.MatchString(name), "3-128 letters, digits and ()./_-"
	case KindGroup:
		ok, rule = name != "" && len(name) <= 255, "1-255 characters"
	case KindDatabase:
		ok, rule = name != "" && len(name) <= 128 && !strings.ContainsAny(name, " \t\n/"), "1-128 characters without spaces or slashes"
	}
	if !ok {
		return fmt.Errorf("%s name %q would not be valid (%s)", kind, name, rule)
	}
	return nil
}

// Patterns of references to AWS resources in user data and tags, to find
// those that are not SRC's.
var refPatterns = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"rds-endpoint", regexp.MustCompile(`[a-z][a-z0-9-]*\.[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com(:[0-9]+)?`)},
	{"lb-dns", regexp.MustCompile(`[A-Za-z0-9-]+\.(?:[a-z0-9-]+\.)?elb\.amazonaws\.com`)},
	{"bucket", regexp.MustCompile(`s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])`)},
	{"bucket", regexp.MustCompile(`arn:aws:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])`)},
	{"bucket", regexp.MustCompile(`([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com`)},
}

// text is one place a clone rewrites: a group's user data or a tag.
type text struct {
	where, body string
}

// PlanClone reads SRC and returns what cloning it into DST will do. It
// refuses, naming the fix, an unknown SRC, a DST that exists (tagged
// resources, or any of the physical names it would take), a group of SRC
// mid-update or mid-handover, an operation under way on SRC, a name that
// would be invalid, a --set that matches nothing, and references it cannot
// rewrite (the plan is returned with them listed).
func (r *Runner) PlanClone(ctx context.Context, cr CloneReader, req CloneRequest) (*ClonePlan, *Inventory, error) {
	src, dst := req.Source.Value, req.Dest
	if err := CheckName(src); err != nil {
		return nil, nil, badRequest{err}
	}
	if err := CheckName(dst); err != nil {
		return nil, nil, badRequest{err}
	}
	if dst == src {
		return nil, nil, badRequestf("SRC and DST are both %s: a clone needs a new environment's name", src)
	}
	switch req.Quiesce {
	case "":
		req.Quiesce = QuiesceFence
	case QuiesceFence, QuiesceStandby:
	default:
		return nil, nil, badRequestf("--quiesce %q: want fence (databases fenced, reads stay up) or standby (instances to Standby)", req.Quiesce)
	}
	inv, err := Discover(ctx, r.disc, r.led, req.Source)
	if err != nil {
		return nil, nil, err
	}
	if _, err := Discover(ctx, r.disc, r.led, ByName(dst)); err == nil {
		return nil, nil, badRequestf("environment %s exists (resources are tagged %s): choose another DST, or see it with handover env show %s", dst, ByName(dst), dst)
	} else if !errors.Is(err, ErrUnknownEnvironment) {
		return nil, nil, fmt.Errorf("checking that environment %s does not exist: %w", dst, err)
	}
	if err := busy(ctx, r.led, inv.GroupNames()); err != nil {
		return nil, nil, fmt.Errorf("environment %s: %w", src, err)
	}
	ops, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: src, Unfinished: true})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the operations of environment %s: %w", src, err)
	}
	ops = slices.DeleteFunc(ops, func(o *ledger.EnvOp) bool { return req.Parent != "" && o.ID == req.Parent })
	if len(ops) > 0 {
		return nil, nil, fmt.Errorf("%w: environment %s has %s operation %s under way (%s): resume or finish it first", ErrBusy, src, ops[0].Op, ops[0].ID, ops[0].Phase)
	}
	for _, d := range inv.Databases {
		if d.Claim != "" {
			return nil, nil, fmt.Errorf("%w: environment %s: database %s is being moved (handover %s); wait for it to end (handover status)", ErrBusy, src, d.ID, d.Claim)
		}
	}

	if req.HoldQuiesce && req.Quiesce != QuiesceFence {
		return nil, nil, badRequestf("a clone that holds its quiesce fences SRC's databases (reads stay up); --quiesce %s cannot be held", req.Quiesce)
	}
	p := &ClonePlan{Source: src, Selector: req.Source, Destination: dst, Quiesce: req.Quiesce, HoldQuiesce: req.HoldQuiesce, Parent: req.Parent,
		Snapshots: []SnapshotPlan{}, Copies: []CopyPlan{}, Creates: []CreatePlan{}, Rewrites: []RewritePlan{}}
	name := func(kind, n string) string { return cloneName(kind, n, src, dst) }
	var bad []string
	create := func(c CreatePlan) {
		if err := checkName(c.Kind, c.Name); err != nil {
			bad = append(bad, err.Error())
		}
		p.Creates = append(p.Creates, c)
	}

	// Quiesce.
	switch req.Quiesce {
	case QuiesceFence:
		for _, d := range inv.Databases {
			if d.Volume != "" {
				p.Fence = append(p.Fence, FencePlan{Database: d.ID, Group: d.Group, Epoch: d.Epoch, Volume: d.Volume})
			}
		}
		switch {
		case len(p.Fence) > 0 && req.HoldQuiesce:
			p.Notes = append(p.Notes, "fence: writes to the databases pause (refused with 503 and Retry-After) until the migration's cutover; reads stay up")
		case len(p.Fence) > 0:
			p.Notes = append(p.Notes, "fence: writes to the databases pause until every EBS snapshot has started; reads stay up")
			p.Manifests = !req.NoManifests
			if p.Manifests {
				p.Notes = append(p.Notes, "manifests: each database's content manifest is read while it is fenced, in parallel with the snapshot starts, for env verify (--manifests=false skips it)")
			}
		}
	case QuiesceStandby:
		for _, g := range inv.Groups {
			p.Standby = append(p.Standby, planGroup(g))
		}
		p.Notes = append(p.Notes, "standby: the groups' instances leave traffic (reads too) until every snapshot has started; MinSize and DesiredCapacity are restored exactly")
	}

	// Snapshots and what starts from them.
	dbOf := map[string]string{}
	for _, d := range inv.Databases {
		dbOf[d.ID] = name(KindDatabase, d.ID)
	}
	for _, d := range inv.Databases {
		if d.Volume == "" {
			p.Notes = append(p.Notes, fmt.Sprintf("database %s has not booted (no authoritative volume): DST's %s first-boots as its hooks say, with no seed from SRC", d.ID, dbOf[d.ID]))
			continue
		}
		p.Snapshots = append(p.Snapshots, SnapshotPlan{Kind: "ebs", Of: d.ID, Volume: d.Volume, For: dbOf[d.ID]})
	}
	rdsOf := map[string]string{}
	for _, d := range inv.DBInstances {
		rdsOf[d.ID] = name(KindRDS, d.ID)
		p.Snapshots = append(p.Snapshots, SnapshotPlan{Kind: "rds", Of: d.ID, For: rdsOf[d.ID]})
		if d.Status != "available" {
			// RDS snapshots only an available instance.
			p.Notes = append(p.Notes, fmt.Sprintf("RDS instance %s is %s: the clone waits for it to be available before it quiesces SRC (RDS snapshots only an available instance)", d.ID, d.Status))
		}
	}
	bucketOf := map[string]string{}
	for _, b := range inv.Buckets {
		bucketOf[b.Name] = name(KindBucket, b.Name)
		p.Copies = append(p.Copies, CopyPlan{From: b.Name, To: bucketOf[b.Name]})
	}
	if len(p.Copies) > 0 {
		p.Notes = append(p.Notes, "buckets: current object versions only (not older versions); each object's checksum is compared, not its size and time")
	}

	// DST's resources.
	tgOf := map[string]string{}
	for _, tg := range inv.TargetGroups {
		tgOf[tg.ARN] = name(KindTargetGroup, tg.Name)
		create(CreatePlan{Kind: KindTargetGroup, Name: tgOf[tg.ARN], From: tg.Name})
	}
	for _, lb := range inv.LoadBalancers {
		var ls []string
		for _, l := range lb.Listeners {
			to := "(no forward target)"
			if l.TargetGroup != "" {
				to = tgOf[l.TargetGroup]
				if to == "" {
					to = lastSegment(l.TargetGroup)
					bad = append(bad, fmt.Sprintf("listener %s:%d of load balancer %s forwards to target group %s, which is not tagged %s: tag it so DST gets its own", l.Protocol, l.Port, lb.Name, to, req.Source))
				}
			}
			entry := ""
			if l.Entry {
				entry = " (entry point)"
			}
			ls = append(ls, fmt.Sprintf("%s:%d -> %s%s", l.Protocol, l.Port, to, entry))
		}
		create(CreatePlan{Kind: KindLoadBalancer, Name: name(KindLoadBalancer, lb.Name), From: lb.Name, Detail: strings.Join(ls, ", ")})
	}
	for _, d := range inv.DBInstances {
		create(CreatePlan{Kind: KindRDS, Name: rdsOf[d.ID], From: d.ID, Detail: "restored from the snapshot of " + d.ID})
	}
	for _, b := range inv.Buckets {
		create(CreatePlan{Kind: KindBucket, Name: bucketOf[b.Name], From: b.Name})
	}
	var texts []text
	for _, g := range inv.Groups {
		if g.Template.ID == "" && g.Template.Name == "" {
			return nil, nil, badRequestf("group %s launches from launch configuration %s: a clone copies launch templates only (move the group to a launch template first)", g.Name, g.LaunchConfiguration)
		}
		lt := g.Template.Name
		if lt == "" {
			lt = g.Template.ID
		}
		ud, err := cr.TemplateUserData(ctx, g.Template)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the user data of launch template %s version %s (group %s): %w", lt, g.Template.Version, g.Name, err)
		}
		if ud != "" {
			texts = append(texts, text{where: "user data of launch template " + lt, body: ud})
			if p.userData == nil {
				p.userData = map[string]string{}
			}
			p.userData[g.Name] = ud
		}
		for _, k := range sortedKeys(g.Tags) {
			if k == req.Source.Key || k == TagEnvironment || strings.HasPrefix(k, "aws:") {
				continue
			}
			texts = append(texts, text{where: fmt.Sprintf("tag %s of group %s", k, g.Name), body: g.Tags[k]})
		}
		ltName := name(KindLaunchTemplate, lt)
		create(CreatePlan{Kind: KindLaunchTemplate, Name: ltName, From: fmt.Sprintf("%s version %s", lt, orDefault(g.Template.Version, "$Default")), Detail: "user data rewritten, tagged " + ByName(dst).String()})
		var hooks []string
		for _, h := range g.Hooks {
			hooks = append(hooks, h.Name+" "+cloneMetadata(h, dbOf))
		}
		var tgs []string
		for _, arn := range g.TargetGroups {
			if to := tgOf[arn]; to != "" {
				tgs = append(tgs, to)
			} else {
				bad = append(bad, fmt.Sprintf("group %s is attached to target group %s, which is not tagged %s: tag it so DST gets its own", g.Name, lastSegment(arn), req.Source))
			}
		}
		detail := fmt.Sprintf("from %s; min %d desired %d max %d", ltName, g.Min, g.Desired, g.Max)
		if len(hooks) > 0 {
			detail += "; hooks " + strings.Join(hooks, ", ")
		}
		if len(tgs) > 0 {
			detail += "; target groups " + strings.Join(tgs, ", ")
		}
		create(CreatePlan{Kind: KindGroup, Name: name(KindGroup, g.Name), From: g.Name, Detail: detail})
	}
	for _, d := range inv.Databases {
		seed := "no seed (SRC's has not booted)"
		if d.Volume != "" {
			seed = "first boot from the snapshot of " + d.Volume
		}
		create(CreatePlan{Kind: KindDatabase, Name: dbOf[d.ID], From: d.ID, Detail: seed})
	}
	if len(bad) > 0 {
		return nil, nil, badRequestf("cloning %s into %s: %s (a shorter DST name, or tag what it names)", src, dst, strings.Join(bad, "; "))
	}

	// References to rewrite: SRC's buckets, RDS endpoints and load
	// balancers' DNS names, then --set, longest first so one reference
	// inside another is not cut.
	type known struct {
		to, toOf, why string
	}
	refs := map[string]known{}
	for _, b := range inv.Buckets {
		refs[b.Name] = known{to: bucketOf[b.Name], why: "bucket"}
	}
	for _, d := range inv.DBInstances {
		if d.Endpoint == "" {
			continue
		}
		of := "the endpoint of " + rdsOf[d.ID]
		refs[d.Endpoint] = known{toOf: of + " (host:port)", why: "rds-endpoint"}
		if host, _, ok := strings.Cut(d.Endpoint, ":"); ok && distinctive(host) {
			refs[host] = known{toOf: of + " (host)", why: "rds-endpoint"}
		}
	}
	for _, lb := range inv.LoadBalancers {
		if lb.DNSName == "" {
			continue
		}
		of := "the DNS name of " + name(KindLoadBalancer, lb.Name)
		if distinctive(lb.DNSName) {
			refs[lb.DNSName] = known{toOf: of, why: "lb-dns"}
		}
		for _, l := range lb.Listeners {
			refs[fmt.Sprintf("%s:%d", lb.DNSName, l.Port)] = known{toOf: fmt.Sprintf("%s and the port of its %s:%d listener", of, l.Protocol, l.Port), why: "lb-dns"}
		}
	}
	for _, s := range req.Sets {
		refs[s.From] = known{to: s.To, why: "--set"}
	}
	froms := make([]string, 0, len(refs))
	for k := range refs {
		froms = append(froms, k)
	}
	slices.SortFunc(froms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	for _, from := range froms {
		k := refs[from]
		rw := RewritePlan{From: from, To: k.to, ToOf: k.toOf, Why: k.why, Where: []string{}}
		for i := range texts {
			// Blanked, so a shorter reference inside is not counted twice.
			body, found := blank(texts[i].body, from, k.why != "--set")
			if found {
				rw.Where = append(rw.Where, texts[i].where)
				texts[i].body = body
			}
		}
		if len(rw.Where) == 0 {
			if k.why == "--set" {
				return nil, nil, badRequestf("--set %s=%s: %q appears in none of %s's user data or tags; check its spelling (the plan lists where each reference is)", from, k.to, from, src)
			}
			continue
		}
		p.Rewrites = append(p.Rewrites, rw)
	}
	for _, t := range texts {
		for _, pat := range refPatterns {
			for _, m := range pat.re.FindAllString(t.body, -1) {
				p.Unrewritable = append(p.Unrewritable, Reference{Text: m, Kind: pat.kind, Where: t.where})
			}
		}
	}

	// DST's physical names must be free.
	var names []Resource
	for _, c := range p.Creates {
		if c.Kind == KindDatabase {
			continue
		}
		names = append(names, Resource{Kind: c.Kind, Name: c.Name})
	}
	taken, err := cr.Taken(ctx, names)
	if err != nil {
		return nil, nil, fmt.Errorf("checking that DST's names are free: %w", err)
	}
	all, err := r.led.ListDatabases(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the ledger's databases: %w", err)
	}
	for _, c := range p.Creates {
		if c.Kind == KindDatabase && slices.ContainsFunc(all, func(d *ledger.Database) bool { return d.ID == c.Name && !d.Dropped() }) {
			taken = append(taken, Resource{Kind: KindDatabase, Name: c.Name})
		}
	}
	if len(taken) > 0 {
		var ts []string
		for _, t := range taken {
			ts = append(ts, t.String())
		}
		return nil, nil, badRequestf("cloning %s into %s would create %s, and the name is taken: choose another DST (names are SRC's with %s replaced by %s, or with -%s appended)", src, dst, strings.Join(ts, ", "), src, dst, dst)
	}
	if len(p.Unrewritable) > 0 {
		var us []string
		for _, u := range p.Unrewritable {
			us = append(us, fmt.Sprintf("%s (%s, in %s)", u.Text, u.Kind, u.Where))
		}
		return p, inv, badRequest{fmt.Errorf("%w: %s's user data and tags reference resources not tagged %s: %s. Tag each with %s so it is cloned, or give --set REF=REF to keep DST using it, or --set REF=NEW", ErrUnrewritable, src, req.Source, strings.Join(us, "; "), req.Source)}
	}
	return p, inv, nil
}

// blank replaces each occurrence of from in body with NULs and reports
// whether there was one. bounded takes only occurrences that are a whole
// name: staging-assets in s3://staging-assets/x or
// staging-assets.s3.amazonaws.com, not in s3://staging-assets-old (another
// bucket, which is then reported rather than guessed at). A --set is taken
// wherever it appears: the operator wrote it.
func blank(body, from string, bounded bool) (string, bool) {
	var b strings.Builder
	found := false
	for rest := body; ; {
		i := strings.Index(rest, from)
		if i < 0 {
			b.WriteString(rest)
			break
		}
		end := i + len(from)
		before := len(body) - len(rest) + i
		ok := !bounded || (before == 0 || !nameByte(body[before-1], true)) && (end == len(rest) || !nameByte(rest[end], false))
		b.WriteString(rest[:i])
		if ok {
			b.WriteString(strings.Repeat("\x00", len(from)))
			found = true
		} else {
			b.WriteString(from)
		}
		rest = rest[end:]
	}
	return b.String(), found
}

// nameByte reports whether c continues a name: letters, digits, '-' and
// '_', and before a name also '.' (sub.staging-assets is another name;
// staging-assets.s3.amazonaws.com is the bucket).
func nameByte(c byte, before bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || before && c == '.'
}

// distinctive reports whether a host name names one resource alone: an
// address (the local cloud's 127.0.0.1) or localhost is shared by every
// endpoint on it, so only host:port is rewritten there.
func distinctive(host string) bool {
	return net.ParseIP(host) == nil && host != "localhost"
}

// cloneMetadata is what the plan says of a DST hook's metadata.
func cloneMetadata(h Hook, dbOf map[string]string) string {
	if md, ok := cloneHookMetadata(h, dbOf); ok {
		return md
	}
	return "(metadata copied)"
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// lastSegment shortens a target group ARN to its name.
func lastSegment(arn string) string {
	parts := strings.Split(arn, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return arn
}
