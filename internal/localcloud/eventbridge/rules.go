package eventbridge

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS's limits.
const (
	maxTargetsPerRule   = 5
	maxTargetsPerCall   = 10
	maxPatternLength    = 4096
	maxDescription      = 512
	defaultListLimit    = 100
	defaultRetryAttempt = 185
	defaultMaxEventAge  = 24 * time.Hour
)

var nameRE = regexp.MustCompile(`^[\.\-_A-Za-z0-9]{1,64}$`)

// Rule states.
const (
	stateEnabled  = "ENABLED"
	stateDisabled = "DISABLED"
	// stateEnabledCloudTrail also enables the rule; it differs from
	// ENABLED only for CloudTrail management events, which the local cloud
	// has none of.
	stateEnabledCloudTrail = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
)

// retryPolicy bounds how long a failing delivery is retried.
type retryPolicy struct {
	MaxAttempts int           `json:"max_attempts"`
	MaxAge      time.Duration `json:"max_age"`
}

// target is one SQS queue a rule delivers to.
type target struct {
	ID        string       `json:"id"`
	ARN       string       `json:"arn"`
	Input     string       `json:"input,omitempty"`
	InputPath string       `json:"input_path,omitempty"`
	RoleARN   string       `json:"role_arn,omitempty"`
	Retry     *retryPolicy `json:"retry,omitempty"`
	// DeadLetterARN is stored and returned, but deliveries that run out of
	// retries are dropped (and logged), not sent there.
	DeadLetterARN  string `json:"dead_letter_arn,omitempty"`
	MessageGroupID string `json:"message_group_id,omitempty"`
}

func (t target) retry() retryPolicy {
	if t.Retry != nil {
		return *t.Retry
	}
	return retryPolicy{MaxAttempts: defaultRetryAttempt, MaxAge: defaultMaxEventAge}
}

// rule is one rule on the default bus. Guarded by Service.mu.
type rule struct {
	Name               string    `json:"name"`
	Description        string    `json:"description,omitempty"`
	EventPattern       string    `json:"event_pattern,omitempty"`
	ScheduleExpression string    `json:"schedule_expression,omitempty"`
	RoleARN            string    `json:"role_arn,omitempty"`
	State              string    `json:"state"`
	Targets            []target  `json:"targets,omitempty"`
	Created            time.Time `json:"created"`

	pattern *Pattern
}

func (r *rule) enabled() bool { return r.State != stateDisabled }

func validateName(what, name string) error {
	if name == "" {
		return errValidation("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", what)
	}
	if !nameRE.MatchString(name) {
		return errValidation("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and have length at most 64", name, what)
	}
	return nil
}

// putRuleInput is a PutRule request.
type putRuleInput struct {
	Name, EventPattern, ScheduleExpression, State, Description, RoleARN, EventBusName string
}

