package ec2

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Launch templates keep numbered versions of the launch data the local
// cloud uses (image, instance type, user data, zone, tag specifications);
// RunInstances and Launch resolve $Latest, $Default or a number.

func templateNotFound(ref templateRef) error {
	if ref.ID != "" {
		return awsproto.Errorf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", ref.ID)
	}
	return awsproto.Errorf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", truncate(ref.Name, 128))
}

func (s *Service) findTemplateLocked(ref templateRef) (*launchTemplate, error) {
	if ref.ID != "" {
		if lt := s.st.Templates[ref.ID]; lt != nil {
			return lt, nil
		}
		return nil, templateNotFound(ref)
	}
	for _, lt := range s.st.Templates {
		if lt.Name == ref.Name {
			return lt, nil
		}
	}
	return nil, templateNotFound(ref)
}

// versionOf resolves "$Latest", "$Default", "" (the default) or a number.
func versionOf(lt *launchTemplate, version string) (*templateVers, error) {
	n := lt.DefaultVersion
	switch version {
	case "", "$Default":
	case "$Latest":
		n = lt.LatestVersion
	default:
		v, err := strconv.ParseInt(version, 10, 64)
		if err != nil || v < 1 {
			return nil, invalid("Launch template version %q is not $Latest, $Default or a version number.", truncate(version, 32))
		}
		n = v
	}
	for _, v := range lt.Versions {
		if v.Number == n {
			return v, nil
		}
	}
	return nil, awsproto.Errorf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for launch template with ID %s.", truncate(version, 32), lt.ID)
}

func (s *Service) resolveTemplateLocked(ref templateRef, version string) (*launchTemplate, *templateVers, error) {
	lt, err := s.findTemplateLocked(ref)
	if err != nil {
		return nil, nil, err
	}
	v, err := versionOf(lt, version)
	return lt, v, err
}

