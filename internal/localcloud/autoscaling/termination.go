package autoscaling

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// selectVictims picks n instances to terminate on scale-in, the way AWS's
// termination policies do: first the zone with the most instances (zones
// the group no longer uses before any), then, within it, each of the
// group's policies in turn narrows the choice. "Default" is
// OldestLaunchTemplate (or OldestLaunchConfiguration), then the oldest instance (standing in for
// "closest to the next billing hour", which the local cloud does not
// bill). Instances protected from scale-in are never picked, so fewer than n
// may come back; nor are those awaiting a replacement, which go once it is
// in service.
func selectVictims(g *group, n int) []*instance {
	var candidates []*instance
	perZone := map[string]int{}
	for _, i := range g.sortedInstances() {
		if !g.counts(i) {
			continue
		}
		perZone[i.Zone]++
		if !i.Protected {
			candidates = append(candidates, i)
		}
	}
	var out []*instance
	for len(out) < n && len(candidates) > 0 {
		zone := victimZone(g, candidates, perZone)
		var inZone []*instance
		for _, i := range candidates {
			if i.Zone == zone {
				inZone = append(inZone, i)
			}
		}
		for _, p := range g.TerminationPolicies {
			inZone = narrow(g, p, inZone)
		}
		v := inZone[0] // narrow keeps ID order, so the pick is stable
		out = append(out, v)
		perZone[v.Zone]--
		candidates = slices.DeleteFunc(candidates, func(i *instance) bool { return i == v })
	}
	return out
}

// victimZone is the zone to scale in from: one the group no longer uses,
// else the one with the most instances, earlier zones winning ties.
func victimZone(g *group, candidates []*instance, perZone map[string]int) string {
	best, bestCount := "", -1
	for _, i := range candidates {
		if !slices.Contains(g.Zones, i.Zone) {
			return i.Zone
		}
	}
	for _, z := range g.Zones {
		has := slices.ContainsFunc(candidates, func(i *instance) bool { return i.Zone == z })
		if has && perZone[z] > bestCount {
			best, bestCount = z, perZone[z]
		}
	}
	return best
}

// narrow keeps the instances a termination policy would pick first.
func narrow(g *group, policy string, in []*instance) []*instance {
	switch policy {
	case "Default":
		return narrow(g, "OldestInstance", narrow(g, "OldestLaunchTemplate", in))
	case "OldestLaunchTemplate", "OldestLaunchConfiguration":
		return keepMin(in, func(i *instance) float64 { return templateAge(g, i) })
	case "OldestInstance":
		return keepMin(in, func(i *instance) float64 { return float64(i.LaunchTime.UnixNano()) })
	case "NewestInstance":
		return keepMin(in, func(i *instance) float64 { return -float64(i.LaunchTime.UnixNano()) })
	}
	return in // policies about billing and allocation do not apply here
}

// templateAge orders instances by how old what they were launched from is,
// as AWS's OldestLaunchTemplate and OldestLaunchConfiguration do. In a group
// on a launch template: instances from a launch configuration first (AWS
// terminates those before any from a template), then any not launched from
// the group's current template and version, lower numbered versions before
// higher. In a group on a launch configuration: any not launched from it
// first.
func templateAge(g *group, i *instance) float64 {
	if g.LaunchConfiguration != "" {
		if i.LaunchConfiguration == g.LaunchConfiguration {
			return math.Inf(1)
		}
		return 0
	}
	if i.LaunchConfiguration != "" {
		return -2e9
	}
	cur := g.LaunchTemplate
	if i.LaunchTemplate == cur {
		return math.Inf(1)
	}
	sameTemplate := (cur.ID != "" && i.LaunchTemplate.ID == cur.ID) || (cur.Name != "" && i.LaunchTemplate.Name == cur.Name)
	v, err := strconv.Atoi(strings.TrimSpace(i.LaunchTemplate.Version))
	if err != nil {
		v = 0 // $Latest or $Default from before a change: as old as can be told
	}
	if !sameTemplate {
		return float64(v) - 1e9 // another template altogether: older than any version
	}
	return float64(v)
}

func keepMin(in []*instance, key func(*instance) float64) []*instance {
	if len(in) == 0 {
		return in
	}
	low := math.Inf(1)
	for _, i := range in {
		low = min(low, key(i))
	}
	var out []*instance
	for _, i := range in {
		if key(i) == low {
			out = append(out, i)
		}
	}
	return out
}
