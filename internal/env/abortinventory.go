package env

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// CompareInventories lists every way after differs from before, one line
// each ("group web: desired_capacity 2 -> 1", "bucket staging-logs: gone",
// "rds staging-db2: new"); none means SRC is exactly as it was. Every
// field discovery reads is compared: groups with their capacity,
// templates, target groups, hooks, tags and each instance's lifecycle and
// health; databases with their volume, instance, epoch and claim; load
// balancers with their listeners; target groups; RDS instances with their
// status and endpoint; buckets.
func CompareInventories(before, after *Inventory) []string {
	if before == nil || after == nil {
		return []string{"an inventory is missing"}
	}
	var out []string
	if before.Selector != after.Selector {
		out = append(out, fmt.Sprintf("selector %s -> %s", before.Selector, after.Selector))
	}
	out = append(out, compareSets("group", before.Groups, after.Groups, func(g Group) string { return g.Name })...)
	out = append(out, compareSets("database", before.Databases, after.Databases, func(d Database) string { return d.ID })...)
	out = append(out, compareSets("load-balancer", before.LoadBalancers, after.LoadBalancers, func(l LoadBalancer) string { return l.Name })...)
	out = append(out, compareSets("target-group", before.TargetGroups, after.TargetGroups, func(t TargetGroup) string { return t.Name })...)
	out = append(out, compareSets("rds", before.DBInstances, after.DBInstances, func(d DBInstance) string { return d.ID })...)
	out = append(out, compareSets("bucket", before.Buckets, after.Buckets, func(b Bucket) string { return b.Name })...)
	return out
}

// compareSets pairs before's and after's members by key and reports
// those gone, new, and changed (field by field, as their JSON names them).
func compareSets[T any](kind string, before, after []T, key func(T) string) []string {
	b, a := map[string]T{}, map[string]T{}
	var keys []string
	for _, x := range before {
		b[key(x)] = x
		keys = append(keys, key(x))
	}
	for _, x := range after {
		a[key(x)] = x
		if _, ok := b[key(x)]; !ok {
			keys = append(keys, key(x))
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []string
	for _, k := range keys {
		x, inB := b[k]
		y, inA := a[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("%s %s: gone", kind, k))
		case !inB:
			out = append(out, fmt.Sprintf("%s %s: new", kind, k))
		default:
			for _, d := range fieldDiffs(x, y) {
				out = append(out, fmt.Sprintf("%s %s: %s", kind, k, d))
			}
		}
	}
	return out
}

// fieldDiffs compares two values field by field through their JSON.
func fieldDiffs(x, y any) []string {
	bx, errX := json.Marshal(x)
	by, errY := json.Marshal(y)
	if errX != nil || errY != nil {
		return []string{fmt.Sprintf("cannot be compared (%v, %v)", errX, errY)}
	}
	var mx, my map[string]json.RawMessage
	if json.Unmarshal(bx, &mx) != nil || json.Unmarshal(by, &my) != nil {
		if string(bx) != string(by) {
			return []string{fmt.Sprintf("%s -> %s", bx, by)}
		}
		return nil
	}
	var fields []string
	for f := range mx {
		fields = append(fields, f)
	}
	for f := range my {
		if _, ok := mx[f]; !ok {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	var out []string
	for _, f := range fields {
		vx, vy := string(mx[f]), string(my[f])
		if compactJSON(vx) != compactJSON(vy) {
			out = append(out, fmt.Sprintf("%s %s -> %s", f, orNone(vx), orNone(vy)))
		}
	}
	return out
}

func compactJSON(s string) string {
	// Absent, null, [] and {} all say "none" in an inventory (omitempty).
	switch strings.TrimSpace(s) {
	case "", "null", "[]", "{}", `""`:
		return ""
	}
	return s
}

func orNone(s string) string {
	if compactJSON(s) == "" {
		return "(none)"
	}
	return s
}
