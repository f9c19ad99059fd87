// Package env is S3 of docs/design.md: environments. An environment is
// the set of resources tagged handover:environment=NAME (on AWS, or
// aws:cloudformation:stack-name=NAME with --stack): Auto Scaling groups
// with their launch templates, hooks and handover databases, load
// balancers with their listeners, target groups, RDS instances and S3
// buckets. This package finds them (Discover) and runs the operations on a
// whole environment as ledger records advanced one idempotent step at a
// time (standby, resume), so a process killed at any step resumes when run
// again.
//
// It must never act on a resource it did not find by the environment's
// tag, and never change a group a group update or a handover is working
// on.
package env

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Tags handover reads and writes on environment resources.
const (
	// TagEnvironment names the environment a resource belongs to.
	TagEnvironment = "handover:environment"
	// TagStack is the tag CloudFormation puts on every resource of a
	// stack; --stack selects an environment by it.
	TagStack = "aws:cloudformation:stack-name"
	// TagEntry marks the entry-point listener of an environment.
	TagEntry = "handover:entry"
)

// Selector is the tag that makes a resource a member of an environment.
type Selector struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ByName selects the environment tagged handover:environment=name.
func ByName(name string) Selector { return Selector{Key: TagEnvironment, Value: name} }

// ByStack selects the resources of a CloudFormation stack.
func ByStack(name string) Selector { return Selector{Key: TagStack, Value: name} }

func (s Selector) String() string { return s.Key + "=" + s.Value }

// Matches reports whether tags carry the selector.
func (s Selector) Matches(tags map[string]string) bool {
	v, ok := tags[s.Key]
	return ok && v == s.Value
}

// CheckName checks an environment name given on the command line. Names
// become tag values and parts of resource names (NAME-next), so they are
// kept to what every service accepts in a name.
func CheckName(name string) error {
	if name == "" {
		return errors.New("the environment name is empty: give the value of its handover:environment tag")
	}
	if len(name) > 64 {
		return fmt.Errorf("environment name %q is %d characters; at most 64", name, len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("environment name %q may hold only letters, digits and hyphens (it becomes part of resource names)", name)
		}
	}
	return nil
}

// Group is an Auto Scaling group of an environment.
type Group struct {
	Name                string             `json:"name"`
	Template            ledger.TemplateRef `json:"launch_template,omitzero"`
	LaunchConfiguration string             `json:"launch_configuration,omitempty"`
	Min                 int32              `json:"min_size"`
	Max                 int32              `json:"max_size"`
	Desired             int32              `json:"desired_capacity"`
	TargetGroups        []string           `json:"target_groups,omitempty"`
	Hooks               []Hook             `json:"hooks,omitempty"`
	Instances           []Instance         `json:"instances"`
	Tags                map[string]string  `json:"tags,omitempty"`
}

// Hook is a lifecycle hook of a group.
type Hook struct {
	Name       string `json:"name"`
	Transition string `json:"transition"`
	Metadata   string `json:"metadata,omitempty"`
}

// Instance is a member of a group.
type Instance struct {
	ID        string `json:"id"`
	Zone      string `json:"zone,omitempty"`
	Lifecycle string `json:"lifecycle"`
	Health    string `json:"health,omitempty"`
}