// putRule creates or replaces a rule (keeping its targets) and returns its
// ARN. Repeating it is harmless.
func (s *Service) putRule(in putRuleInput) (string, error) {
	if err := validateName("name", in.Name); err != nil {
		return "", err
	}
	if err := s.checkBus(in.EventBusName); err != nil {
		return "", err
	}
	if in.EventPattern == "" && in.ScheduleExpression == "" {
		return "", errValidation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	if len(in.EventPattern) > maxPatternLength {
		return "", errValidation("1 validation error detected: Value at 'eventPattern' failed to satisfy constraint: Member must have length less than or equal to %d", maxPatternLength)
	}
	if len(in.Description) > maxDescription {
		return "", errValidation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d", maxDescription)
	}
	if e := in.ScheduleExpression; e != "" && !((strings.HasPrefix(e, "rate(") || strings.HasPrefix(e, "cron(")) && strings.HasSuffix(e, ")")) {
		return "", errValidation("Parameter ScheduleExpression is not valid.")
	}
	switch in.State {
	case "":
		in.State = stateEnabled
	case stateEnabled, stateDisabled, stateEnabledCloudTrail:
	default:
		return "", errValidation("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]", in.State)
	}
	var p *Pattern
	if in.EventPattern != "" {
		var err error
		if p, err = ParsePattern(in.EventPattern); err != nil {
			return "", errInvalidPattern(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rules[in.Name]
	if r == nil {
		r = &rule{Name: in.Name, Created: s.clock.Now()}
		s.rules[in.Name] = r
	}
	r.EventPattern, r.pattern = in.EventPattern, p
	r.ScheduleExpression = in.ScheduleExpression
	r.State = in.State
	r.Description = in.Description
	r.RoleARN = in.RoleARN
	s.markDirtyLocked()
	if in.ScheduleExpression != "" {
		s.log.Warn("scheduled rules never fire in the local cloud", "rule", in.Name)
	}
	return s.RuleARN(in.Name), nil
}

// ruleLocked returns the rule called name, or ResourceNotFoundException.
func (s *Service) ruleLocked(name, bus string) (*rule, error) {
	if err := validateName("name", name); err != nil {
		return nil, err
	}
	if err := s.checkBus(bus); err != nil {
		return nil, err
	}
	r := s.rules[name]
	if r == nil {
		return nil, errNotFound("Rule %s does not exist on EventBus default.", name)
	}
	return r, nil
}

// describeRule returns a copy of the rule called name.
func (s *Service) describeRule(name, bus string) (rule, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.ruleLocked(name, bus)
	if err != nil {
		return rule{}, err
	}
	return *r, nil
}

func (s *Service) setState(name, bus, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.ruleLocked(name, bus)
	if err != nil {
		return err
	}
	r.State = state
	s.markDirtyLocked()
	return nil
}

// deleteRule deletes a rule without targets. Deleting a rule that does not
// exist succeeds, as AWS documents.
func (s *Service) deleteRule(name, bus string) error {
	if err := validateName("name", name); err != nil {
		return err
	}
	if err := s.checkBus(bus); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rules[name]
	if r == nil {
		return nil
	}
	if len(r.Targets) > 0 {
		return errValidation("Rule can't be deleted since it has targets.")
	}
	delete(s.rules, name)
	s.markDirtyLocked()
	return nil
}

// page returns the items after token, at most limit of them, and the
// token for the rest; tokens are the last returned key.
func page[T any](items []T, key func(T) string, limit int, token string) ([]T, string, error) {
	if limit < 0 || limit > defaultListLimit {
		return nil, "", errValidation("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100", limit)
	}
	if limit == 0 {
		limit = defaultListLimit
	}
	after := ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return nil, "", errValidation("The NextToken is not valid.")
		}
		after = string(b)
	}
	var out []T
	for _, it := range items {
		if after != "" && key(it) <= after {
			continue
		}
		if len(out) == limit {
			return out, base64.RawURLEncoding.EncodeToString([]byte(key(out[len(out)-1]))), nil
		}
		out = append(out, it)
	}
	return out, "", nil
}

// listRules returns copies of the rules whose names start with prefix, in
// name order.
func (s *Service) listRules(prefix, bus string, limit int, token string) ([]rule, string, error) {
	if err := s.checkBus(bus); err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	var all []rule
	for _, r := range s.rules {
		if strings.HasPrefix(r.Name, prefix) {
			all = append(all, *r)
		}
	}
	s.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return page(all, func(r rule) string { return r.Name }, limit, token)
}

// listRuleNamesByTarget returns the names of rules with a target of arn.
func (s *Service) listRuleNamesByTarget(arn, bus string, limit int, token string) ([]string, string, error) {
	if arn == "" {
		return nil, "", errValidation("1 validation error detected: Value null at 'targetArn' failed to satisfy constraint: Member must not be null")
	}
	if err := s.checkBus(bus); err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	var names []string
	for _, r := range s.rules {
		for _, t := range r.Targets {
			if t.ARN == arn {
				names = append(names, r.Name)
				break
			}
		}
	}
	s.mu.RUnlock()
	sort.Strings(names)
	return page(names, func(n string) string { return n }, limit, token)
}

// validateTarget checks a target the local cloud can deliver to.
func validateTarget(t target) error {
	if err := validateName("targets.member.id", t.ID); err != nil {
		return err
	}
	parts := strings.Split(t.ARN, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return errValidation("Parameter %s is not valid: the local cloud delivers only to SQS queues (arn:aws:sqs:REGION:ACCOUNT:NAME).", t.ARN)
	}
	if t.Input != "" && t.InputPath != "" {
		return errValidation("Only one of Input, InputPath, or InputTransformer can be specified for target %s.", t.ID)
	}
	if t.Input != "" && !json.Valid([]byte(t.Input)) {
		return errValidation("Input for target %s is not valid JSON text.", t.ID)
	}
	if t.InputPath != "" {
		if _, err := parseInputPath(t.InputPath); err != nil {
			return err
		}
	}
	if r := t.Retry; r != nil {
		if r.MaxAttempts < 0 || r.MaxAttempts > defaultRetryAttempt {
			return errValidation("MaximumRetryAttempts must be between 0 and %d.", defaultRetryAttempt)
		}
		if r.MaxAge < time.Minute || r.MaxAge > defaultMaxEventAge {
			return errValidation("MaximumEventAgeInSeconds must be between 60 and 86400.")
		}
	}
	return nil
}

// parseInputPath reads the JSONPath subset the local cloud supports:
// "$" and "$.a.b".
func parseInputPath(p string) ([]string, error) {
	if p == "$" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(p, "$.")
	if !ok {
		return nil, errValidation("InputPath %q is not supported by the local cloud: use $ or $.field.field.", p)
	}
	keys := strings.Split(rest, ".")
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "[]*") {
			return nil, errValidation("InputPath %q is not supported by the local cloud: use $ or $.field.field.", p)
		}
	}
	return keys, nil
}

