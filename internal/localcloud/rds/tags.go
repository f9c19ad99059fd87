package rds

import (
	"context"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// resourceTags finds the tag list of the instance or snapshot an ARN
// names. s.mu is held.
func (s *Service) resourceTagsLocked(arn string) (*[]tag, error) {
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "rds" {
		return nil, invalid("The specified resource name does not match an RDS resource in this region: %s (want arn:aws:rds:%s:%s:db:ID or …:snapshot:ID)", truncate(arn, 100), s.cfg.Region, s.cfg.AccountID)
	}
	id := strings.ToLower(parts[6])
	switch {
	case parts[3] != s.cfg.Region || parts[4] != s.cfg.AccountID:
		return nil, invalid("The resource %s is not in this local cloud's region %s and account %s.", truncate(arn, 100), s.cfg.Region, s.cfg.AccountID)
	case parts[5] == "db":
		inst, ok := s.st.Instances[id]
		if !ok {
			return nil, errInstanceNotFound(id)
		}
		return &inst.Tags, nil
	case parts[5] == "snapshot":
		sn, ok := s.st.Snapshots[id]
		if !ok {
			return nil, errSnapshotNotFound(id)
		}
		return &sn.Tags, nil
	}
	return nil, invalid("This local cloud tags DB instances (…:db:ID) and DB snapshots (…:snapshot:ID), not %s resources.", truncate(parts[5], 32))
}

func (s *Service) addTags(_ context.Context, v awsproto.Values) (any, error) {
	arn, err := v.String("ResourceName", true)
	if err != nil {
		return nil, err
	}
	add, err := tags(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.resourceTagsLocked(arn)
	if err != nil {
		return nil, err
	}
	merged := mergeTags(*list, add)
	if len(merged) > maxTagsPerRes {
		return nil, awsproto.Errorf("TagQuotaPerResourceExceeded", "A resource takes at most %d tags; it would have %d.", maxTagsPerRes, len(merged))
	}
	*list = merged
	s.changedLocked()
	return nil, nil
}

func (s *Service) listTags(_ context.Context, v awsproto.Values) (any, error) {
	arn, err := v.String("ResourceName", true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.resourceTagsLocked(arn)
	if err != nil {
		return nil, err
	}
	return listTagsResult{TagList: tagList(*list)}, nil
}

func (s *Service) removeTags(_ context.Context, v awsproto.Values) (any, error) {
	arn, err := v.String("ResourceName", true)
	if err != nil {
		return nil, err
	}
	keys := v.List("TagKeys.member")
	if len(keys) == 0 {
		return nil, awsproto.Errorf("MissingParameter", "The request must contain the parameter TagKeys (TagKeys.member.N)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.resourceTagsLocked(arn)
	if err != nil {
		return nil, err
	}
	*list = slices.DeleteFunc(*list, func(t tag) bool { return slices.Contains(keys, t.Key) })
	s.changedLocked()
	return nil, nil
}