// Database is a handover database of one of the environment's groups: a
// persistent part, whose authoritative volume the ledger knows (none yet
// before its first boot).
type Database struct {
	ID       string `json:"id"`
	Group    string `json:"group"`
	Volume   string `json:"volume,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Instance string `json:"instance,omitempty"`
	Epoch    int64  `json:"epoch"`
	// Claim is the migration moving the database now, if any.
	Claim string `json:"claim,omitempty"`
}

// LoadBalancer is a load balancer of the environment with its listeners.
type LoadBalancer struct {
	ARN       string     `json:"arn"`
	Name      string     `json:"name"`
	DNSName   string     `json:"dns_name,omitempty"`
	Listeners []Listener `json:"listeners,omitempty"`
}

// Listener is a listener of an environment's load balancer.
type Listener struct {
	ARN         string `json:"arn"`
	Protocol    string `json:"protocol"`
	Port        int32  `json:"port"`
	TargetGroup string `json:"target_group,omitempty"` // the default action's forward target
	// Entry is set on the listener tagged handover:entry=true: the one a
	// migration switches.
	Entry bool `json:"entry,omitempty"`
}

// TargetGroup is a target group of the environment.
type TargetGroup struct {
	ARN  string `json:"arn"`
	Name string `json:"name"`
}

// DBInstance is an RDS instance of the environment, a persistent part.
type DBInstance struct {
	ID       string `json:"id"`
	Engine   string `json:"engine"`
	Status   string `json:"status"`
	Endpoint string `json:"endpoint,omitempty"` // host:port
}

// Bucket is an S3 bucket of the environment, a persistent part.
type Bucket struct {
	Name string `json:"name"`
}

// Inventory is everything an environment is made of.
type Inventory struct {
	Selector      Selector       `json:"selector"`
	Groups        []Group        `json:"groups"`
	Databases     []Database     `json:"databases"`
	LoadBalancers []LoadBalancer `json:"load_balancers"`
	TargetGroups  []TargetGroup  `json:"target_groups"`
	DBInstances   []DBInstance   `json:"rds_instances"`
	Buckets       []Bucket       `json:"buckets"`
}

// Empty reports whether nothing carries the environment's tag.
func (inv *Inventory) Empty() bool {
	return len(inv.Groups) == 0 && len(inv.LoadBalancers) == 0 && len(inv.TargetGroups) == 0 &&
		len(inv.DBInstances) == 0 && len(inv.Buckets) == 0
}

// GroupNames lists the environment's groups.
func (inv *Inventory) GroupNames() []string {
	out := make([]string, 0, len(inv.Groups))
	for _, g := range inv.Groups {
		out = append(out, g.Name)
	}
	return out
}

// Cloud is what discovery reads. Each method returns the resources that
// carry sel's tag, in a stable order, and an empty list (not an error)
// when there are none. All are reads: safe to repeat.
type Cloud interface {
	// TaggedGroups returns the groups with their instances and hooks.
	TaggedGroups(ctx context.Context, sel Selector) ([]Group, error)
	// TaggedLoadBalancers returns the load balancers with their listeners.
	TaggedLoadBalancers(ctx context.Context, sel Selector) ([]LoadBalancer, error)
	TaggedTargetGroups(ctx context.Context, sel Selector) ([]TargetGroup, error)
	TaggedDBInstances(ctx context.Context, sel Selector) ([]DBInstance, error)
	TaggedBuckets(ctx context.Context, sel Selector) ([]Bucket, error)
}

// Databases is the part of the ledger discovery reads.
type Databases interface {
	ListDatabases(ctx context.Context) ([]*ledger.Database, error)
}

// ErrUnknownEnvironment: no resource carries the environment's tag.
var ErrUnknownEnvironment = errors.New("unknown environment")

// Discover reads the environment sel selects. An environment nothing is
// tagged with is ErrUnknownEnvironment, saying how to tag one.
func Discover(ctx context.Context, c Cloud, dbs Databases, sel Selector) (*Inventory, error) {
	inv := &Inventory{Selector: sel}
	var err error
	if inv.Groups, err = c.TaggedGroups(ctx, sel); err != nil {
		return nil, fmt.Errorf("finding the groups tagged %s: %w", sel, err)
	}
	if inv.LoadBalancers, err = c.TaggedLoadBalancers(ctx, sel); err != nil {
		return nil, fmt.Errorf("finding the load balancers tagged %s: %w", sel, err)
	}
	if inv.TargetGroups, err = c.TaggedTargetGroups(ctx, sel); err != nil {
		return nil, fmt.Errorf("finding the target groups tagged %s: %w", sel, err)
	}
	if inv.DBInstances, err = c.TaggedDBInstances(ctx, sel); err != nil {
		return nil, fmt.Errorf("finding the RDS instances tagged %s: %w", sel, err)
	}
	if inv.Buckets, err = c.TaggedBuckets(ctx, sel); err != nil {
		return nil, fmt.Errorf("finding the buckets tagged %s: %w", sel, err)
	}
	if inv.Empty() {
		return nil, fmt.Errorf("%w %q: no group, load balancer, target group, RDS instance or bucket is tagged %s (tag the environment's resources with it, or check --endpoint-url and --region)", ErrUnknownEnvironment, sel.Value, sel)
	}
	if inv.Databases, err = databasesOf(ctx, dbs, inv.Groups); err != nil {
		return nil, err
	}
	return inv, nil
}

// databasesOf joins the groups with the ledger: a group's databases are
// those its launch hooks name and those the ledger places in it (a pool
// group holds many).
func databasesOf(ctx context.Context, dbs Databases, groups []Group) ([]Database, error) {
	all, err := dbs.ListDatabases(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the ledger's databases: %w", err)
	}
	known := map[string]*ledger.Database{}
	for _, d := range all {
		known[d.ID] = d
	}
	var out []Database
	seen := map[string]bool{}
	add := func(id, group string) {
		if seen[id] || known[id] != nil && known[id].Dropped() {
			return // a dropped database is no longer the environment's
		}
		seen[id] = true
		d := Database{ID: id, Group: group}
		if l := known[id]; l != nil {
			d.Volume, d.Zone, d.Instance, d.Epoch, d.Claim = l.Volume, l.Zone, l.Instance, l.Epoch, l.Claim
		}
		out = append(out, d)
	}
	for _, g := range groups {
		for _, h := range g.Hooks {
			if h.Transition != handover.TransitionLaunching {
				continue
			}
			md, err := handover.ParseMetadata(h.Metadata)
			if err != nil {
				continue // not a handover hook
			}
			if pool := md.Pool(); len(pool) > 0 {
				for _, id := range pool {
					add(id, g.Name)
				}
			} else if md.Database != "" {
				add(md.Database, g.Name)
			}
		}
		for _, d := range all {
			if d.Group == g.Name {
				add(d.ID, g.Name)
			}
		}
	}
	slices.SortFunc(out, func(a, b Database) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
