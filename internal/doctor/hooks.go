package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
)

// group is an Auto Scaling group handover serves, with its hooks whose
// names start with the hook prefix.
type group struct {
	Name  string
	Hooks []hook
	// Channel is the group's handover:channel tag ("" for none): it joins
	// the group to a release channel its hook's metadata need not name.
	Channel string
}

type hook struct {
	Name, Transition, DefaultResult, Metadata string
	// Target is the hook's NotificationTargetARN ("" for none).
	Target  string
	Timeout time.Duration
}

func (g group) hooks(transition string) []hook {
	var out []hook
	for _, h := range g.Hooks {
		if h.Transition == transition {
			out = append(out, h)
		}
	}
	return out
}

// checkGroups finds the groups handover serves as the controller does
// (the named ones and their replace-all replacements, or every group with
// handover's hooks) and checks each one's hooks, launch metadata and
// heartbeat timeouts. It returns the rows, to be shown after the rules.
func (a *audit) checkGroups(ctx context.Context) []Result {
	names, channels, err := a.listGroups(ctx)
	if err != nil {
		return []Result{{Check: "hooks", Status: Fail, Detail: "could not list the Auto Scaling groups: " + err.Error(),
			Fix: "run doctor again; the credentials need autoscaling:DescribeAutoScalingGroups and DescribeLifecycleHooks"}}
	}
	var rows []Result
	for _, name := range names {
		g, err := a.readHooks(ctx, name, channels[name])
		if err != nil {
			rows = append(rows, Result{Check: "hooks/" + name, Status: Fail, Detail: "could not read its lifecycle hooks: " + err.Error(),
				Fix: "run doctor again; the credentials need autoscaling:DescribeLifecycleHooks"})
			continue
		}
		if len(a.cfg.Groups) == 0 && len(g.Hooks) == 0 {
			continue // not a group handover serves
		}
		a.served = append(a.served, g)
	}
	for _, want := range a.cfg.Groups {
		if !slices.ContainsFunc(names, func(n string) bool { return served(want, n) }) {
			rows = append(rows, Result{Check: "hooks/" + want, Status: Fail,
				Detail: fmt.Sprintf("there is no Auto Scaling group %s (nor a replace-all replacement %s-…)", want, want),
				Fix:    "create the group, or correct --group (HANDOVER_GROUP)"})
		}
	}
	if len(a.cfg.Groups) == 0 && len(a.served) == 0 {
		rows = append(rows, Result{Check: "hooks", Status: Fail,
			Detail: fmt.Sprintf("no Auto Scaling group has a lifecycle hook whose name starts with %q", a.cfg.HookPrefix),
			Fix:    "put handover's hooks on the groups it serves (docs/deploy-aws.md, section 3), or name them with --group"})
	}
	for _, g := range a.served {
		rows = append(rows, a.hookRows(g)...)
	}
	return rows
}

// served reports whether the group called name is want or one of its
// replace-all replacements, as the controller's --group reads it.
func served(want, name string) bool { return name == want || strings.HasPrefix(name, want+"-") }

