package env

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/handover-dev/handover/internal/handover"
)

// fakeCloud is env.Cloud and env.StandbyCloud over groups kept in memory,
// with Auto Scaling's rules for Standby: EnterStandby takes only InService
// instances, at most 20, and refuses a decrement below MinSize;
// ExitStandby takes only Standby instances and refuses to go above
// MaxSize; both return before the instances arrive (the next Describe
// moves EnteringStandby to Standby and Pending to InService); MinSize above
// DesiredCapacity is refused unless DesiredCapacity is raised with it.
type fakeCloud struct {
	mu     sync.Mutex
	groups map[string]*Group
	// Inventory parts other than groups.
	lbs     []LoadBalancer
	tgs     []TargetGroup
	rds     []DBInstance
	buckets []Bucket
	tagged  map[string]string // group → environment
	// prodLBs are load balancers a clone made, tagged prod.
	prodLBs []LoadBalancer

	// crashAt, when positive, makes the crashAt-th mutating call fail
	// with errCrash, before its effect when crashBefore, else after it.
	calls       int
	crashAt     int
	crashBefore bool
	// onCrash, when set, is called at the crash too: a test's kill of
	// the process's context.
	onCrash func()
	// log records every mutating call, in order.
	log []string
	// settle makes instances arrive only after this many Describes.
	settle int
	ticks  map[string]int
}

var errCrash = errors.New("process killed")

var (
	_ Cloud        = (*fakeCloud)(nil)
	_ StandbyCloud = (*fakeCloud)(nil)
)

func newFakeCloud() *fakeCloud {
	return &fakeCloud{groups: map[string]*Group{}, tagged: map[string]string{}, ticks: map[string]int{}}
}

// addGroup adds a group of the environment with n InService instances
// and pending Pending ones.
func (f *fakeCloud) addGroup(envName, name string, min, max int32, n, pending int) {
	g := &Group{Name: name, Min: min, Max: max, Desired: int32(n + pending), Tags: map[string]string{TagEnvironment: envName}}
	for i := range n + pending {
		lc := lcInService
		if i >= n {
			lc = "Pending"
		}
		g.Instances = append(g.Instances, Instance{ID: fmt.Sprintf("i-%s-%02d", name, i), Zone: "us-east-1a", Lifecycle: lc, Health: "Healthy"})
	}
	f.groups[name] = g
	f.tagged[name] = envName
}

func (f *fakeCloud) mutate(what string, effect func() error) error {
	f.calls++
	crash := f.crashAt > 0 && f.calls == f.crashAt
	if crash && f.onCrash != nil {
		defer f.onCrash()
	}
	if crash && f.crashBefore {
		return errCrash
	}
	if err := effect(); err != nil {
		return err
	}
	f.log = append(f.log, what)
	if crash {
		return errCrash
	}
	return nil
}

