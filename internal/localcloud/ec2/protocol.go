package ec2

// The request side of EC2's Query protocol: form parameters (Filter.1.Name,
// TagSpecification.1.Tag.1.Key, …) into Go structs, checked the way EC2
// checks them. Handlers never read a form field themselves.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Bounds on outside input, so that no request can make the service do
// unbounded work.
const (
	maxListItems   = 1000 // ids, filters, values, tags in one request
	maxTagKeyLen   = 128
	maxTagValueLen = 256
	maxTagsPerRes  = 50
	maxUserData    = 16 << 10 // decoded bytes, as in EC2
)

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type tagSpec struct {
	ResourceType string `json:"resourceType"`
	Tags         []tag  `json:"tags"`
}

type filter struct {
	Name   string
	Values []string
}

// pageReq is MaxResults/NextToken: Limit 0 means everything.
type pageReq struct {
	Limit int
	After string // the id the previous page ended with
}

func missing(name string) error {
	return awsproto.Errorf("MissingParameter", "The request must contain the parameter %s", name)
}

func invalid(format string, args ...any) error {
	return awsproto.InvalidParameterValue(format, args...)
}

// list returns prefix.N values, refusing more than maxListItems.
func list(v awsproto.Values, prefix string) ([]string, error) {
	out := v.List(prefix)
	if len(out) > maxListItems {
		return nil, invalid("Too many values for %s: %d, at most %d", prefix, len(out), maxListItems)
	}
	return out, nil
}

// parseFilters reads Filter.N.Name and Filter.N.Value.M.
func parseFilters(v awsproto.Values) ([]filter, error) {
	structs := v.Structs("Filter")
	if len(structs) > maxListItems {
		return nil, invalid("Too many filters: %d, at most %d", len(structs), maxListItems)
	}
	var out []filter
	for _, f := range structs {
		name := f.Get("Name")
		if name == "" {
			return nil, invalid("The filter 'null' is invalid")
		}
		vals, err := list(f, "Value")
		if err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			return nil, invalid("The filter '%s' has no values", name)
		}
		out = append(out, filter{Name: name, Values: vals})
	}
	return out, nil
}

// checkFilters refuses filter names the resource does not have. tag:KEY,
// tag-key and tag-value are known to every resource.
func checkFilters(fs []filter, known ...string) error {
	for _, f := range fs {
		if strings.HasPrefix(f.Name, "tag:") && len(f.Name) > 4 || f.Name == "tag-key" || f.Name == "tag-value" {
			continue
		}
		if !slices.Contains(known, f.Name) {
			return invalid("The filter '%s' is invalid", f.Name)
		}
	}
	return nil
}

// parsePage reads MaxResults and NextToken; lo and hi are the action's
// bounds on MaxResults (above hi is clamped to hi, as EC2 does).
func parsePage(v awsproto.Values, lo, hi int) (pageReq, error) {
	var p pageReq
	n, err := v.Int("MaxResults", 0)
	if err != nil {
		return p, err
	}
	if v.Get("MaxResults") != "" {
		if n < lo {
			return p, invalid("Value ( %d ) for parameter maxResults is invalid. Expecting a value greater than %d.", n, lo-1)
		}
		p.Limit = min(n, hi)
	}
	if tok := v.Get("NextToken"); tok != "" {
		after, err := decodeToken(tok)
		if err != nil {
			return p, err
		}
		p.After = after
		if p.Limit == 0 {
			p.Limit = hi
		}
	}
	return p, nil
}

func (p pageReq) used() bool { return p.Limit > 0 }

const tokenPrefix = "lc1:"

func encodeToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + lastID))
}

func decodeToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), tokenPrefix) || len(b) == len(tokenPrefix) {
		return "", awsproto.Errorf("InvalidPaginationToken", "The pagination token %q is not valid", truncate(tok, 64))
	}
	return strings.TrimPrefix(string(b), tokenPrefix), nil
}