// listGroups returns the names of the groups to audit, and each one's
// handover:channel tag.
func (a *audit) listGroups(ctx context.Context) ([]string, map[string]string, error) {
	var names []string
	channels := map[string]string{}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(a.deps.AutoScaling, &autoscaling.DescribeAutoScalingGroupsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, g := range page.AutoScalingGroups {
			name := aws.ToString(g.AutoScalingGroupName)
			if len(a.cfg.Groups) == 0 || slices.ContainsFunc(a.cfg.Groups, func(w string) bool { return served(w, name) }) {
				names = append(names, name)
				for _, t := range g.Tags {
					if aws.ToString(t.Key) == handover.TagGroupChannel {
						channels[name] = aws.ToString(t.Value)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names, channels, nil
}

func (a *audit) readHooks(ctx context.Context, name, channel string) (group, error) {
	out, err := a.deps.AutoScaling.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(name)})
	if err != nil {
		return group{}, err
	}
	g := group{Name: name, Channel: channel}
	for _, h := range out.LifecycleHooks {
		if !strings.HasPrefix(aws.ToString(h.LifecycleHookName), a.cfg.HookPrefix) {
			continue
		}
		g.Hooks = append(g.Hooks, hook{
			Name: aws.ToString(h.LifecycleHookName), Transition: aws.ToString(h.LifecycleTransition),
			DefaultResult: aws.ToString(h.DefaultResult), Metadata: aws.ToString(h.NotificationMetadata),
			Target: aws.ToString(h.NotificationTargetARN), Timeout: time.Duration(aws.ToInt32(h.HeartbeatTimeout)) * time.Second,
		})
	}
	slices.SortFunc(g.Hooks, func(x, y hook) int { return strings.Compare(x.Name, y.Name) })
	return g, nil
}

// hookRows are a served group's rows: its hooks, its launch metadata and
// its heartbeat timeouts.
func (a *audit) hookRows(g group) []Result {
	launch, term := g.hooks(events.TransitionLaunching), g.hooks(events.TransitionTerminating)
	timeout := a.suggestedTimeout()
	put := func(name, transition, result string, extra string) string {
		return fmt.Sprintf("aws autoscaling put-lifecycle-hook --auto-scaling-group-name %s --lifecycle-hook-name %s --lifecycle-transition %s --heartbeat-timeout %d --default-result %s%s",
			g.Name, name, transition, int(timeout/time.Second), result, extra)
	}
	var rows []Result
	var missing, fixes, parts []string
	if len(launch) == 0 {
		missing = append(missing, "launch")
		fixes = append(fixes, put(a.cfg.HookPrefix+"-launch", events.TransitionLaunching, "ABANDON", fmt.Sprintf(` --notification-metadata '{"database":"%s"}'`, g.Name)))
	}
	if len(term) == 0 {
		missing = append(missing, "terminate")
		fixes = append(fixes, put(a.cfg.HookPrefix+"-terminate", events.TransitionTerminating, "CONTINUE", ""))
	}
	for _, h := range g.Hooks {
		parts = append(parts, fmt.Sprintf("%s (%s, %s, %s)", h.Name, strings.TrimPrefix(h.Transition, "autoscaling:"), h.DefaultResult, h.Timeout))
	}
	check := "hooks/" + g.Name
	switch {
	case len(missing) > 0:
		detail := fmt.Sprintf("no %s hook whose name starts with %q", strings.Join(missing, " or "), a.cfg.HookPrefix)
		if len(parts) > 0 {
			detail += "; it has " + strings.Join(parts, ", ")
		}
		rows = append(rows, Result{Check: check, Status: Fail, Detail: detail, Fix: strings.Join(fixes, " && ")})
	case slices.ContainsFunc(launch, func(h hook) bool { return h.DefaultResult != "ABANDON" }):
		rows = append(rows, Result{Check: check, Status: Warn,
			Detail: strings.Join(parts, ", ") + ": a launch hook that times out CONTINUEs, so a launch nobody handled comes up without its data",
			Fix:    fmt.Sprintf("aws autoscaling put-lifecycle-hook --auto-scaling-group-name %s --lifecycle-hook-name %s --default-result ABANDON", g.Name, launch[0].Name)})
	default:
		rows = append(rows, Result{Check: check, Status: OK, Detail: strings.Join(parts, ", ")})
	}

	check = "metadata/" + g.Name
	if len(launch) == 0 {
		rows = append(rows, Result{Check: check, Status: Skip, Detail: "not checked: the group has no launch hook"})
	} else {
		var bad, good []string
		for _, h := range launch {
			md, err := handover.ParseLaunchMetadata(h.Metadata, g.Channel)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", h.Name, err))
				continue
			}
			good = append(good, fmt.Sprintf("%s: %s", h.Name, describeMetadata(md)))
		}
		if len(bad) > 0 {
			rows = append(rows, Result{Check: check, Status: Fail,
				Detail: strings.Join(bad, "; ") + " (the controller abandons every launch of such a hook)",
				Fix: fmt.Sprintf(`aws autoscaling put-lifecycle-hook --auto-scaling-group-name %s --lifecycle-hook-name %s --notification-metadata '{"database":"ID"}' (or {"databases":["ID",…]} for a pool)`,
					g.Name, launch[0].Name)})
		} else {
			rows = append(rows, Result{Check: check, Status: OK, Detail: strings.Join(good, "; ")})
		}
	}

	check = "heartbeat/" + g.Name
	if len(g.Hooks) == 0 {
		rows = append(rows, Result{Check: check, Status: Skip, Detail: "not checked: the group has no handover hooks"})
		return rows
	}
	worst := Result{Check: check, Status: OK}
	var notes, beatFixes []string
	for _, h := range g.Hooks {
		st, why := heartbeatFit(h.Timeout, a.cfg.AdvanceEvery, a.cfg.ReconcileEvery)
		if st == OK {
			continue
		}
		notes = append(notes, h.Name+": "+why)
		beatFixes = append(beatFixes, fmt.Sprintf("aws autoscaling put-lifecycle-hook --auto-scaling-group-name %s --lifecycle-hook-name %s --heartbeat-timeout %d",
			g.Name, h.Name, int(timeout/time.Second)))
		if st == Fail || worst.Status == OK {
			worst.Status = st
		}
	}
	rule := fitRule(a.cfg.AdvanceEvery, a.cfg.ReconcileEvery)
	if worst.Status == OK {
		var ts []string
		for _, h := range g.Hooks {
			ts = append(ts, h.Timeout.String())
		}
		worst.Detail = fmt.Sprintf("timeouts %s fit: %s", strings.Join(slices.Compact(ts), ", "), rule)
		return append(rows, worst)
	}
	worst.Detail = strings.Join(notes, "; ") + "; " + rule
	worst.Fix = strings.Join(beatFixes, " && ") + " (or lower the controller's --reconcile-interval / --advance-interval)"
	return append(rows, worst)
}

func describeMetadata(md handover.Metadata) string {
	var parts []string
	if pool := md.Pool(); pool != nil {
		parts = append(parts, fmt.Sprintf("a pool of %d databases (%s…%s)", len(pool), pool[0], pool[len(pool)-1]))
	} else if md.Database != "" {
		parts = append(parts, "database "+md.Database)
	}
	if md.Channel != "" {
		parts = append(parts, "release channel "+md.Channel)
	}
	return strings.Join(parts, ", ")
}

// The heartbeat rule. The controller records a hook's heartbeat when a
// third of its timeout has passed, on the advance loop; and a launch whose
// event was lost is found only by reconcile, which then heartbeats it at
// once. So a hook fits when
//
//   - advance-interval ≤ timeout/3: each heartbeat is sent before the next
//     is due, leaving two beats of margin; and
//   - timeout ≥ 2×reconcile-interval + advance-interval: a launch whose
//     event was lost is found and heartbeated before it times out, even if
//     one reconcile pass fails (timeout ≥ reconcile + advance is the bare
//     minimum; below it the hook fails, between the two it warns).
func heartbeatFit(timeout, advance, reconcile time.Duration) (Status, string) {
	switch {
	case timeout <= 0:
		return Fail, "no heartbeat timeout"
	case advance > timeout/3:
		return Fail, fmt.Sprintf("timeout %s is under 3×advance-interval (%s): heartbeats, due every timeout/3, would be late", timeout, 3*advance)
	case timeout < reconcile+advance:
		return Fail, fmt.Sprintf("timeout %s is under reconcile-interval + advance-interval (%s): a launch whose event is lost times out before reconcile finds it", timeout, reconcile+advance)
	case timeout < 2*reconcile+advance:
		return Warn, fmt.Sprintf("timeout %s is under 2×reconcile-interval + advance-interval (%s): one failed reconcile pass lets a launch whose event is lost time out", timeout, 2*reconcile+advance)
	}
	return OK, ""
}

func fitRule(advance, reconcile time.Duration) string {
	return fmt.Sprintf("a timeout fits when it is at least 2×reconcile-interval + advance-interval = %s (a launch whose event is lost is still found by reconcile, even after one failed pass, and heartbeated in time) and at least 3×advance-interval = %s (heartbeats, due every timeout/3, go out on time)",
		2*reconcile+advance, 3*advance)
}

// suggestedTimeout is the heartbeat timeout fixes propose: the template's
// default, or more if the intervals need it, in whole seconds within what
// AWS accepts.
func (a *audit) suggestedTimeout() time.Duration {
	t := max(10*time.Minute, 2*a.cfg.ReconcileEvery+a.cfg.AdvanceEvery, 3*a.cfg.AdvanceEvery)
	t = t.Round(time.Second)
	return min(t, 7200*time.Second)
}
