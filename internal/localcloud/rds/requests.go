package rds

// The request side: form parameters into Go values, checked as RDS checks
// them. Lists use the shapes' member names (Tags.Tag.N,
// VpcSecurityGroupIds.VpcSecurityGroupId.N, Filters.Filter.N.Values.Value.M),
// as the SDKs and the CLI send them.

import (
	"regexp"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

const (
	maxListItems   = 100
	maxTagsPerRes  = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

var identRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// identifier reads an instance or snapshot identifier: RDS stores them
// lower-case, and an ARN names the same resource.
func identifier(v awsproto.Values, key, kind string, required bool) (string, error) {
	raw, err := v.String(key, required)
	if err != nil || raw == "" {
		return "", err
	}
	id := strings.ToLower(raw)
	if strings.HasPrefix(id, "arn:") {
		parts := strings.SplitN(id, ":", 7)
		if len(parts) != 7 || parts[2] != "rds" || parts[5] != kind {
			return "", invalid("The parameter %s is not a valid identifier or ARN of a %s: %s", key, kindName(kind), truncate(raw, 80))
		}
		id = parts[6]
	}
	if !identRE.MatchString(id) || strings.HasSuffix(id, "-") || strings.Contains(id, "--") {
		return "", invalid("The parameter %s is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; must be at most 63 characters; and must not end with a hyphen or contain two consecutive hyphens.", key)
	}
	return id, nil
}

func kindName(kind string) string {
	if kind == "snapshot" {
		return "DB snapshot"
	}
	return "DB instance"
}

// tags reads Tags.Tag.N.Key / .Value.
func tags(v awsproto.Values) ([]tag, error) {
	structs := v.Structs("Tags.Tag")
	// A client that sends awsquery's generic member name would have its
	// tags silently dropped; say so instead.
	if len(structs) == 0 && len(v.Structs("Tags.member")) > 0 {
		return nil, invalid("Tags must be sent as Tags.Tag.N.Key and Tags.Tag.N.Value (the Tag shape's member name), not Tags.member.N")
	}
	if len(structs) > maxTagsPerRes {
		return nil, invalid("Too many tags: %d; a resource takes at most %d", len(structs), maxTagsPerRes)
	}
	var out []tag
	seen := map[string]bool{}
	for _, t := range structs {
		tg := tag{Key: t.Get("Key"), Value: t.Get("Value")}
		switch {
		case tg.Key == "":
			return nil, invalid("Tag keys must not be empty")
		case len(tg.Key) > maxTagKeyLen:
			return nil, invalid("Tag key %s is longer than %d characters", truncate(tg.Key, 40), maxTagKeyLen)
		case len(tg.Value) > maxTagValueLen:
			return nil, invalid("The value of tag %s is longer than %d characters", tg.Key, maxTagValueLen)
		case strings.HasPrefix(strings.ToLower(tg.Key), "aws:"):
			return nil, invalid("Tag keys must not begin with aws: (%s)", tg.Key)
		case seen[tg.Key]:
			return nil, invalid("Tag key %s is given twice", tg.Key)
		}
		seen[tg.Key] = true
		out = append(out, tg)
	}
	return out, nil
}

// mergeTags sets add over have, keeping have's order.
func mergeTags(have, add []tag) []tag {
	out := append([]tag(nil), have...)
	for _, a := range add {
		found := false
		for i := range out {
			if out[i].Key == a.Key {
				out[i].Value, found = a.Value, true
			}
		}
		if !found {
			out = append(out, a)
		}
	}
	return out
}

func securityGroups(v awsproto.Values) ([]string, error) {
	ids := v.List("VpcSecurityGroupIds.VpcSecurityGroupId")
	if len(ids) == 0 && len(v.List("VpcSecurityGroupIds.member")) > 0 {
		return nil, invalid("VpcSecurityGroupIds must be sent as VpcSecurityGroupIds.VpcSecurityGroupId.N, not VpcSecurityGroupIds.member.N")
	}
	if len(ids) > maxListItems {
		return nil, invalid("Too many security groups: %d", len(ids))
	}
	return ids, nil
}

type filter struct {
	Name   string
	Values []string
}

// filters reads Filters.Filter.N.Name and .Values.Value.M, refusing names
// not in known.
func filters(v awsproto.Values, known ...string) ([]filter, error) {
	structs := v.Structs("Filters.Filter")
	if len(structs) > maxListItems {
		return nil, invalid("Too many filters: %d", len(structs))
	}
	var out []filter
	for _, f := range structs {
		name := f.Get("Name")
		found := false
		for _, k := range known {
			found = found || k == name
		}
		if !found {
			return nil, invalid("Unrecognized filter name: %s; this local cloud knows %s", truncate(name, 64), strings.Join(known, ", "))
		}
		vals := f.List("Values.Value")
		if len(vals) == 0 {
			return nil, invalid("The filter %s needs at least one value (Filters.Filter.N.Values.Value.M)", name)
		}
		out = append(out, filter{Name: name, Values: vals})
	}
	return out, nil
}

func (f filter) matches(s string) bool {
	for _, v := range f.Values {
		if v == s {
			return true
		}
	}
	return false
}

var (
	userRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)
	dbNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)
)

// reservedUsers are the names RDS keeps for itself (and this service's
// hidden superuser is one of them).
var reservedUsers = map[string]bool{adminUser: true, "rds_superuser": true, "rds_replication": true, "rdsrepladmin": true, "public": true, "none": true}

func masterUsername(v awsproto.Values) (string, error) {
	u := v.Get("MasterUsername")
	switch {
	case u == "":
		return "", invalid("The parameter MasterUsername must be provided and must not be blank.")
	case !userRE.MatchString(u):
		return "", invalid("MasterUsername %s is not valid: it must begin with a letter and contain 1 to 63 letters, digits or underscores.", truncate(u, 64))
	case reservedUsers[strings.ToLower(u)] || strings.HasPrefix(strings.ToLower(u), "pg_"):
		return "", invalid("MasterUsername %s cannot be used as it is a reserved word used by the engine", u)
	}
	return strings.ToLower(u), nil
}

// checkPassword applies RDS's rule for MasterUserPassword.
func checkPassword(p string) error {
	if len(p) < 8 || len(p) > 128 {
		return invalid("The parameter MasterUserPassword is not a valid password because it is shorter than 8 characters or longer than 128.")
	}
	for _, c := range p {
		if c < 0x21 || c > 0x7e || c == '/' || c == '@' || c == '"' {
			return invalid("The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used.")
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
