package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// This file lets `handover doctor` hold a live deployment against what a
// template deploys, so the two cannot drift: the rules' patterns, and the
// controller's policy with its intrinsics resolved. Like the rest of the
// package it only renders: it never calls AWS.

// Rule is one EventBridge rule the template feeds the events queue with.
type Rule struct {
	// ID is the rule's logical id in the template; Name is a name for the
	// rule when it is made by hand ("handover-lifecycle-action").
	ID, Name    string
	Description string
	// Pattern is its event pattern as compact JSON.
	Pattern string
}

// EventRules returns the template's rules for cfg. Only cfg.Groups and
// cfg.Mode matter; cfg need not pass Validate (a live deployment's groups
// may hold names a template would refuse as database ids).
func EventRules(cfg Config) ([]Rule, error) {
	var out []Rule
	for _, r := range eventRules(cfg) {
		b, err := json.Marshal(r.pattern)
		if err != nil {
			return nil, fmt.Errorf("rendering the pattern of rule %s: %w", r.id, err)
		}
		out = append(out, Rule{ID: r.id, Name: ruleName(r.id), Description: r.description, Pattern: string(b)})
	}
	return out, nil
}

// ruleName turns a logical id ("LifecycleActionRule") into a rule name
// ("handover-lifecycle-action").
func ruleName(id string) string {
	var b strings.Builder
	b.WriteString(HookPrefix)
	for _, r := range strings.TrimSuffix(id, "Rule") {
		if unicode.IsUpper(r) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Env is what a template's intrinsics resolve to in one deployed stack.
type Env struct {
	Partition, Region, AccountID string
	// QueueARN and DeadLetterARN are the stack's events queue and
	// dead-letter queue; without a DeadLetterARN its statement is left out.
	QueueARN, DeadLetterARN string
	// TableARN is the DynamoDB ledger table; empty when the ledger is not
	// DynamoDB, and the ledger's statement is then left out.
	TableARN string
}

// LiveControllerPolicy is the policy the template grants a long-running
// controller (ModeController; no Lambda log group) for cfg.Groups and
// cfg.Fence, with every Ref, Fn::Sub and Fn::GetAtt resolved in env, so
// that each statement can be simulated against the live role.
func LiveControllerPolicy(cfg Config, env Env) (PolicyDocument, error) {
	cfg.Mode = ModeController
	if cfg.Fence == "" {
		cfg.Fence = FenceHTTP
	}
	doc := controllerPolicy(cfg, false)
	var out []Statement
	for _, st := range doc.Statement {
		if (st.Sid == "Ledger" && env.TableARN == "") || (st.Sid == "DeadLetter" && env.DeadLetterARN == "") {
			continue
		}
		res, err := resolveAll(st.Resource, env)
		if err != nil {
			return PolicyDocument{}, fmt.Errorf("statement %s: %w", st.Sid, err)
		}
		st.Resource = res
		if st.Condition != nil {
			cond := map[string]map[string]any{}
			for op, kv := range st.Condition {
				cond[op] = map[string]any{}
				for k, v := range kv {
					rv, err := resolveValue(v, env)
					if err != nil {
						return PolicyDocument{}, fmt.Errorf("statement %s, condition %s %s: %w", st.Sid, op, k, err)
					}
					cond[op][k] = rv
				}
			}
			st.Condition = cond
		}
		st.Action = slices.Clone(st.Action)
		out = append(out, st)
	}
	return PolicyDocument{Version: doc.Version, Statement: out}, nil
}

func resolveAll(vs []string, env Env) ([]string, error) {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		r, err := resolve(v, env)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func resolveValue(v any, env Env) (any, error) {
	switch x := v.(type) {
	case string:
		return resolve(x, env)
	case []string:
		return resolveAll(x, env)
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			r, err := resolveValue(e, env)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	return v, nil
}

// resolve turns one goformation-encoded intrinsic into its value in env;
// a plain string comes back as it is.
func resolve(s string, env Env) (string, error) {
	if !readsAsIntrinsic(s) {
		return s, nil
	}
	b, _ := base64.StdEncoding.DecodeString(s)
	var fn map[string]any
	if err := json.Unmarshal(b, &fn); err != nil {
		return "", err
	}
	pseudo := map[string]string{"AWS::Partition": env.Partition, "AWS::Region": env.Region, "AWS::AccountId": env.AccountID}
	if sub, ok := fn["Fn::Sub"].(string); ok {
		var out strings.Builder
		for {
			i := strings.Index(sub, "${")
			if i < 0 {
				out.WriteString(sub)
				return out.String(), nil
			}
			out.WriteString(sub[:i])
			sub = sub[i+2:]
			if strings.HasPrefix(sub, "!") {
				// ${! is a literal ${ (see subLiteral).
				out.WriteString("${")
				sub = sub[1:]
				continue
			}
			j := strings.Index(sub, "}")
			if j < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", sub)
			}
			v, ok := pseudo[sub[:j]]
			if !ok || v == "" {
				return "", fmt.Errorf("no value for ${%s}", sub[:j])
			}
			out.WriteString(v)
			sub = sub[j+1:]
		}
	}
	if att, ok := fn["Fn::GetAtt"].([]any); ok && len(att) == 2 && att[1] == "Arn" {
		arns := map[any]string{idQueue: env.QueueARN, idDeadLetterQueue: env.DeadLetterARN, idTable: env.TableARN}
		if v := arns[att[0]]; v != "" {
			return v, nil
		}
		return "", fmt.Errorf("no ARN for %v", att[0])
	}
	if ref, ok := fn["Ref"].(string); ok {
		if v := pseudo[ref]; v != "" {
			return v, nil
		}
		return "", fmt.Errorf("no value for Ref %s", ref)
	}
	return "", fmt.Errorf("unsupported intrinsic %s", b)
}
