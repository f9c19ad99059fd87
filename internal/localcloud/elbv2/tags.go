package elbv2

import (
	"context"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Tags on load balancers, target groups and listeners, as ELBv2's AddTags,
// RemoveTags and DescribeTags serve them: up to 20 resources per call, 50
// tags per resource, keys of 1-128 characters, no "aws:" prefix. A resource
// that does not exist fails the whole call with its kind's not-found code,
// and a failed call changes nothing.

const (
	maxTagResources = 20
	maxTags         = 50
)

type tagDescription struct {
	ResourceArn string
	Tags        []xmlTag `xml:"Tags>member"`
}

type xmlTag struct {
	Key   string
	Value string
}

type describeTagsResult struct {
	TagDescriptions []tagDescription `xml:"TagDescriptions>member"`
}

type emptyResult struct{}

// tagsOfLocked returns a pointer to the resource's tags, or the resource's
// not-found error.
func (s *Service) tagsOfLocked(arn string) (*[]tag, error) {
	switch {
	case strings.Contains(arn, ":loadbalancer/"):
		if lb := s.lbs[arn]; lb != nil {
			return &lb.Tags, nil
		}
		return nil, errLoadBalancerNotFound()
	case strings.Contains(arn, ":targetgroup/"):
		if tg := s.tgs[arn]; tg != nil {
			return &tg.Tags, nil
		}
		return nil, errTargetGroupNotFound()
	case strings.Contains(arn, ":listener/"):
		if l := s.listeners[arn]; l != nil {
			return &l.Tags, nil
		}
		return nil, errListenerNotFound()
	}
	return nil, errValidation("'%s' is not a valid load balancer, target group or listener ARN", arn)
}

func resourceARNs(v awsproto.Values) ([]string, error) {
	arns := uniq(v.List("ResourceArns.member"))
	switch {
	case len(arns) == 0:
		return nil, errValidation("A value for 'ResourceArns' must be specified")
	case len(arns) > maxTagResources:
		return nil, errValidation("1 validation error detected: Value at 'resourceArns' failed to satisfy constraint: Member must have length less than or equal to %d", maxTagResources)
	}
	return arns, nil
}

func (s *Service) apiAddTags(_ context.Context, v awsproto.Values) (any, error) {
	arns, err := resourceARNs(v)
	if err != nil {
		return nil, err
	}
	add := tags(v)
	if len(add) == 0 {
		return nil, errValidation("A value for 'Tags' must be specified")
	}
	for _, t := range add {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, errValidation("Tag keys must be 1 to 128 characters and values at most 256: '%s'", t.Key)
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, errValidation("Tag keys starting with 'aws:' are reserved: '%s'", t.Key)
		}
	}
	err = s.mutate(func() error {
		var targets []*[]tag
		for _, arn := range arns {
			p, err := s.tagsOfLocked(arn)
			if err != nil {
				return err
			}
			merged := mergeTags(*p, add)
			if len(merged) > maxTags {
				return awsproto.Errorf("TooManyTags", "The quota for the number of tags that can be assigned to a load balancer has been reached")
			}
			targets = append(targets, p)
		}
		for _, p := range targets {
			*p = mergeTags(*p, add)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return emptyResult{}, nil
}

func mergeTags(have, add []tag) []tag {
	out := slices.Clone(have)
	for _, t := range add {
		if i := slices.IndexFunc(out, func(x tag) bool { return x.Key == t.Key }); i >= 0 {
			out[i].Value = t.Value
			continue
		}
		out = append(out, t)
	}
	return out
}

func (s *Service) apiRemoveTags(_ context.Context, v awsproto.Values) (any, error) {
	arns, err := resourceARNs(v)
	if err != nil {
		return nil, err
	}
	keys := v.List("TagKeys.member")
	if len(keys) == 0 {
		return nil, errValidation("A value for 'TagKeys' must be specified")
	}
	err = s.mutate(func() error {
		var targets []*[]tag
		for _, arn := range arns {
			p, err := s.tagsOfLocked(arn)
			if err != nil {
				return err
			}
			targets = append(targets, p)
		}
		for _, p := range targets {
			*p = slices.DeleteFunc(slices.Clone(*p), func(t tag) bool { return slices.Contains(keys, t.Key) })
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return emptyResult{}, nil
}

func (s *Service) apiDescribeTags(_ context.Context, v awsproto.Values) (any, error) {
	arns, err := resourceARNs(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := describeTagsResult{}
	for _, arn := range arns {
		p, err := s.tagsOfLocked(arn)
		if err != nil {
			return nil, err
		}
		d := tagDescription{ResourceArn: arn, Tags: []xmlTag{}}
		for _, t := range *p {
			d.Tags = append(d.Tags, xmlTag(t))
		}
		out.TagDescriptions = append(out.TagDescriptions, d)
	}
	return out, nil
}
