package eventbridge

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// maxPutEventsSize is the limit on a PutEvents request's entries, counted
// as AWS documents ("Calculating PutEvents event entry size").
const maxPutEventsSize = 256 << 10

const maxPutEventsEntries = 10

// putEntry is one PutEvents entry.
type putEntry struct {
	Source, DetailType, Detail, EventBusName string
	Resources                                []string
	// Time is the event's time; zero means now.
	Time time.Time
}

// putResult is the answer for one entry: an id, or an error.
type putResult struct {
	EventID, ErrorCode, ErrorMessage string
}

// envelope is an event as EventBridge writes it, in its field order.
type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// entrySize is an entry's size as AWS counts it.
func entrySize(e putEntry) int {
	n := len(e.Source) + len(e.DetailType) + len(e.Detail)
	if !e.Time.IsZero() {
		n += 14
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// putEvents validates each entry on its own (a bad entry fails alone, as
// in AWS), and routes the good ones.
func (s *Service) putEvents(entries []putEntry) ([]putResult, error) {
	if len(entries) == 0 || len(entries) > maxPutEventsEntries {
		return nil, errValidation("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and %d", maxPutEventsEntries)
	}
	total := 0
	for _, e := range entries {
		total += entrySize(e)
	}
	if total > maxPutEventsSize {
		return nil, errValidation("Total size of the entries in the request is over the limit.")
	}
	out := make([]putResult, len(entries))
	for i, e := range entries {
		body, ev, res := s.buildEvent(e)
		out[i] = res
		if res.ErrorCode == "" {
			s.route(res.EventID, body, ev)
		}
	}
	return out, nil
}

// buildEvent validates an entry and writes its event.
func (s *Service) buildEvent(e putEntry) ([]byte, map[string]any, putResult) {
	invalid := func(param string) putResult {
		return putResult{ErrorCode: "InvalidArgument", ErrorMessage: "Parameter " + param + " is not valid. Reason: " + param + " is a required argument."}
	}
	switch {
	case e.Source == "":
		return nil, nil, invalid("Source")
	case e.DetailType == "":
		return nil, nil, invalid("DetailType")
	case e.Detail == "":
		return nil, nil, invalid("Detail")
	}
	if err := s.checkBus(e.EventBusName); err != nil {
		return nil, nil, putResult{ErrorCode: "InvalidArgument", ErrorMessage: err.Error()}
	}
	var detail bytes.Buffer
	if err := json.Compact(&detail, []byte(e.Detail)); err != nil || detail.Len() == 0 || detail.Bytes()[0] != '{' {
		return nil, nil, putResult{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
	}
	t := e.Time
	if t.IsZero() {
		t = s.clock.Now()
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	env := envelope{
		Version:    "0",
		ID:         awsproto.RequestID(),
		DetailType: e.DetailType,
		Source:     e.Source,
		Account:    s.cfg.AccountID,
		Time:       t.UTC().Format("2006-01-02T15:04:05Z"),
		Region:     s.cfg.Region,
		Resources:  resources,
		Detail:     detail.Bytes(),
	}
	body, err := marshal(env)
	if err != nil {
		return nil, nil, putResult{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
	}
	ev, err := DecodeEvent(body)
	if err != nil {
		return nil, nil, putResult{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
	}
	return body, ev, putResult{EventID: env.ID}
}

// route matches an event against the enabled rules and queues a delivery
// to each target of each matching rule.
func (s *Service) route(eventID string, body []byte, ev map[string]any) {
	type match struct {
		rule    string
		targets []target
	}
	var matches []match
	s.mu.RLock()
	for _, r := range s.rules {
		if r.enabled() && r.pattern != nil && len(r.Targets) > 0 && r.pattern.Match(ev) {
			matches = append(matches, match{r.Name, append([]target(nil), r.Targets...)})
		}
	}
	s.mu.RUnlock()
	now := s.clock.Now()
	for _, m := range matches {
		for _, t := range m.targets {
			msg, ok := targetBody(t, body, ev)
			if !ok {
				s.log.Warn("input path selects nothing; delivery skipped", "rule", m.rule, "target-id", t.ID, "input-path", t.InputPath, "event-id", eventID)
				continue
			}
			d := Delivery{Rule: m.rule, TargetID: t.ID, QueueARN: t.ARN, EventID: eventID, Body: msg}
			var f Fault
			if s.cfg.Faults != nil {
				f = s.cfg.Faults.Fault(d)
			}
			s.d.accept(d, f, t.retry(), now)
		}
	}
}

// targetBody is what a target receives: the event, its Input constant, or
// the part of the event its InputPath selects (as JSON text).
func targetBody(t target, body []byte, ev map[string]any) (string, bool) {
	switch {
	case t.Input != "":
		return t.Input, true
	case t.InputPath != "":
		keys, err := parseInputPath(t.InputPath)
		if err != nil {
			return "", false
		}
		var v any = ev
		for _, k := range keys {
			obj, ok := v.(map[string]any)
			if !ok {
				return "", false
			}
			if v, ok = obj[k]; !ok {
				return "", false
			}
		}
		b, err := marshal(v)
		return string(b), err == nil
	default:
		return string(body), true
	}
}

// marshal is json.Marshal without HTML escaping, which AWS does not do.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
