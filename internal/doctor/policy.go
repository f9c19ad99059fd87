package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// This file evaluates an SQS queue policy for one request: EventBridge
// (the events.amazonaws.com service principal) sending a message from one
// rule. It knows the parts of the IAM policy language such policies use —
// Allow and Deny, Principal "*" or Service, Action and Resource with
// wildcards, and the String and Arn condition operators on aws:SourceArn
// and aws:SourceAccount — and says "cannot tell" for anything else rather
// than guess.

type queuePolicy struct {
	statements []policyStatement
}

type policyStatement struct {
	Effect       string                 `json:"Effect"`
	Principal    json.RawMessage        `json:"Principal"`
	NotPrincipal json.RawMessage        `json:"NotPrincipal"`
	Action       stringList             `json:"Action"`
	NotAction    stringList             `json:"NotAction"`
	Resource     stringList             `json:"Resource"`
	NotResource  stringList             `json:"NotResource"`
	Condition    map[string]conditionKV `json:"Condition"`
}

type conditionKV map[string]stringList

// stringList is a policy value that may be one string or a list of them
// (or, in conditions, a bare number or boolean).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one any
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	switch v := one.(type) {
	case []any:
		for _, e := range v {
			*l = append(*l, fmt.Sprint(e))
		}
	case nil:
	default:
		*l = stringList{fmt.Sprint(v)}
	}
	return nil
}

func parsePolicy(s string) (queuePolicy, error) {
	var doc struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return queuePolicy{}, fmt.Errorf("not a JSON policy document: %w", err)
	}
	var p queuePolicy
	if len(doc.Statement) > 0 && doc.Statement[0] == '{' {
		var st policyStatement
		if err := json.Unmarshal(doc.Statement, &st); err != nil {
			return queuePolicy{}, fmt.Errorf("reading its statement: %w", err)
		}
		p.statements = []policyStatement{st}
	} else if err := json.Unmarshal(doc.Statement, &p.statements); err != nil {
		return queuePolicy{}, fmt.Errorf("reading its statements: %w", err)
	}
	if len(p.statements) == 0 {
		return queuePolicy{}, errors.New("it has no statements")
	}
	return p, nil
}

// verdict is what a policy says about one request.
type verdict struct {
	allowed bool
	// open: the allowing statement does not limit which rule (or account)
	// sends.
	open bool
	// unknown, when set, is what doctor could not evaluate.
	unknown string
}

// allowsEventBridge evaluates the policy for EventBridge sending to
// queueARN from the rule ruleARN of account.
func (p queuePolicy) allowsEventBridge(queueARN, ruleARN, account string) verdict {
	ctx := map[string]string{"aws:sourcearn": ruleARN, "aws:sourceaccount": account}
	var v verdict
	var allowUnknown, denyUnknown string
	for _, st := range p.statements {
		deny := strings.EqualFold(st.Effect, "Deny")
		applies, why := st.appliesTo(queueARN)
		ok, limited := false, false
		if why == "" && applies {
			ok, limited, why = st.conditionsHold(ctx)
		}
		switch {
		case why != "" && deny:
			denyUnknown = why
		case why != "":
			allowUnknown = why
		case !applies || !ok:
		case deny:
			return verdict{} // an explicit deny wins
		case strings.EqualFold(st.Effect, "Allow") && (!v.allowed || v.open):
			v.allowed, v.open = true, !limited
		}
	}
	switch {
	case denyUnknown != "":
		return verdict{unknown: denyUnknown}
	case !v.allowed && allowUnknown != "":
		return verdict{unknown: allowUnknown}
	}
	return v
}

// appliesTo reports whether the statement names EventBridge, SendMessage
// and the queue ("" why), or why that cannot be told.
func (st policyStatement) appliesTo(queueARN string) (bool, string) {
	if len(st.NotPrincipal) > 0 {
		return false, "a NotPrincipal statement"
	}
	if !principalIsEvents(st.Principal) {
		return false, ""
	}
	if len(st.NotAction) > 0 {
		return !anyMatch(st.NotAction, "sqs:SendMessage", true), ""
	}
	if !anyMatch(st.Action, "sqs:SendMessage", true) {
		return false, ""
	}
	if len(st.NotResource) > 0 {
		return !anyMatch(st.NotResource, queueARN, false), ""
	}
	return len(st.Resource) == 0 || anyMatch(st.Resource, queueARN, false), ""
}

func principalIsEvents(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "*"
	}
	var m map[string]stringList
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for k, vs := range m {
		for _, v := range vs {
			if (k == "Service" && v == eventsPrincipal) || (k == "AWS" && v == "*") {
				return true
			}
		}
	}
	return false
}

// conditionsHold evaluates the statement's conditions in ctx. limited
// reports a condition on the sender (the rule or its account).
func (st policyStatement) conditionsHold(ctx map[string]string) (holds, limited bool, why string) {
	for op, kv := range st.Condition {
		base, ifExists := strings.CutSuffix(op, "IfExists")
		for key, want := range kv {
			have, known := ctx[strings.ToLower(key)]
			if !known {
				if ifExists {
					continue
				}
				return false, false, fmt.Sprintf("condition %s on %s", op, key)
			}
			limited = true
			var ok bool
			switch base {
			case "StringEquals", "ArnEquals", "ArnLike", "StringLike":
				// IAM's Arn operators take wildcards in both forms.
				ok = anyMatch(want, have, false)
				if base == "StringEquals" {
					ok = contains(want, have)
				}
			case "StringEqualsIgnoreCase":
				ok = anyMatch(want, have, true) && !strings.ContainsAny(strings.Join(want, ""), "*?")
			case "StringNotEquals":
				ok = !contains(want, have)
			case "StringNotLike", "ArnNotEquals", "ArnNotLike":
				ok = !anyMatch(want, have, false)
			default:
				return false, false, fmt.Sprintf("condition operator %s", op)
			}
			if !ok {
				return false, limited, ""
			}
		}
	}
	return true, limited, ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if glob(p, s) {
			return true
		}
	}
	return false
}

// glob matches s against an IAM pattern: * is any run of characters, ?
// any one.
func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}
