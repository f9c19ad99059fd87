package eventbridge

import (
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// This file is the AWS JSON 1.1 protocol EventBridge speaks: POST with
// X-Amz-Target "AWSEvents.<Operation>", JSON bodies named as in the
// service model, errors as {"__type": "<Exception>", "message": …}.

const jsonContentType = "application/x-amz-json-1.1"

type jsonHandler func(s *Service, body []byte) (any, error)

func jsonOp[In any](fn func(s *Service, in *In) (any, error)) jsonHandler {
	return func(s *Service, body []byte) (any, error) {
		var in In
		if err := awsproto.DecodeJSON(body, &in); err != nil {
			return nil, err
		}
		return fn(s, &in)
	}
}

var jsonOps map[string]jsonHandler

func init() {
	jsonOps = map[string]jsonHandler{
		"PutRule":               jsonOp(jsonPutRule),
		"DescribeRule":          jsonOp(jsonDescribeRule),
		"ListRules":             jsonOp(jsonListRules),
		"DeleteRule":            jsonOp(jsonDeleteRule),
		"EnableRule":            jsonOp(jsonEnableRule),
		"DisableRule":           jsonOp(jsonDisableRule),
		"PutTargets":            jsonOp(jsonPutTargets),
		"ListTargetsByRule":     jsonOp(jsonListTargetsByRule),
		"RemoveTargets":         jsonOp(jsonRemoveTargets),
		"ListRuleNamesByTarget": jsonOp(jsonListRuleNamesByTarget),
		"PutEvents":             jsonOp(jsonPutEvents),
		"TestEventPattern":      jsonOp(jsonTestEventPattern),
	}
}

// ServeHTTP serves an EventBridge request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, op, body, err := awsproto.JSONTarget(r)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	h := jsonOps[op]
	if h == nil {
		writeJSONError(w, awsproto.Errorf("UnknownOperationException", "The operation %s is not supported by the local cloud's EventBridge.", op))
		return
	}
	out, err := h(s, body)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	awsproto.WriteJSON(w, jsonContentType, out)
}

func writeJSONError(w http.ResponseWriter, err error) {
	awsproto.WriteJSONError(w, jsonContentType, "", err)
}

type jsonRule struct {
	Arn                string `json:"Arn"`
	Name               string `json:"Name"`
	EventPattern       string `json:"EventPattern,omitempty"`
	ScheduleExpression string `json:"ScheduleExpression,omitempty"`
	State              string `json:"State"`
	Description        string `json:"Description,omitempty"`
	RoleArn            string `json:"RoleArn,omitempty"`
	EventBusName       string `json:"EventBusName"`
}

func (s *Service) toJSONRule(r rule) jsonRule {
	return jsonRule{Arn: s.RuleARN(r.Name), Name: r.Name, EventPattern: r.EventPattern, ScheduleExpression: r.ScheduleExpression,
		State: r.State, Description: r.Description, RoleArn: r.RoleARN, EventBusName: "default"}
}

func jsonPutRule(s *Service, in *struct {
	Name, EventPattern, ScheduleExpression, State, Description, RoleArn, EventBusName string
}) (any, error) {
	arn, err := s.putRule(putRuleInput{Name: in.Name, EventPattern: in.EventPattern, ScheduleExpression: in.ScheduleExpression,
		State: in.State, Description: in.Description, RoleARN: in.RoleArn, EventBusName: in.EventBusName})
	if err != nil {
		return nil, err
	}
	return struct{ RuleArn string }{arn}, nil
}

type jsonRuleRef struct {
	Name, EventBusName string
}

func jsonDescribeRule(s *Service, in *jsonRuleRef) (any, error) {
	r, err := s.describeRule(in.Name, in.EventBusName)
	if err != nil {
		return nil, err
	}
	return struct {
		jsonRule
		CreatedBy string
	}{s.toJSONRule(r), s.cfg.AccountID}, nil
}

func jsonListRules(s *Service, in *struct {
	NamePrefix, EventBusName, NextToken string
	Limit                               int
}) (any, error) {
	rules, next, err := s.listRules(in.NamePrefix, in.EventBusName, in.Limit, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		Rules     []jsonRule
		NextToken string `json:",omitempty"`
	}{Rules: []jsonRule{}, NextToken: next}
	for _, r := range rules {
		out.Rules = append(out.Rules, s.toJSONRule(r))
	}
	return out, nil
}

func jsonDeleteRule(s *Service, in *struct {
	Name, EventBusName string
	Force              bool
}) (any, error) {
	return struct{}{}, s.deleteRule(in.Name, in.EventBusName)
}

func jsonEnableRule(s *Service, in *jsonRuleRef) (any, error) {
	return struct{}{}, s.setState(in.Name, in.EventBusName, stateEnabled)
}

func jsonDisableRule(s *Service, in *jsonRuleRef) (any, error) {
	return struct{}{}, s.setState(in.Name, in.EventBusName, stateDisabled)
}

type jsonRetryPolicy struct {
	MaximumRetryAttempts     *int `json:",omitempty"`
	MaximumEventAgeInSeconds *int `json:",omitempty"`
}

type jsonTarget struct {
	ID               string           `json:"Id"`
	Arn              string           `json:"Arn"`
	Input            string           `json:"Input,omitempty"`
	InputPath        string           `json:"InputPath,omitempty"`
	RoleArn          string           `json:"RoleArn,omitempty"`
	RetryPolicy      *jsonRetryPolicy `json:"RetryPolicy,omitempty"`
	DeadLetterConfig *struct {
		Arn string `json:"Arn,omitempty"`
	} `json:"DeadLetterConfig,omitempty"`
	SqsParameters *struct {
		MessageGroupID string `json:"MessageGroupId,omitempty"`
	} `json:"SqsParameters,omitempty"`
	InputTransformer json.RawMessage `json:"InputTransformer,omitempty"`
}

