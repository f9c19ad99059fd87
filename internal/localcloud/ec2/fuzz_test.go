package ec2

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// FuzzQueryParams feeds arbitrary Query-protocol parameters to every request
// parser: each must answer a value or an *awsproto.Error, never panic, and
// never accept more than its bounds allow.
func FuzzQueryParams(f *testing.F) {
	for _, seed := range []string{
		"Filter.1.Name=tag:db&Filter.1.Value.1=or*rs&Filter.2.Name=status&Filter.2.Value.1=available",
		"VolumeId.1=vol-0123456789abcdef0&MaxResults=5&NextToken=bGMxOnZvbC0x",
		"TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
		"AvailabilityZone=us-east-1a&Size=8&SnapshotId=snap-0123456789abcdef0&ClientToken=t",
		"ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=2&UserData=ZWNobw==&Placement.AvailabilityZone=us-east-1a",
		"LaunchTemplate.LaunchTemplateName=x&LaunchTemplate.Version=$Latest&MinCount=1&MaxCount=1",
		"LaunchTemplateName=abc&LaunchTemplateData.ImageId=ami-12345678&LaunchTemplateData.TagSpecification.1.ResourceType=instance",
		"ResourceId.1=vol-01234567&Tag.1.Key=a&Tag.2.Key=b&Tag.2.Value=",
		"Filter.99999999999999999999.Name=x&Filter.-1.Value.1=y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		v := awsproto.Values{Values: q}
		check := func(err error) {
			if err == nil {
				return
			}
			if _, ok := err.(*awsproto.Error); !ok {
				t.Fatalf("error %T %v is not an *awsproto.Error", err, err)
			}
		}
		fs, err := parseFilters(v)
		check(err)
		if len(fs) > maxListItems {
			t.Fatalf("%d filters accepted", len(fs))
		}
		for _, f := range fs {
			if f.Name == "" || len(f.Values) == 0 {
				t.Fatalf("accepted filter %+v", f)
			}
		}
		_, err = parsePage(v, 5, 1000)
		check(err)
		specs, err := parseTagSpecs(v, "TagSpecification", "volume", "instance")
		check(err)
		for _, s := range specs {
			for _, tg := range s.Tags {
				if checkTag(tg) != nil {
					t.Fatalf("accepted tag %+v", tg)
				}
			}
		}
		for _, p := range []func(awsproto.Values) error{
			func(v awsproto.Values) error { _, err := parseCreateVolume(v); return err },
			func(v awsproto.Values) error {
				_, err := parseDescribe(v, "VolumeId", kindVolume, 5, 500, false)
				return err
			},
			func(v awsproto.Values) error { _, err := parseAttachVolume(v); return err },
			func(v awsproto.Values) error { _, err := parseDetachVolume(v); return err },
			func(v awsproto.Values) error { _, err := parseCreateSnapshot(v); return err },
			func(v awsproto.Values) error { _, err := parseDescribeSnapshots(v); return err },
			func(v awsproto.Values) error { _, err := parseCreateTags(v); return err },
			func(v awsproto.Values) error { _, err := parseDeleteTags(v); return err },
			func(v awsproto.Values) error {
				r, err := parseRunInstances(v)
				if err == nil && (r.MaxCount > maxLaunch || r.MinCount > r.MaxCount || len(r.UserData) > maxUserData) {
					t.Fatalf("accepted %+v", r)
				}
				return err
			},
			func(v awsproto.Values) error { _, err := parseInstanceIDs(v); return err },
			func(v awsproto.Values) error { _, err := parseDescribeZones(v); return err },
			func(v awsproto.Values) error { _, err := parseCreateTemplate(v); return err },
			func(v awsproto.Values) error { _, err := parseCreateTemplateVersion(v); return err },
			func(v awsproto.Values) error { _, err := parseDescribeTemplates(v); return err },
			func(v awsproto.Values) error { _, err := parseDescribeTemplateVersions(v); return err },
		} {
			check(p(v))
		}
	})
}

// FuzzGlob checks the filter wildcard matcher against a regexp built from
// the same pattern.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"a*b?c", "axxbyc"}, {`\*`, "*"}, {"*", ""}, {"**a", "ba"}, {`a\`, `a\`}, {"?", "é"}, {"*x*y*", "zxzyz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(s) || len(pattern) > 64 || len(s) > 256 {
			return
		}
		var re strings.Builder
		re.WriteString(`^(?s:`)
		rs := []rune(pattern)
		for i := 0; i < len(rs); i++ {
			switch rs[i] {
			case '\\':
				if i+1 < len(rs) {
					i++
				}
				re.WriteString(regexp.QuoteMeta(string(rs[i])))
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string(rs[i])))
			}
		}
		re.WriteString(`)$`)
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := globMatch(pattern, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, regexp %s says %v", pattern, s, got, re.String(), want)
		}
	})
}

func TestPaginate(t *testing.T) {
	items := []string{"a", "b", "c", "d", "e"}
	id := func(s string) string { return s }
	var got []string
	p := pageReq{Limit: 2}
	for {
		page, next := paginate(items, id, p)
		got = append(got, page...)
		if next == "" {
			break
		}
		after, err := decodeToken(next)
		if err != nil {
			t.Fatal(err)
		}
		p.After = after
	}
	if strings.Join(got, "") != "abcde" {
		t.Errorf("pages gave %v", got)
	}
	// A token whose item was deleted still resumes after it.
	page, _ := paginate([]string{"a", "c", "d"}, id, pageReq{Limit: 2, After: "b"})
	if strings.Join(page, "") != "cd" {
		t.Errorf("after a deleted item: %v", page)
	}
}
