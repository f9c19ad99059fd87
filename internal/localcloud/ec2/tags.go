package ec2

import (
	"context"
	"maps"
	"slices"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// existsLocked returns the not-found error of a resource id that names
// nothing.
func (s *Service) existsLocked(id string) error {
	k, _ := kindOfID(id)
	var ok bool
	switch k.prefix {
	case kindVolume.prefix:
		_, ok = s.st.Volumes[id]
	case kindSnapshot.prefix:
		_, ok = s.st.Snapshots[id]
	case kindInstance.prefix:
		_, ok = s.st.Instances[id]
	case kindTemplate.prefix:
		_, ok = s.st.Templates[id]
	}
	if !ok {
		if k.prefix == kindTemplate.prefix {
			return awsproto.Errorf(k.notFound, "The specified launch template, with template ID %s, does not exist.", id)
		}
		return k.notFoundErr(id)
	}
	return nil
}

func (s *Service) createTags(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseCreateTags(v)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for _, t := range r.Tags {
		tags[t.Key] = t.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range r.ResourceIDs {
		if err := s.existsLocked(id); err != nil {
			return nil, err
		}
		n := len(s.st.Tags[id])
		for k := range tags {
			if _, ok := s.st.Tags[id][k]; !ok {
				n++
			}
		}
		if n > maxTagsPerRes {
			return nil, awsproto.Errorf("TagLimitExceeded", "The maximum number of tags (%d) for resource %s has been reached.", maxTagsPerRes, id)
		}
	}
	for _, id := range r.ResourceIDs {
		_ = s.addTagsLocked(id, tags) // checked above
	}
	return &returnResponse{Return: true}, s.saveLocked()
}

func (s *Service) deleteTags(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDeleteTags(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range r.ResourceIDs {
		if err := s.existsLocked(id); err != nil {
			return nil, err
		}
	}
	for _, id := range r.ResourceIDs {
		cur := s.st.Tags[id]
		if len(r.Tags) == 0 {
			delete(s.st.Tags, id)
			continue
		}
		for _, m := range r.Tags {
			if val, ok := cur[m.Key]; ok && (!m.HasValue || val == m.Value) {
				delete(cur, m.Key)
			}
		}
		if len(cur) == 0 {
			delete(s.st.Tags, id)
		}
	}
	return &returnResponse{Return: true}, s.saveLocked()
}

var tagFilters = []string{"key", "value", "resource-id", "resource-type"}

func (s *Service) describeTags(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribe(v, "", kind{}, 5, 1000, true)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, tagFilters...); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []tagDescriptionXML
	for _, id := range slices.Sorted(maps.Keys(s.st.Tags)) {
		if s.existsLocked(id) != nil {
			continue
		}
		k, _ := kindOfID(id)
		tags := s.st.Tags[id]
		for _, key := range slices.Sorted(maps.Keys(tags)) {
			d := tagDescriptionXML{ResourceID: id, ResourceType: k.resourceType, Key: key, Value: tags[key]}
			get := func(name string) []string {
				switch name {
				case "key":
					return []string{d.Key}
				case "value":
					return []string{d.Value}
				case "resource-id":
					return []string{d.ResourceID}
				case "resource-type":
					return []string{d.ResourceType}
				}
				return nil
			}
			if matchFilters(r.Filters, tags, get) {
				out = append(out, d)
			}
		}
	}
	page, next := paginate(out, func(d tagDescriptionXML) string { return d.ResourceID + "\x00" + d.Key }, r.Page)
	return &describeTagsResponse{Tags: page, NextToken: next}, nil
}