// putTargets adds targets to a rule, replacing those with the same ids.
// Repeating it is harmless.
func (s *Service) putTargets(ruleName, bus string, targets []target) error {
	if len(targets) == 0 || len(targets) > maxTargetsPerCall {
		return errValidation("1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length between 1 and %d", maxTargetsPerCall)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if err := validateTarget(t); err != nil {
			return err
		}
		if seen[t.ID] {
			return errValidation("Target Id %s appears more than once in the request.", t.ID)
		}
		seen[t.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.ruleLocked(ruleName, bus)
	if err != nil {
		return err
	}
	next := append([]target(nil), r.Targets...)
	for _, t := range targets {
		replaced := false
		for i := range next {
			if next[i].ID == t.ID {
				next[i], replaced = t, true
				break
			}
		}
		if !replaced {
			next = append(next, t)
		}
	}
	if len(next) > maxTargetsPerRule {
		return errLimitExceeded("The requested resource exceeds the maximum number allowed: a rule has at most %d targets.", maxTargetsPerRule)
	}
	r.Targets = next
	s.markDirtyLocked()
	return nil
}

// listTargets returns a rule's targets in the order they were added.
func (s *Service) listTargets(ruleName, bus string, limit int, token string) ([]target, string, error) {
	s.mu.RLock()
	r, err := s.ruleLocked(ruleName, bus)
	var ts []target
	if err == nil {
		ts = append(ts, r.Targets...)
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, "", err
	}
	// Targets keep insertion order; page by position.
	type indexed struct {
		i int
		t target
	}
	items := make([]indexed, len(ts))
	for i, t := range ts {
		items[i] = indexed{i, t}
	}
	got, next, err := page(items, func(x indexed) string { return strconv.Itoa(1e6 + x.i) }, limit, token)
	if err != nil {
		return nil, "", err
	}
	out := make([]target, len(got))
	for i, x := range got {
		out[i] = x.t
	}
	return out, next, nil
}

// removeTargets removes the targets with the ids from a rule; ids it does
// not have are ignored, so repeating it is harmless.
func (s *Service) removeTargets(ruleName, bus string, ids []string) error {
	if len(ids) == 0 || len(ids) > maxTargetsPerCall {
		return errValidation("1 validation error detected: Value at 'ids' failed to satisfy constraint: Member must have length between 1 and %d", maxTargetsPerCall)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.ruleLocked(ruleName, bus)
	if err != nil {
		return err
	}
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	kept := r.Targets[:0:0]
	for _, t := range r.Targets {
		if !drop[t.ID] {
			kept = append(kept, t)
		}
	}
	r.Targets = kept
	s.markDirtyLocked()
	return nil
}

// requiredEventFields are the envelope fields TestEventPattern insists on.
var requiredEventFields = []string{"id", "account", "source", "time", "region", "resources", "detail-type"}

// testEventPattern reports whether event matches pattern.
func testEventPattern(event, pattern string) (bool, error) {
	p, err := ParsePattern(pattern)
	if err != nil {
		return false, errInvalidPattern(err)
	}
	ev, err := DecodeEvent([]byte(event))
	if err != nil {
		return false, errValidation("Parameter Event is not valid.")
	}
	for _, f := range requiredEventFields {
		if _, ok := ev[f]; !ok {
			return false, errValidation("Parameter Event is not valid: it has no %q field.", f)
		}
	}
	return p.Match(ev), nil
}