// paginate returns the page of items (sorted by key) after p.After, and the
// token for the next page, if any.
func paginate[T any](items []T, key func(T) string, p pageReq) ([]T, string) {
	if p.After != "" {
		i, _ := slices.BinarySearchFunc(items, p.After, func(it T, k string) int { return strings.Compare(key(it), k) })
		for i < len(items) && key(items[i]) <= p.After {
			i++
		}
		items = items[i:]
	}
	if p.Limit == 0 || len(items) <= p.Limit {
		return items, ""
	}
	items = items[:p.Limit]
	return items, encodeToken(key(items[len(items)-1]))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseTags reads prefix.N.Key / prefix.N.Value (Value may be absent).
func parseTags(v awsproto.Values, prefix string) ([]tag, error) {
	structs := v.Structs(prefix)
	if len(structs) > maxListItems {
		return nil, invalid("Too many tags: %d", len(structs))
	}
	var out []tag
	seen := map[string]bool{}
	for _, t := range structs {
		tg := tag{Key: t.Get("Key"), Value: t.Get("Value")}
		if err := checkTag(tg); err != nil {
			return nil, err
		}
		if seen[tg.Key] {
			return nil, invalid("Duplicate tag key '%s' specified", tg.Key)
		}
		seen[tg.Key] = true
		out = append(out, tg)
	}
	return out, nil
}

func checkTag(t tag) error {
	switch {
	case t.Key == "":
		return invalid("Tag key must not be empty")
	case len(t.Key) > maxTagKeyLen:
		return invalid("Tag key exceeds the maximum length of %d characters", maxTagKeyLen)
	case len(t.Value) > maxTagValueLen:
		return invalid("Tag value exceeds the maximum length of %d characters", maxTagValueLen)
	case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
		return invalid("Tag keys starting with 'aws:' are reserved for internal use")
	}
	return nil
}

// parseTagSpecs reads prefix.N.ResourceType and prefix.N.Tag.M.*, allowing
// only the given resource types.
func parseTagSpecs(v awsproto.Values, prefix string, allowed ...string) ([]tagSpec, error) {
	structs := v.Structs(prefix)
	if len(structs) > maxListItems {
		return nil, invalid("Too many tag specifications: %d", len(structs))
	}
	var out []tagSpec
	for _, s := range structs {
		rt := s.Get("ResourceType")
		if rt == "" {
			return nil, missing(prefix + ".ResourceType")
		}
		if !slices.Contains(allowed, rt) {
			return nil, invalid("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags, err := parseTags(s, "Tag")
		if err != nil {
			return nil, err
		}
		out = append(out, tagSpec{ResourceType: rt, Tags: tags})
	}
	return out, nil
}

// tagsFor merges the specs' tags for one resource type.
func tagsFor(specs []tagSpec, resourceType string) map[string]string {
	out := map[string]string{}
	for _, s := range specs {
		if s.ResourceType == resourceType {
			for _, t := range s.Tags {
				out[t.Key] = t.Value
			}
		}
	}
	return out
}

// requestHash identifies a request's parameters for client-token
// idempotency: every parameter but the token, the action and DryRun.
func requestHash(v awsproto.Values) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(v.Values)) {
		switch k {
		case "ClientToken", "DryRun", "Version":
			continue
		}
		for _, val := range v.Values[k] {
			h.Write([]byte(strconv.Quote(k) + "=" + strconv.Quote(val) + "\n"))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func clientTokenOf(v awsproto.Values) (string, error) {
	tok := v.Get("ClientToken")
	if len(tok) > 64 {
		return "", invalid("Value (%s) for parameter clientToken is invalid. Length exceeds 64 characters.", truncate(tok, 64))
	}
	return tok, nil
}

// ---- volumes and snapshots ----

var volumeTypes = []string{"standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"}

type createVolumeReq struct {
	Zone, ZoneID, SnapshotID, VolumeType, ClientToken string
	Size, Iops                                        int
	SizeSet                                           bool
	Tags                                              []tagSpec
	Hash                                              string
}

func parseCreateVolume(v awsproto.Values) (r createVolumeReq, err error) {
	r.Zone, r.ZoneID, r.SnapshotID = v.Get("AvailabilityZone"), v.Get("AvailabilityZoneId"), v.Get("SnapshotId")
	if r.Zone == "" && r.ZoneID == "" {
		return r, missing("AvailabilityZone")
	}
	if r.Size, err = v.Int("Size", 0); err != nil {
		return r, err
	}
	r.SizeSet = v.Get("Size") != ""
	if !r.SizeSet && r.SnapshotID == "" {
		return r, missing("size or snapshotId")
	}
	if r.SizeSet && (r.Size < 1 || r.Size > 65536) {
		return r, invalid("The parameter size must be between 1 and 65536 GiB; got %d", r.Size)
	}
	if r.SnapshotID != "" {
		if err := kindSnapshot.check(r.SnapshotID); err != nil {
			return r, err
		}
	}
	r.VolumeType = v.Get("VolumeType")
	if r.VolumeType == "" {
		r.VolumeType = "gp2"
	}
	if !slices.Contains(volumeTypes, r.VolumeType) {
		return r, invalid("Value (%s) for parameter volumeType is invalid. Valid types: %s", r.VolumeType, strings.Join(volumeTypes, ", "))
	}
	if r.Iops, err = v.Int("Iops", 0); err != nil {
		return r, err
	}
	if r.ClientToken, err = clientTokenOf(v); err != nil {
		return r, err
	}
	if r.Tags, err = parseTagSpecs(v, "TagSpecification", "volume"); err != nil {
		return r, err
	}
	r.Hash = requestHash(v)
	return r, nil
}

type describeReq struct {
	IDs     []string
	Filters []filter
	Page    pageReq
}

// parseDescribe reads the ids (idKey.N, checked against k), Filter.N and
// paging. idsWithPaging says whether EC2 lets ids and MaxResults be
// combined.
func parseDescribe(v awsproto.Values, idKey string, k kind, lo, hi int, idsWithPaging bool) (r describeReq, err error) {
	if idKey != "" {
		if r.IDs, err = list(v, idKey); err != nil {
			return r, err
		}
		for _, id := range r.IDs {
			if err := k.check(id); err != nil {
				return r, err
			}
		}
	}
	if r.Filters, err = parseFilters(v); err != nil {
		return r, err
	}
	if r.Page, err = parsePage(v, lo, hi); err != nil {
		return r, err
	}
	if !idsWithPaging && len(r.IDs) > 0 && v.Get("MaxResults") != "" {
		return r, awsproto.Errorf("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", idKey)
	}
	return r, nil
}

// deviceRE is the device names EC2 accepts for EBS volumes on Linux.
var deviceRE = regexp.MustCompile(`^(/dev/)?(sd[a-z]{1,2}[0-9]{0,2}|xvd[a-z]{1,2}[0-9]{0,2})$`)

type attachVolumeReq struct{ VolumeID, InstanceID, Device string }

func parseAttachVolume(v awsproto.Values) (r attachVolumeReq, err error) {
	r.VolumeID, r.InstanceID, r.Device = v.Get("VolumeId"), v.Get("InstanceId"), v.Get("Device")
	switch {
	case r.Device == "":
		return r, missing("Device")
	case r.InstanceID == "":
		return r, missing("InstanceId")
	case r.VolumeID == "":
		return r, missing("VolumeId")
	}
	if err := kindVolume.check(r.VolumeID); err != nil {
		return r, err
	}
	if err := kindInstance.check(r.InstanceID); err != nil {
		return r, err
	}
	if !deviceRE.MatchString(r.Device) {
		return r, invalid("Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", r.Device, r.Device)
	}
	return r, nil
}

type detachVolumeReq struct {
	VolumeID, InstanceID, Device string
	Force                        bool
}

func parseDetachVolume(v awsproto.Values) (r detachVolumeReq, err error) {
	r.VolumeID, r.InstanceID, r.Device = v.Get("VolumeId"), v.Get("InstanceId"), v.Get("Device")
	if r.VolumeID == "" {
		return r, missing("VolumeId")
	}
	if err := kindVolume.check(r.VolumeID); err != nil {
		return r, err
	}
	if r.InstanceID != "" {
		if err := kindInstance.check(r.InstanceID); err != nil {
			return r, err
		}
	}
	r.Force, err = v.Bool("Force", false)
	return r, err
}

// parseID reads one required id of kind k.
func parseID(v awsproto.Values, key string, k kind) (string, error) {
	id := v.Get(key)
	if id == "" {
		return "", missing(key)
	}
	return id, k.check(id)
}

type createSnapshotReq struct {
	VolumeID, Description string
	Tags                  []tagSpec
}

func parseCreateSnapshot(v awsproto.Values) (r createSnapshotReq, err error) {
	if r.VolumeID, err = parseID(v, "VolumeId", kindVolume); err != nil {
		return r, err
	}
	r.Description = v.Get("Description")
	if len(r.Description) > 255 {
		return r, invalid("Value for parameter description is invalid. Length exceeds 255 characters.")
	}
	r.Tags, err = parseTagSpecs(v, "TagSpecification", "snapshot")
	return r, err
}

type describeSnapshotsReq struct {
	describeReq
	Owners, RestorableBy []string
}

func parseDescribeSnapshots(v awsproto.Values) (r describeSnapshotsReq, err error) {
	if r.describeReq, err = parseDescribe(v, "SnapshotId", kindSnapshot, 5, 1000, false); err != nil {
		return r, err
	}
	if r.Owners, err = list(v, "Owner"); err != nil {
		return r, err
	}
	r.RestorableBy, err = list(v, "RestorableBy")
	return r, err
}

// ---- tags ----

type createTagsReq struct {
	ResourceIDs []string
	Tags        []tag
}

func parseResourceIDs(v awsproto.Values) ([]string, error) {
	ids, err := list(v, "ResourceId")
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, missing("ResourceId")
	}
	for _, id := range ids {
		k, ok := kindOfID(id)
		if !ok || k.prefix == kindImage.prefix || !validID(id, k.prefix) {
			return nil, awsproto.Errorf("InvalidID", "The ID '%s' is not valid", truncate(id, 64))
		}
	}
	return ids, nil
}

func parseCreateTags(v awsproto.Values) (r createTagsReq, err error) {
	if r.ResourceIDs, err = parseResourceIDs(v); err != nil {
		return r, err
	}
	if r.Tags, err = parseTags(v, "Tag"); err != nil {
		return r, err
	}
	if len(r.Tags) == 0 {
		return r, missing("Tag")
	}
	return r, nil
}

// tagMatch is a DeleteTags tag: with HasValue, only a tag with exactly
// that value is deleted (an empty value matches only an empty value).
type tagMatch struct {
	Key, Value string
	HasValue   bool
}

type deleteTagsReq struct {
	ResourceIDs []string
	Tags        []tagMatch // none: delete every tag
}

func parseDeleteTags(v awsproto.Values) (r deleteTagsReq, err error) {
	if r.ResourceIDs, err = parseResourceIDs(v); err != nil {
		return r, err
	}
	structs := v.Structs("Tag")
	if len(structs) > maxListItems {
		return r, invalid("Too many tags: %d", len(structs))
	}
	for _, t := range structs {
		_, has := t.Values["Value"]
		m := tagMatch{Key: t.Get("Key"), Value: t.Get("Value"), HasValue: has}
		if m.Key == "" {
			return r, invalid("Tag key must not be empty")
		}
		if strings.HasPrefix(strings.ToLower(m.Key), "aws:") {
			return r, invalid("Tag keys starting with 'aws:' are reserved for internal use")
		}
		r.Tags = append(r.Tags, m)
	}
	return r, nil
}

// ---- instances ----

type templateRef struct{ ID, Name, Version string }

type runInstancesReq struct {
	ImageID, InstanceType, Zone, ClientToken string
	Template                                 *templateRef
	MinCount, MaxCount                       int
	UserData                                 []byte
	UserDataSet                              bool
	Tags                                     []tagSpec
	Hash                                     string
}

func parseRunInstances(v awsproto.Values) (r runInstancesReq, err error) {
	r.ImageID, r.InstanceType, r.Zone = v.Get("ImageId"), v.Get("InstanceType"), v.Get("Placement.AvailabilityZone")
	if id, name := v.Get("LaunchTemplate.LaunchTemplateId"), v.Get("LaunchTemplate.LaunchTemplateName"); id != "" || name != "" {
		if id != "" && name != "" {
			return r, awsproto.Errorf("InvalidParameterCombination", "Specify either a launch template ID or a launch template name, not both")
		}
		if id != "" {
			if err := kindTemplate.check(id); err != nil {
				return r, err
			}
		}
		r.Template = &templateRef{ID: id, Name: name, Version: v.Get("LaunchTemplate.Version")}
	}
	if r.ImageID == "" && r.Template == nil {
		return r, missing("ImageId")
	}
	if r.ImageID != "" {
		if err := kindImage.check(r.ImageID); err != nil {
			return r, err
		}
	}
	if v.Get("MinCount") == "" {
		return r, missing("MinCount")
	}
	if v.Get("MaxCount") == "" {
		return r, missing("MaxCount")
	}
	if r.MinCount, err = v.Int("MinCount", 0); err != nil {
		return r, err
	}
	if r.MaxCount, err = v.Int("MaxCount", 0); err != nil {
		return r, err
	}
	switch {
	case r.MinCount < 1 || r.MaxCount < 1:
		return r, invalid("MinCount and MaxCount must be at least 1")
	case r.MinCount > r.MaxCount:
		return r, invalid("MinCount (%d) must not be greater than MaxCount (%d)", r.MinCount, r.MaxCount)
	case r.MinCount > maxLaunch:
		return r, awsproto.Errorf("InstanceLimitExceeded", "You have requested more instances (%d) than the local cloud allows in one request (%d).", r.MinCount, maxLaunch)
	}
	r.MaxCount = min(r.MaxCount, maxLaunch)
	if ud, ok := v.Values["UserData"]; ok && len(ud) > 0 && ud[0] != "" {
		if r.UserData, err = decodeUserData(ud[0]); err != nil {
			return r, err
		}
		r.UserDataSet = true
	}
	if r.ClientToken, err = clientTokenOf(v); err != nil {
		return r, err
	}
	if r.Tags, err = parseTagSpecs(v, "TagSpecification", "instance", "volume"); err != nil {
		return r, err
	}
	r.Hash = requestHash(v)
	return r, nil
}

// maxLaunch bounds one RunInstances call: every instance is a process.
const maxLaunch = 50

func decodeUserData(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid("Invalid BASE64 encoding of user data.")
	}
	if len(b) > maxUserData {
		return nil, invalid("User data is limited to %d bytes", maxUserData)
	}
	return b, nil
}

type instanceIDsReq struct {
	IDs   []string
	Force bool
}

func parseInstanceIDs(v awsproto.Values) (r instanceIDsReq, err error) {
	if r.IDs, err = list(v, "InstanceId"); err != nil {
		return r, err
	}
	if len(r.IDs) == 0 {
		return r, missing("InstanceId")
	}
	for _, id := range r.IDs {
		if err := kindInstance.check(id); err != nil {
			return r, err
		}
	}
	r.Force, err = v.Bool("Force", false)
	return r, err
}

type describeZonesReq struct {
	Names, IDs []string
	Filters    []filter
}

func parseDescribeZones(v awsproto.Values) (r describeZonesReq, err error) {
	if r.Names, err = list(v, "ZoneName"); err != nil {
		return r, err
	}
	if r.IDs, err = list(v, "ZoneId"); err != nil {
		return r, err
	}
	r.Filters, err = parseFilters(v)
	return r, err
}

// ---- launch templates ----

var templateNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)

// templateDataReq is LaunchTemplateData with what was given marked, so a
// new version can override only those fields of its source version.
type templateDataReq struct {
	ImageID, InstanceType, UserData, Zone *string
	TagSpecs                              []tagSpec
	TagSpecsSet                           bool
}

func parseTemplateData(v awsproto.Values) (d templateDataReq, err error) {
	opt := func(key string) *string {
		if vals, ok := v.Values["LaunchTemplateData."+key]; ok && len(vals) > 0 {
			s := vals[0]
			return &s
		}
		return nil
	}
	d.ImageID, d.InstanceType, d.UserData, d.Zone = opt("ImageId"), opt("InstanceType"), opt("UserData"), opt("Placement.AvailabilityZone")
	if d.ImageID != nil && *d.ImageID != "" {
		if err := kindImage.check(*d.ImageID); err != nil {
			return d, err
		}
	}
	if d.UserData != nil && *d.UserData != "" {
		if _, err := decodeUserData(*d.UserData); err != nil {
			return d, err
		}
	}
	if d.TagSpecs, err = parseTagSpecs(v, "LaunchTemplateData.TagSpecification", "instance", "volume", "network-interface", "spot-instances-request"); err != nil {
		return d, err
	}
	d.TagSpecsSet = len(d.TagSpecs) > 0
	return d, nil
}

// over returns base with d's given fields applied.
func (d templateDataReq) over(base templateData) templateData {
	out := base
	out.TagSpecs = slices.Clone(base.TagSpecs)
	if d.ImageID != nil {
		out.ImageID = *d.ImageID
	}
	if d.InstanceType != nil {
		out.InstanceType = *d.InstanceType
	}
	if d.UserData != nil {
		out.UserData = *d.UserData
	}
	if d.Zone != nil {
		out.Zone = *d.Zone
	}
	if d.TagSpecsSet {
		out.TagSpecs = d.TagSpecs
	}
	return out
}

type createTemplateReq struct {
	Name, Description, ClientToken string
	Data                           templateDataReq
	Tags                           []tagSpec
}

func parseCreateTemplate(v awsproto.Values) (r createTemplateReq, err error) {
	r.Name, r.Description = v.Get("LaunchTemplateName"), v.Get("VersionDescription")
	if r.Name == "" {
		return r, missing("LaunchTemplateName")
	}
	if !templateNameRE.MatchString(r.Name) {
		return r, invalid("Launch template name %q is invalid: want 3 to 128 letters, digits and ( ) . - / _", truncate(r.Name, 128))
	}
	if r.ClientToken, err = clientTokenOf(v); err != nil {
		return r, err
	}
	if r.Data, err = parseTemplateData(v); err != nil {
		return r, err
	}
	r.Tags, err = parseTagSpecs(v, "TagSpecification", "launch-template")
	return r, err
}

// parseTemplateRef reads LaunchTemplateId or LaunchTemplateName (exactly
// one).
func parseTemplateRef(v awsproto.Values) (templateRef, error) {
	r := templateRef{ID: v.Get("LaunchTemplateId"), Name: v.Get("LaunchTemplateName")}
	switch {
	case r.ID == "" && r.Name == "":
		return r, missing("LaunchTemplateId or LaunchTemplateName")
	case r.ID != "" && r.Name != "":
		return r, awsproto.Errorf("InvalidParameterCombination", "Specify either a launch template ID or a launch template name, not both")
	case r.ID != "":
		return r, kindTemplate.check(r.ID)
	}
	return r, nil
}

type createTemplateVersionReq struct {
	Ref                        templateRef
	SourceVersion, Description string
	Data                       templateDataReq
}

func parseCreateTemplateVersion(v awsproto.Values) (r createTemplateVersionReq, err error) {
	if r.Ref, err = parseTemplateRef(v); err != nil {
		return r, err
	}
	r.SourceVersion, r.Description = v.Get("SourceVersion"), v.Get("VersionDescription")
	r.Data, err = parseTemplateData(v)
	return r, err
}

type describeTemplatesReq struct {
	IDs, Names []string
	Filters    []filter
	Page       pageReq
}

func parseDescribeTemplates(v awsproto.Values) (r describeTemplatesReq, err error) {
	if r.IDs, err = list(v, "LaunchTemplateId"); err != nil {
		return r, err
	}
	for _, id := range r.IDs {
		if err := kindTemplate.check(id); err != nil {
			return r, err
		}
	}
	if r.Names, err = list(v, "LaunchTemplateName"); err != nil {
		return r, err
	}
	if r.Filters, err = parseFilters(v); err != nil {
		return r, err
	}
	r.Page, err = parsePage(v, 1, 200)
	return r, err
}

type describeTemplateVersionsReq struct {
	Ref                    templateRef
	Versions               []string
	MinVersion, MaxVersion string
	Filters                []filter
	Page                   pageReq
}

func parseDescribeTemplateVersions(v awsproto.Values) (r describeTemplateVersionsReq, err error) {
	if r.Ref, err = parseTemplateRef(v); err != nil {
		return r, err
	}
	if r.Versions, err = list(v, "LaunchTemplateVersion"); err != nil {
		return r, err
	}
	r.MinVersion, r.MaxVersion = v.Get("MinVersion"), v.Get("MaxVersion")
	if r.Filters, err = parseFilters(v); err != nil {
		return r, err
	}
	r.Page, err = parsePage(v, 1, 200)
	return r, err
}

type modifyTemplateReq struct {
	Ref            templateRef
	DefaultVersion string
}

func parseModifyTemplate(v awsproto.Values) (r modifyTemplateReq, err error) {
	if r.Ref, err = parseTemplateRef(v); err != nil {
		return r, err
	}
	r.DefaultVersion = v.Get("SetDefaultVersion")
	return r, nil
}
