package autoscaling

import (
	"context"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// CreateOrUpdateTags and DeleteTags on groups, as Auto Scaling serves
// them: every tag names its group (ResourceId) and the resource type
// auto-scaling-group; at most 50 tags per group; keys of 1-128 characters
// not starting with "aws:". The whole call is checked before any group
// changes, so a refused call changes nothing.

const maxGroupTags = 50

type groupTagInput struct {
	group, key, value string
	propagate         *bool
}

func parseGroupTags(f form, withValue bool) ([]groupTagInput, error) {
	ms := f.Structs("Tags.member")
	if len(ms) == 0 {
		return nil, awsproto.ValidationError("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	var out []groupTagInput
	for _, m := range ms {
		t := form{m}
		id, err := t.required("ResourceId")
		if err != nil {
			return nil, err
		}
		if rt := t.Get("ResourceType"); rt != "auto-scaling-group" {
			return nil, awsproto.ValidationError("Invalid resource type %q for tag on %s; use auto-scaling-group.", rt, id)
		}
		key, err := t.required("Key")
		if err != nil {
			return nil, err
		}
		if len(key) > 128 || (withValue && len(t.Get("Value")) > 256) {
			return nil, awsproto.ValidationError("Tag key %q or its value is too long (keys at most 128 characters, values at most 256).", key)
		}
		if strings.HasPrefix(strings.ToLower(key), "aws:") {
			return nil, awsproto.ValidationError("Tag keys starting with aws: are reserved: %s", key)
		}
		in := groupTagInput{group: id, key: key, value: t.Get("Value")}
		if withValue {
			if in.propagate, err = t.optBool("PropagateAtLaunch"); err != nil {
				return nil, err
			}
		}
		out = append(out, in)
	}
	return out, nil
}

func (s *Service) createOrUpdateTags(_ context.Context, f form) (any, error) {
	in, err := parseGroupTags(f, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string][]tag{}
	for _, t := range in {
		tags, ok := next[t.group]
		if !ok {
			g, err := s.mutableGroupLocked(t.group)
			if err != nil {
				return nil, err
			}
			tags = slices.Clone(g.Tags)
		}
		i := slices.IndexFunc(tags, func(x tag) bool { return x.Key == t.key })
		nt := tag{Key: t.key, Value: t.value, PropagateAtLaunch: t.propagate == nil || *t.propagate}
		if i >= 0 {
			if t.propagate == nil {
				nt.PropagateAtLaunch = tags[i].PropagateAtLaunch
			}
			tags[i] = nt
		} else {
			tags = append(tags, nt)
		}
		if len(tags) > maxGroupTags {
			return nil, errLimit("The quota of %d tags per Auto Scaling group %s has been reached.", maxGroupTags, t.group)
		}
		next[t.group] = tags
	}
	for name, tags := range next {
		s.st.Groups[name].Tags = tags
	}
	return nil, s.saveLocked()
}

func (s *Service) deleteTags(_ context.Context, f form) (any, error) {
	in, err := parseGroupTags(f, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range in {
		if _, err := s.mutableGroupLocked(t.group); err != nil {
			return nil, err
		}
	}
	for _, t := range in {
		g := s.st.Groups[t.group]
		g.Tags = slices.DeleteFunc(g.Tags, func(x tag) bool { return x.Key == t.key })
	}
	return nil, s.saveLocked()
}