func (s *Service) createTemplate(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseCreateTemplate(v)
	if err != nil {
		return nil, err
	}
	hash := requestHash(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	tokenKey := "CreateLaunchTemplate:" + r.ClientToken
	if r.ClientToken != "" {
		if t, ok := s.st.Tokens[tokenKey]; ok {
			if t.Hash != hash {
				return nil, awsproto.Errorf("IdempotentParameterMismatch", "The client token '%s' was already used with different parameters.", r.ClientToken)
			}
			if lt := s.st.Templates[t.IDs[0]]; lt != nil {
				return &launchTemplateResponse{LaunchTemplate: s.templateXMLLocked(lt)}, nil
			}
		}
	}
	if _, err := s.findTemplateLocked(templateRef{Name: r.Name}); err == nil {
		return nil, awsproto.Errorf("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	now := s.clk.Now().UTC()
	lt := &launchTemplate{
		ID: newID("lt-"), Name: r.Name, CreateTime: now, DefaultVersion: 1, LatestVersion: 1,
		Versions: []*templateVers{{Number: 1, Description: r.Description, CreateTime: now, Data: r.Data.over(templateData{})}},
	}
	if err := s.addTagsLocked(lt.ID, tagsFor(r.Tags, "launch-template")); err != nil {
		return nil, err
	}
	s.st.Templates[lt.ID] = lt
	if r.ClientToken != "" {
		s.st.Tokens[tokenKey] = &clientToken{Hash: hash, IDs: []string{lt.ID}}
	}
	s.log.Info("launch template created", "launch-template-id", lt.ID, "name", lt.Name)
	return &launchTemplateResponse{LaunchTemplate: s.templateXMLLocked(lt)}, s.saveLocked()
}

func (s *Service) createTemplateVersion(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseCreateTemplateVersion(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(r.Ref)
	if err != nil {
		return nil, err
	}
	var base templateData
	if r.SourceVersion != "" {
		src, err := versionOf(lt, r.SourceVersion)
		if err != nil {
			return nil, err
		}
		base = src.Data
	}
	if len(lt.Versions) >= 10000 {
		return nil, awsproto.Errorf("VersionLimitExceeded", "Launch template %s has 10000 versions, the most it can have.", lt.ID)
	}
	lt.LatestVersion++
	ver := &templateVers{Number: lt.LatestVersion, Description: r.Description, CreateTime: s.clk.Now().UTC(), Data: r.Data.over(base)}
	lt.Versions = append(lt.Versions, ver)
	s.log.Info("launch template version created", "launch-template-id", lt.ID, "version", ver.Number)
	return &createTemplateVersionResponse{Version: s.versionXML(lt, ver)}, s.saveLocked()
}

func (s *Service) templateXMLLocked(lt *launchTemplate) launchTemplateXML {
	return launchTemplateXML{
		LaunchTemplateID: lt.ID, LaunchTemplateName: lt.Name, CreateTime: ts(lt.CreateTime),
		CreatedBy:            "arn:aws:iam::" + s.cfg.AccountID + ":root",
		DefaultVersionNumber: lt.DefaultVersion, LatestVersionNumber: lt.LatestVersion,
		Tags: tagSet(s.st.Tags[lt.ID]),
	}
}

func (s *Service) versionXML(lt *launchTemplate, v *templateVers) templateVersionXML {
	d := templateDataXML{ImageID: v.Data.ImageID, InstanceType: v.Data.InstanceType, UserData: v.Data.UserData}
	if v.Data.Zone != "" {
		d.Placement = &placementXML{AvailabilityZone: v.Data.Zone}
	}
	for _, spec := range v.Data.TagSpecs {
		x := templateTagSpecXML{ResourceType: spec.ResourceType}
		for _, t := range spec.Tags {
			x.Tags = append(x.Tags, tagXML(t))
		}
		d.TagSpecs = append(d.TagSpecs, x)
	}
	return templateVersionXML{
		LaunchTemplateID: lt.ID, LaunchTemplateName: lt.Name, VersionNumber: v.Number,
		VersionDescription: v.Description, CreateTime: ts(v.CreateTime),
		CreatedBy:      "arn:aws:iam::" + s.cfg.AccountID + ":root",
		DefaultVersion: v.Number == lt.DefaultVersion, Data: d,
	}
}

func (s *Service) describeTemplates(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribeTemplates(v)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, "launch-template-name", "create-time"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]bool{}
	for _, id := range r.IDs {
		if s.st.Templates[id] == nil {
			return nil, awsproto.Errorf("InvalidLaunchTemplateId.NotFound", "At least one of the launch templates specified in the request does not exist.")
		}
		want[id] = true
	}
	for _, name := range r.Names {
		lt, err := s.findTemplateLocked(templateRef{Name: name})
		if err != nil {
			return nil, awsproto.Errorf("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
		want[lt.ID] = true
	}
	var out []launchTemplateXML
	for _, id := range slices.Sorted(maps.Keys(s.st.Templates)) {
		lt := s.st.Templates[id]
		if len(want) > 0 && !want[id] {
			continue
		}
		get := func(name string) []string {
			switch name {
			case "launch-template-name":
				return []string{lt.Name}
			case "create-time":
				return []string{ts(lt.CreateTime)}
			}
			return nil
		}
		if matchFilters(r.Filters, s.st.Tags[id], get) {
			out = append(out, s.templateXMLLocked(lt))
		}
	}
	page, next := paginate(out, func(x launchTemplateXML) string { return x.LaunchTemplateID }, r.Page)
	return &describeTemplatesResponse{Templates: page, NextToken: next}, nil
}

func (s *Service) describeTemplateVersions(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribeTemplateVersions(v)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, "is-default-version", "image-id", "instance-type", "create-time"); err != nil {
		return nil, err
	}
	lo, hi := int64(1), int64(1<<62)
	for _, b := range []struct {
		s   string
		dst *int64
	}{{r.MinVersion, &lo}, {r.MaxVersion, &hi}} {
		if b.s == "" {
			continue
		}
		n, err := strconv.ParseInt(b.s, 10, 64)
		if err != nil {
			return nil, invalid("Version bound %q is not a version number.", truncate(b.s, 32))
		}
		*b.dst = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(r.Ref)
	if err != nil {
		return nil, err
	}
	var vers []*templateVers
	if len(r.Versions) > 0 {
		seen := map[int64]bool{}
		for _, name := range r.Versions {
			ver, err := versionOf(lt, name)
			if err != nil {
				return nil, err
			}
			if !seen[ver.Number] {
				seen[ver.Number] = true
				vers = append(vers, ver)
			}
		}
		slices.SortFunc(vers, func(a, b *templateVers) int { return cmp.Compare(a.Number, b.Number) })
	} else {
		vers = lt.Versions
	}
	var out []templateVersionXML
	for _, ver := range vers {
		if ver.Number < lo || ver.Number > hi {
			continue
		}
		x := s.versionXML(lt, ver)
		get := func(name string) []string {
			switch name {
			case "is-default-version":
				return []string{strconv.FormatBool(x.DefaultVersion)}
			case "image-id":
				return []string{x.Data.ImageID}
			case "instance-type":
				return []string{x.Data.InstanceType}
			case "create-time":
				return []string{x.CreateTime}
			}
			return nil
		}
		if matchFilters(r.Filters, nil, get) {
			out = append(out, x)
		}
	}
	page, next := paginate(out, func(x templateVersionXML) string { return fmt.Sprintf("%020d", x.VersionNumber) }, r.Page)
	return &describeTemplateVersionsResponse{Versions: page, NextToken: next}, nil
}

func (s *Service) modifyTemplate(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseModifyTemplate(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(r.Ref)
	if err != nil {
		return nil, err
	}
	if r.DefaultVersion != "" {
		ver, err := versionOf(lt, r.DefaultVersion)
		if err != nil {
			return nil, err
		}
		lt.DefaultVersion = ver.Number
	}
	return &launchTemplateResponse{LaunchTemplate: s.templateXMLLocked(lt)}, s.saveLocked()
}

func (s *Service) deleteTemplate(_ context.Context, v awsproto.Values) (response, error) {
	ref, err := parseTemplateRef(v)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(ref)
	if err != nil {
		return nil, err
	}
	x := s.templateXMLLocked(lt)
	delete(s.st.Templates, lt.ID)
	delete(s.st.Tags, lt.ID)
	s.log.Info("launch template deleted", "launch-template-id", lt.ID)
	return &launchTemplateResponse{LaunchTemplate: x}, s.saveLocked()
}
