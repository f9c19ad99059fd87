package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/handover-dev/handover/internal/deploy"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

// checkIAM simulates, statement by statement, the policy the template
// grants the controller against the live role: each statement's actions
// on its resources, with context values that meet its conditions (a tag
// the statement requires is given as present), so a role missing any of
// it, or denied it by another policy, fails the row of that statement.
func (a *audit) checkIAM(ctx context.Context) {
	if a.cfg.RoleARN == "" {
		a.add(Result{Check: "iam", Status: Fail, Detail: "no role to check", Fix: "give --role-arn (the stack's RoleArn output)"})
		return
	}
	groups := a.cfg.Groups
	if len(groups) == 0 {
		for _, g := range a.served {
			groups = append(groups, g.Name)
		}
	}
	if len(groups) == 0 {
		a.add(Result{Check: "iam", Status: Skip, Detail: "not checked: handover serves no group, and the policy is scoped by group"})
		return
	}
	q := a.queues.QueueARN
	env := deploy.Env{Partition: arnPartition(q), Region: arnRegion(q), AccountID: arnAccount(q), QueueARN: q, DeadLetterARN: a.queues.DeadLetterARN}
	if t, err := dial.Parse(a.cfg.LedgerURL); err == nil && t.Backend == dial.DynamoDB {
		region := t.Region
		if region == "" {
			region = env.Region
		}
		env.TableARN = fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", env.Partition, region, env.AccountID, t.Table)
	}
	doc, err := deploy.LiveControllerPolicy(deploy.Config{Groups: groups, Fence: a.cfg.Fence}, env)
	if err != nil {
		a.add(Result{Check: "iam", Status: Fail, Detail: "could not build the policy to check: " + err.Error(), Fix: "report this as a bug"})
		return
	}
	if env.DeadLetterARN == "" {
		a.add(Result{Check: "iam/DeadLetter", Status: Skip, Detail: "not checked: the dead-letter queue is unknown"})
	}
	for _, st := range doc.Statement {
		a.add(a.simulate(ctx, st))
	}
}

func (a *audit) simulate(ctx context.Context, st deploy.Statement) Result {
	check := "iam/" + st.Sid
	entries := contextEntries(st.Condition)
	var denied []string
	n := 0
	for _, res := range st.Resource {
		p := iam.NewSimulatePrincipalPolicyPaginator(a.deps.IAM, &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: aws.String(a.cfg.RoleARN), ActionNames: st.Action,
			ResourceArns: []string{unescapeIAM(res)}, ContextEntries: entries,
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return Result{Check: check, Status: Fail, Detail: "could not simulate: " + err.Error(),
					Fix: "the credentials running doctor need iam:SimulatePrincipalPolicy on " + a.cfg.RoleARN}
			}
			for _, r := range page.EvaluationResults {
				for _, d := range decisions(r) {
					n++
					if d.decision != iamtypes.PolicyEvaluationDecisionTypeAllowed {
						why := string(d.decision)
						if len(d.missing) > 0 {
							why += ", missing context " + strings.Join(d.missing, ", ")
						}
						denied = append(denied, fmt.Sprintf("%s on %s (%s)", aws.ToString(r.EvalActionName), d.resource, why))
					}
				}
			}
		}
	}
	if len(denied) > 0 {
		want, _ := json.Marshal(st)
		return Result{Check: check, Status: Fail, Detail: "the role may not " + strings.Join(denied, "; "),
			Fix: fmt.Sprintf("grant %s this statement (as the policy of `handover deploy template --mode controller` does): %s", a.cfg.RoleARN, want)}
	}
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf("allowed: %s (%d simulated)", strings.Join(st.Action, ", "), n)}
}

type decision struct {
	resource string
	decision iamtypes.PolicyEvaluationDecisionType
	missing  []string
}

// decisions are a simulation result's decisions, per resource when it
// gives them.
func decisions(r iamtypes.EvaluationResult) []decision {
	if len(r.ResourceSpecificResults) == 0 {
		return []decision{{resource: aws.ToString(r.EvalResourceName), decision: r.EvalDecision, missing: r.MissingContextValues}}
	}
	var out []decision
	for _, rr := range r.ResourceSpecificResults {
		out = append(out, decision{resource: aws.ToString(rr.EvalResourceName), decision: rr.EvalResourceDecision, missing: rr.MissingContextValues})
	}
	return out
}

// contextEntries are context values that meet a statement's conditions:
// one of the values each condition allows (all of them for a set
// operator), as the controller's calls would carry.
func contextEntries(cond map[string]map[string]any) []iamtypes.ContextEntry {
	var out []iamtypes.ContextEntry
	for _, op := range slices.Sorted(maps.Keys(cond)) {
		for _, key := range slices.Sorted(maps.Keys(cond[op])) {
			vals := toStrings(cond[op][key])
			if len(vals) == 0 {
				continue
			}
			for i := range vals {
				vals[i] = unescapeIAM(vals[i])
			}
			e := iamtypes.ContextEntry{ContextKeyName: aws.String(key), ContextKeyType: iamtypes.ContextKeyTypeEnumString, ContextKeyValues: vals[:1]}
			if strings.HasPrefix(op, "ForAllValues:") || strings.HasPrefix(op, "ForAnyValue:") {
				e.ContextKeyType, e.ContextKeyValues = iamtypes.ContextKeyTypeEnumStringList, vals
			}
			out = append(out, e)
		}
	}
	return out
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return slices.Clone(x)
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// unescapeIAM undoes the template's escaping of * ? and $ in names
// (deploy's iamLiteral): the simulated request carries the name itself.
var unescapeIAM = strings.NewReplacer("${*}", "*", "${?}", "?", "${$}", "$").Replace