func fromJSONTarget(t jsonTarget) (target, error) {
	if len(t.InputTransformer) > 0 && string(t.InputTransformer) != "null" {
		return target{}, errValidation("InputTransformer is not supported by the local cloud (target %s): use Input or InputPath.", t.ID)
	}
	out := target{ID: t.ID, ARN: t.Arn, Input: t.Input, InputPath: t.InputPath, RoleARN: t.RoleArn}
	if p := t.RetryPolicy; p != nil {
		r := retryPolicy{MaxAttempts: defaultRetryAttempt, MaxAge: defaultMaxEventAge}
		if p.MaximumRetryAttempts != nil {
			r.MaxAttempts = *p.MaximumRetryAttempts
		}
		if p.MaximumEventAgeInSeconds != nil {
			r.MaxAge = time.Duration(*p.MaximumEventAgeInSeconds) * time.Second
		}
		out.Retry = &r
	}
	if t.DeadLetterConfig != nil {
		out.DeadLetterARN = t.DeadLetterConfig.Arn
	}
	if t.SqsParameters != nil {
		out.MessageGroupID = t.SqsParameters.MessageGroupID
	}
	return out, nil
}

func toJSONTarget(t target) jsonTarget {
	out := jsonTarget{ID: t.ID, Arn: t.ARN, Input: t.Input, InputPath: t.InputPath, RoleArn: t.RoleARN}
	if r := t.Retry; r != nil {
		attempts, age := r.MaxAttempts, int(r.MaxAge/time.Second)
		out.RetryPolicy = &jsonRetryPolicy{MaximumRetryAttempts: &attempts, MaximumEventAgeInSeconds: &age}
	}
	if t.DeadLetterARN != "" {
		out.DeadLetterConfig = &struct {
			Arn string `json:"Arn,omitempty"`
		}{t.DeadLetterARN}
	}
	if t.MessageGroupID != "" {
		out.SqsParameters = &struct {
			MessageGroupID string `json:"MessageGroupId,omitempty"`
		}{t.MessageGroupID}
	}
	return out
}

type jsonFailedEntries struct {
	FailedEntryCount int
	FailedEntries    []struct{}
}

func jsonPutTargets(s *Service, in *struct {
	Rule, EventBusName string
	Targets            []jsonTarget
}) (any, error) {
	var targets []target
	for _, jt := range in.Targets {
		t, err := fromJSONTarget(jt)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if err := s.putTargets(in.Rule, in.EventBusName, targets); err != nil {
		return nil, err
	}
	return jsonFailedEntries{FailedEntries: []struct{}{}}, nil
}

func jsonListTargetsByRule(s *Service, in *struct {
	Rule, EventBusName, NextToken string
	Limit                         int
}) (any, error) {
	ts, next, err := s.listTargets(in.Rule, in.EventBusName, in.Limit, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		Targets   []jsonTarget
		NextToken string `json:",omitempty"`
	}{Targets: []jsonTarget{}, NextToken: next}
	for _, t := range ts {
		out.Targets = append(out.Targets, toJSONTarget(t))
	}
	return out, nil
}

func jsonRemoveTargets(s *Service, in *struct {
	Rule, EventBusName string
	Ids                []string
	Force              bool
}) (any, error) {
	if err := s.removeTargets(in.Rule, in.EventBusName, in.Ids); err != nil {
		return nil, err
	}
	return jsonFailedEntries{FailedEntries: []struct{}{}}, nil
}

func jsonListRuleNamesByTarget(s *Service, in *struct {
	TargetArn, EventBusName, NextToken string
	Limit                              int
}) (any, error) {
	names, next, err := s.listRuleNamesByTarget(in.TargetArn, in.EventBusName, in.Limit, in.NextToken)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return struct {
		RuleNames []string
		NextToken string `json:",omitempty"`
	}{names, next}, nil
}

type jsonPutResult struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
}

func jsonPutEvents(s *Service, in *struct {
	Entries []struct {
		Source, DetailType, Detail, EventBusName, TraceHeader string
		Resources                                             []string
		// Time is epoch seconds, as the JSON protocols send timestamps.
		Time *json.Number
	}
	EndpointID string `json:"EndpointId"`
}) (any, error) {
	entries := make([]putEntry, len(in.Entries))
	for i, e := range in.Entries {
		entries[i] = putEntry{Source: e.Source, DetailType: e.DetailType, Detail: e.Detail, EventBusName: e.EventBusName, Resources: e.Resources}
		if e.Time != nil {
			f, err := e.Time.Float64()
			if err != nil {
				return nil, errValidation("Time %s is not a timestamp.", *e.Time)
			}
			sec, frac := math.Modf(f)
			entries[i].Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
	}
	results, err := s.putEvents(entries)
	if err != nil {
		return nil, err
	}
	out := struct {
		FailedEntryCount int
		Entries          []jsonPutResult
	}{}
	for _, r := range results {
		if r.ErrorCode != "" {
			out.FailedEntryCount++
		}
		out.Entries = append(out.Entries, jsonPutResult(r))
	}
	return out, nil
}

func jsonTestEventPattern(s *Service, in *struct{ EventPattern, Event string }) (any, error) {
	ok, err := testEventPattern(in.Event, in.EventPattern)
	if err != nil {
		return nil, err
	}
	return struct{ Result bool }{ok}, nil
}
