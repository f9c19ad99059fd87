package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ARN is a parsed Amazon Resource Name.
type ARN struct {
	Partition, Service, Region, Account, ResourceType, ResourceID string
	// sep is ':' when the resource was written TYPE:ID (as Auto Scaling
	// does), so String gives back the same text; zero means '/'.
	sep byte
}

// String formats a as arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE/ID. An ARN
// parsed from the region-in-account quirk comes back in the standard shape,
// with the region in its own field and an empty account.
func (a ARN) String() string {
	sep := "/"
	if a.sep == ':' {
		sep = ":"
	}
	return "arn:" + a.Partition + ":" + a.Service + ":" + a.Region + ":" + a.Account + ":" + a.ResourceType + sep + a.ResourceID
}

const maxARNLen = 2048 // the longest ARN AWS APIs accept

var partitions = map[string]bool{"aws": true, "aws-cn": true, "aws-us-gov": true}

// ParseARN parses s, accepting standard ARNs in the aws, aws-cn and
// aws-us-gov partitions and exactly the irregular shapes EBS events are known
// to carry:
//
//   - an empty account, as in arn:aws:ec2:us-east-1::volume/vol-0a1b;
//   - for service ec2, the region written in the account field with the
//     region field empty, as in arn:aws:ec2::us-west-2:snapshot/snap-0a1b
//     (the shape of AWS's published createSnapshot example). The result has
//     Region "us-west-2" and an empty Account.
//
// Anything else is rejected with an *ARNError saying what was wrong. The
// resource must be TYPE/ID or TYPE:ID; ID may itself contain '/' and ':'.
func ParseARN(s string) (ARN, error) {
	fail := func(format string, args ...any) (ARN, error) {
		return ARN{}, &ARNError{Input: s, Problem: fmt.Sprintf(format, args...)}
	}
	if len(s) > maxARNLen {
		return fail("%d bytes long, more than the %d an ARN can have", len(s), maxARNLen)
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
		return fail("has a space or control character at byte %d", i)
	}
	if !strings.HasPrefix(s, "arn:") {
		return fail(`does not start with "arn:"`)
	}
	f := strings.SplitN(s, ":", 6)
	if len(f) < 6 {
		return fail("has %d colon-separated fields, want 6", len(f))
	}
	a := ARN{Partition: f[1], Service: f[2], Region: f[3], Account: f[4]}
	if !partitions[a.Partition] {
		return fail("partition %q is not aws, aws-cn or aws-us-gov", a.Partition)
	}
	if a.Service == "" || strings.IndexFunc(a.Service, notServiceRune) >= 0 {
		return fail("service %q is not lowercase letters, digits and dashes", a.Service)
	}
	if a.Region != "" && !IsRegion(a.Region) {
		return fail("region %q is not a region name like us-east-1", a.Region)
	}
	switch {
	case a.Account == "" || isAccount(a.Account):
	case IsRegion(a.Account) && a.Region == "" && a.Service == "ec2":
		// EBS writes some ARNs with the region one field to the right.
		a.Region, a.Account = a.Account, ""
	case IsRegion(a.Account) && a.Region == "":
		return fail("account field holds region %q, a quirk accepted only for service ec2, not %q", a.Account, a.Service)
	case IsRegion(a.Account):
		return fail("account field holds region %q while the region field already holds %q", a.Account, a.Region)
	default:
		return fail("account %q is not 12 digits, empty, or (with an empty region field) a region name", a.Account)
	}
	if a.Region != "" && partitionOf(a.Region) != a.Partition {
		return fail("region %q is in partition %s, not %s", a.Region, partitionOf(a.Region), a.Partition)
	}
	res := f[5]
	i := strings.IndexAny(res, "/:")
	if i < 0 {
		return fail("resource %q has no TYPE/ID", res)
	}
	a.ResourceType, a.ResourceID = res[:i], res[i+1:]
	if res[i] == ':' {
		a.sep = ':'
	}
	if a.ResourceType == "" || strings.IndexFunc(a.ResourceType, notTypeRune) >= 0 {
		return fail("resource type %q is not letters, digits, '-' and '_'", a.ResourceType)
	}
	if a.ResourceID == "" {
		return fail("resource %q has an empty ID", res)
	}
	return a, nil
}

func notServiceRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
}

func notTypeRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsRegion reports whether s has the shape of an AWS region name: two
// letters, one or more dash-separated words, and a number, as in us-east-1,
// us-gov-west-1 or ap-southeast-2. It does not check that the region exists.
func IsRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(parts[0]) != 2 || !lower(parts[0]) {
		return false
	}
	for _, p := range parts[1 : len(parts)-1] {
		if p == "" || !lower(p) {
			return false
		}
	}
	n := parts[len(parts)-1]
	if n == "" || len(n) > 2 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

func lower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// partitionOf returns the partition a region belongs to.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	default:
		return "aws"
	}
}

// ec2Types maps the id prefixes ResourceID knows to the EC2 resource type
// their ARNs carry.
var ec2Types = map[string]string{
	"snap-": "snapshot",
	"vol-":  "volume",
	"i-":    "instance",
	"ami-":  "image",
}

const maxIDLen = 64

// ResourceID returns the plain id in s, which is either that id ("snap-0a1b")
// or an ARN naming it (in any shape ParseARN accepts). The id must be prefix
// followed by letters and digits; prefix must be lowercase letters and a
// dash ("snap-", "vol-", "i-"). For the prefixes of EC2 resources it knows
// (snap-, vol-, i-, ami-), an ARN must also be an ec2 ARN of the matching
// resource type.
func ResourceID(s, prefix string) (string, error) {
	if len(prefix) < 2 || prefix[len(prefix)-1] != '-' || !lower(prefix[:len(prefix)-1]) {
		return "", fmt.Errorf("resource id prefix %q is not lowercase letters and a dash, like \"vol-\"", prefix)
	}
	id := s
	if strings.HasPrefix(s, "arn:") {
		a, err := ParseARN(s)
		if err != nil {
			return "", err
		}
		if want, ok := ec2Types[prefix]; ok && (a.Service != "ec2" || a.ResourceType != want) {
			return "", &ARNError{Input: s, Problem: fmt.Sprintf("names a resource of type %q in service %q; want type %q in service ec2", a.ResourceType, a.Service, want)}
		}
		id = a.ResourceID
	}
	if err := checkID(id, prefix); err != nil {
		return "", err
	}
	return id, nil
}

func checkID(id, prefix string) error {
	rest, ok := strings.CutPrefix(id, prefix)
	ok = ok && rest != "" && len(id) <= maxIDLen && strings.IndexFunc(rest, notAlnum) < 0
	if !ok {
		shown := id
		if len(shown) > maxQuoted {
			shown = shown[:maxQuoted] + "…"
		}
		return fmt.Errorf("%q is not a valid %s id (want %q followed by at most %d letters and digits, or an ARN naming one)", shown, prefix, prefix, maxIDLen-len(prefix))
	}
	return nil
}

func notAlnum(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
}

// IDShape selects how FormatEC2ARN, and Encode for the ids inside EBS
// snapshot events, write a resource: the shapes EBS is known to emit.
type IDShape int

const (
	// ShapeRegionInAccount writes arn:aws:ec2::us-east-1:snapshot/snap-…,
	// the shape of AWS's published createSnapshot example.
	ShapeRegionInAccount IDShape = iota
	// ShapeEmptyAccount writes arn:aws:ec2:us-east-1::snapshot/snap-….
	ShapeEmptyAccount
	// ShapeFull writes the standard arn:aws:ec2:us-east-1:123456789012:snapshot/snap-….
	ShapeFull
	// ShapePlainID writes the id alone, snap-….
	ShapePlainID
)

// String names the shape for test names and logs.
func (s IDShape) String() string {
	switch s {
	case ShapeRegionInAccount:
		return "region-in-account"
	case ShapeEmptyAccount:
		return "empty-account"
	case ShapeFull:
		return "full"
	case ShapePlainID:
		return "plain-id"
	}
	return fmt.Sprintf("IDShape(%d)", int(s))
}

// FormatEC2ARN writes an EC2 resource (resourceType "volume", id "vol-…") in
// the given shape, with the partition that region belongs to. account is used
// only by ShapeFull. It does not validate its arguments; Encode does.
func FormatEC2ARN(shape IDShape, region, account, resourceType, id string) string {
	a := ARN{Partition: partitionOf(region), Service: "ec2", ResourceType: resourceType, ResourceID: id}
	switch shape {
	case ShapePlainID:
		return id
	case ShapeRegionInAccount:
		a.Account = region
	case ShapeEmptyAccount:
		a.Region = region
	default:
		a.Region, a.Account = region, account
	}
	return a.String()
}
