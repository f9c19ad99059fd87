package deploy

import (
	"encoding/json"
	"testing"
)

// twoGroups is the configuration the structural tests render, in each
// mode: groups given out of order, one with a database of its own name.
func twoGroups(mode Mode) Config {
	c := DefaultConfig()
	c.Mode = mode
	c.Groups = []string{"orders-b", "orders-a"}
	c.Databases = map[string]string{"orders-a": "orders"}
	return c
}

var modes = []Mode{ModeLambda, ModeController}

// render returns the template for c as generic JSON.
func render(t *testing.T, c Config) map[string]any {
	t.Helper()
	b, err := Template(c)
	if err != nil {
		t.Fatalf("Template: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("the template is not JSON: %v", err)
	}
	return m
}

func resources(t *testing.T, tmpl map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	rs, ok := tmpl["Resources"].(map[string]any)
	if !ok {
		t.Fatal("template has no Resources")
	}
	for id, r := range rs {
		out[id] = r.(map[string]any)
	}
	return out
}

func props(t *testing.T, tmpl map[string]any, id string) map[string]any {
	t.Helper()
	r, ok := resources(t, tmpl)[id]
	if !ok {
		t.Fatalf("no resource %s", id)
	}
	p, _ := r["Properties"].(map[string]any)
	return p
}

// policyDocuments returns every IAM policy document in the template, keyed
// by where it is.
func policyDocuments(t *testing.T, tmpl map[string]any) map[string]map[string]any {
	t.Helper()
	docs := map[string]map[string]any{}
	for id, r := range resources(t, tmpl) {
		p, _ := r["Properties"].(map[string]any)
		if d, ok := p["AssumeRolePolicyDocument"].(map[string]any); ok {
			docs[id+".AssumeRolePolicyDocument"] = d
		}
		if d, ok := p["PolicyDocument"].(map[string]any); ok {
			docs[id+".PolicyDocument"] = d
		}
		if ps, ok := p["Policies"].([]any); ok {
			for _, e := range ps {
				pol := e.(map[string]any)
				docs[id+".Policies."+pol["PolicyName"].(string)] = pol["PolicyDocument"].(map[string]any)
			}
		}
	}
	return docs
}

func statements(t *testing.T, doc map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range doc["Statement"].([]any) {
		out = append(out, s.(map[string]any))
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in the test: %v\n%s", err, s)
	}
	return v
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