func (f *fakeCloud) TaggedGroups(_ context.Context, sel Selector) ([]Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Group
	for name, g := range f.groups {
		if sel.Matches(g.Tags) {
			out = append(out, f.copyLocked(name))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// The other parts belong to the environment staging.
func staging(sel Selector) bool { return sel == ByName("staging") }

func (f *fakeCloud) TaggedLoadBalancers(_ context.Context, sel Selector) ([]LoadBalancer, error) {
	if sel == ByName("prod") {
		return f.prodLBs, nil
	}
	if !staging(sel) {
		return nil, nil
	}
	return f.lbs, nil
}

func (f *fakeCloud) TaggedTargetGroups(_ context.Context, sel Selector) ([]TargetGroup, error) {
	if !staging(sel) {
		return nil, nil
	}
	return f.tgs, nil
}

func (f *fakeCloud) TaggedDBInstances(_ context.Context, sel Selector) ([]DBInstance, error) {
	if !staging(sel) {
		return nil, nil
	}
	return f.rds, nil
}

func (f *fakeCloud) TaggedBuckets(_ context.Context, sel Selector) ([]Bucket, error) {
	if !staging(sel) {
		return nil, nil
	}
	return f.buckets, nil
}

func (f *fakeCloud) copyLocked(name string) Group {
	g := *f.groups[name]
	g.Instances = slices.Clone(g.Instances)
	return g
}

func (f *fakeCloud) DescribeGroup(_ context.Context, name string) (Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[name]
	if !ok {
		return Group{}, fmt.Errorf("describing group %s: %w", name, handover.ErrNotFound)
	}
	f.ticks[name]++
	if f.ticks[name] > f.settle {
		f.ticks[name] = 0
		for i := range g.Instances {
			switch g.Instances[i].Lifecycle {
			case lcEnteringStandby:
				g.Instances[i].Lifecycle = lcStandby
			case "Pending":
				g.Instances[i].Lifecycle = lcInService
			}
		}
	}
	return f.copyLocked(name), nil
}

func (f *fakeCloud) SetCapacity(_ context.Context, group string, min, desired int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutate(fmt.Sprintf("SetCapacity %s min=%d desired=%d", group, min, desired), func() error {
		g := f.groups[group]
		d := g.Desired
		if desired >= 0 {
			d = desired
		}
		if min > d || d > g.Max {
			return fmt.Errorf("ValidationError: MinSize %d, DesiredCapacity %d, MaxSize %d: %w", min, d, g.Max, handover.ErrInvalid)
		}
		g.Min, g.Desired = min, d
		return nil
	})
}

func (f *fakeCloud) EnterStandby(_ context.Context, group string, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutate(fmt.Sprintf("EnterStandby %s %d", group, len(ids)), func() error {
		g := f.groups[group]
		if len(ids) > MaxStandbyBatch {
			return fmt.Errorf("ValidationError: %d instances, at most 20: %w", len(ids), handover.ErrInvalid)
		}
		for _, id := range ids {
			i := slices.IndexFunc(g.Instances, func(x Instance) bool { return x.ID == id })
			if i < 0 || g.Instances[i].Lifecycle != lcInService {
				return fmt.Errorf("ValidationError: The instance %s is not in InService: %w", id, handover.ErrInvalid)
			}
		}
		if g.Desired-int32(len(ids)) < g.Min {
			return fmt.Errorf("ValidationError: below min size: %w", handover.ErrInvalid)
		}
		for _, id := range ids {
			i := slices.IndexFunc(g.Instances, func(x Instance) bool { return x.ID == id })
			g.Instances[i].Lifecycle = lcEnteringStandby
		}
		g.Desired -= int32(len(ids))
		return nil
	})
}

func (f *fakeCloud) ExitStandby(_ context.Context, group string, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutate(fmt.Sprintf("ExitStandby %s %d", group, len(ids)), func() error {
		g := f.groups[group]
		if len(ids) > MaxStandbyBatch {
			return fmt.Errorf("ValidationError: %d instances, at most 20: %w", len(ids), handover.ErrInvalid)
		}
		for _, id := range ids {
			i := slices.IndexFunc(g.Instances, func(x Instance) bool { return x.ID == id })
			if i < 0 || g.Instances[i].Lifecycle != lcStandby {
				return fmt.Errorf("ValidationError: The instance %s is not in Standby: %w", id, handover.ErrInvalid)
			}
		}
		if g.Desired+int32(len(ids)) > g.Max {
			return fmt.Errorf("ValidationError: above max size: %w", handover.ErrInvalid)
		}
		for _, id := range ids {
			i := slices.IndexFunc(g.Instances, func(x Instance) bool { return x.ID == id })
			g.Instances[i].Lifecycle = "Pending"
		}
		g.Desired += int32(len(ids))
		return nil
	})
}

// capacity is a group's (min, desired, max) and how many instances are
// in each lifecycle state.
type capacity struct {
	Min, Desired, Max int32
	States            map[string]int
}

func (f *fakeCloud) capacity(name string) capacity {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[name]
	c := capacity{Min: g.Min, Desired: g.Desired, Max: g.Max, States: map[string]int{}}
	for _, i := range g.Instances {
		c.States[i.Lifecycle]++
	}
	return c
}
