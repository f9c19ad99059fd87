package events

import (
	"errors"
	"strings"
	"testing"
)

func TestParseARN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ARN
	}{
		{"standard volume", "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b2c3d",
			ARN{Partition: "aws", Service: "ec2", Region: "us-east-1", Account: "123456789012", ResourceType: "volume", ResourceID: "vol-0a1b2c3d"}},
		{"aws-cn partition", "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-0a1b",
			ARN{Partition: "aws-cn", Service: "ec2", Region: "cn-north-1", Account: "123456789012", ResourceType: "instance", ResourceID: "i-0a1b"}},
		{"aws-us-gov partition", "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:snapshot/snap-0a1b",
			ARN{Partition: "aws-us-gov", Service: "ec2", Region: "us-gov-west-1", Account: "123456789012", ResourceType: "snapshot", ResourceID: "snap-0a1b"}},
		{"quirk: empty account", "arn:aws:ec2:us-east-1::volume/vol-0a1b",
			ARN{Partition: "aws", Service: "ec2", Region: "us-east-1", ResourceType: "volume", ResourceID: "vol-0a1b"}},
		{"quirk: region in the account field", "arn:aws:ec2::us-west-2:snapshot/snap-01234567",
			ARN{Partition: "aws", Service: "ec2", Region: "us-west-2", ResourceType: "snapshot", ResourceID: "snap-01234567"}},
		{"quirk: region in the account field, aws-cn", "arn:aws-cn:ec2::cn-northwest-1:snapshot/snap-0a1b",
			ARN{Partition: "aws-cn", Service: "ec2", Region: "cn-northwest-1", ResourceType: "snapshot", ResourceID: "snap-0a1b"}},
		{"global resource with neither region nor account", "arn:aws:ec2:::snapshot/snap-0a1b",
			ARN{Partition: "aws", Service: "ec2", ResourceType: "snapshot", ResourceID: "snap-0a1b"}},
		{"Auto Scaling group, TYPE:ID", "arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:2d7b1e5c:autoScalingGroupName/tenant-42-db",
			ARN{Partition: "aws", Service: "autoscaling", Region: "us-west-2", Account: "123456789012", ResourceType: "autoScalingGroup", ResourceID: "2d7b1e5c:autoScalingGroupName/tenant-42-db", sep: ':'}},
		{"KMS key", "arn:aws:kms:sa-east-1:123456789012:key/5e6f7a8b-9c0d",
			ARN{Partition: "aws", Service: "kms", Region: "sa-east-1", Account: "123456789012", ResourceType: "key", ResourceID: "5e6f7a8b-9c0d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseARN(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
			again, err := ParseARN(got.String())
			if err != nil || again != got {
				t.Fatalf("String() = %q does not parse back: %#v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseARNRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `does not start with "arn:"`},
		{"plain id", "vol-0a1b", `does not start with "arn:"`},
		{"wrong prefix", "urn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b", `does not start with "arn:"`},
		{"upper-case prefix", "ARN:aws:ec2:us-east-1:123456789012:volume/vol-0a1b", `does not start with "arn:"`},
		{"too few fields", "arn:aws:ec2:us-east-1:volume/vol-0a1b", "has 5 colon-separated fields, want 6"},
		{"just arn:", "arn:", "has 2 colon-separated fields"},
		{"bad partition", "arn:aws-mars:ec2:us-east-1:123456789012:volume/vol-0a1b", `partition "aws-mars"`},
		{"empty partition", "arn::ec2:us-east-1:123456789012:volume/vol-0a1b", `partition ""`},
		{"empty service", "arn:aws::us-east-1:123456789012:volume/vol-0a1b", `service ""`},
		{"upper-case service", "arn:aws:EC2:us-east-1:123456789012:volume/vol-0a1b", `service "EC2"`},
		{"bad region", "arn:aws:ec2:useast1:123456789012:volume/vol-0a1b", `region "useast1"`},
		{"region of another partition", "arn:aws:ec2:cn-north-1:123456789012:volume/vol-0a1b", `region "cn-north-1" is in partition aws-cn, not aws`},
		{"short account", "arn:aws:ec2:us-east-1:12345:volume/vol-0a1b", `account "12345" is not 12 digits`},
		{"hex account", "arn:aws:ec2:us-east-1:0123456789ab:volume/vol-0a1b", `account "0123456789ab"`},
		{"account 'aws'", "arn:aws:ec2:us-east-1:aws:volume/vol-0a1b", `account "aws"`},
		{"region in account and in region", "arn:aws:ec2:us-east-1:us-west-2:snapshot/snap-0a1b", `account field holds region "us-west-2" while the region field already holds "us-east-1"`},
		{"region in account outside ec2", "arn:aws:kms::us-east-1:key/abc", "a quirk accepted only for service ec2"},
		{"resource without type", "arn:aws:ec2:us-east-1:123456789012:vol-0a1b", `resource "vol-0a1b" has no TYPE/ID`},
		{"resource with empty type", "arn:aws:ec2:us-east-1:123456789012:/vol-0a1b", `resource type ""`},
		{"resource with empty id", "arn:aws:ec2:us-east-1:123456789012:volume/", `resource "volume/" has an empty ID`},
		{"resource empty", "arn:aws:ec2:us-east-1:123456789012:", `resource "" has no TYPE/ID`},
		{"resource type with a dot", "arn:aws:ec2:us-east-1:123456789012:vol.ume/vol-0a1b", `resource type "vol.ume"`},
		{"space inside", "arn:aws:ec2:us-east-1:123456789012:volume/vol 0a1b", "space or control character at byte 45"},
		{"trailing newline", "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b\n", "space or control character"},
		{"invalid UTF-8", "arn:aws:ec2:us-east-1:123456789012:volume/vol-\xff", "not valid UTF-8"},
		{"too long", "arn:aws:ec2:us-east-1:123456789012:volume/" + strings.Repeat("a", 2048), "more than the 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseARN(tt.in)
			if err == nil {
				t.Fatalf("ParseARN accepted it: %#v", got)
			}
			var ae *ARNError
			if !errors.As(err, &ae) || ae.Input != tt.in {
				t.Fatalf("error %v (%T) is not an ARNError for the input", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "want arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE/ID") {
				t.Fatalf("error %q does not contain %q and the expected shape", err, tt.want)
			}
		})
	}
}

func TestResourceID(t *testing.T) {
	tests := []struct {
		name, in, prefix string
		want             string // "" means an error containing wantErr
		wantErr          string
	}{
		{"plain snapshot id", "snap-0a1b", "snap-", "snap-0a1b", ""},
		{"legacy short id", "vol-01234567", "vol-", "vol-01234567", ""},
		{"standard ARN", "arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b", "vol-", "vol-0a1b", ""},
		{"region-in-account ARN", "arn:aws:ec2::us-west-2:snapshot/snap-0a1b", "snap-", "snap-0a1b", ""},
		{"empty-account ARN", "arn:aws:ec2:us-east-1::volume/vol-0a1b", "vol-", "vol-0a1b", ""},
		{"instance ARN", "arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b", "i-", "i-0a1b", ""},
		{"unknown prefix, any service", "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a1b", "subnet-", "subnet-0a1b", ""},
		{"empty", "", "snap-", "", `"" is not a valid snap- id`},
		{"wrong prefix", "vol-0a1b", "snap-", "", `"vol-0a1b" is not a valid snap- id`},
		{"prefix alone", "snap-", "snap-", "", "not a valid snap- id"},
		{"punctuation after prefix", "snap-0a1b/2", "snap-", "", "not a valid snap- id"},
		{"too long", "snap-" + strings.Repeat("0", 60), "snap-", "", "at most 59 letters and digits"},
		{"ARN of the wrong type", "arn:aws:ec2:us-east-1::volume/vol-0a1b", "snap-", "", `type "volume" in service "ec2"; want type "snapshot"`},
		{"ARN of the wrong service", "arn:aws:ebs:us-east-1::snapshot/snap-0a1b", "snap-", "", `in service "ebs"`},
		{"ARN with a bad id", "arn:aws:ec2:us-east-1::volume/vol-0a1b:x", "vol-", "", `"vol-0a1b:x" is not a valid vol- id`},
		{"bad ARN", "arn:aws:ec2:us-east-1:42:volume/vol-0a1b", "vol-", "", `account "42"`},
		{"bad prefix argument", "snap-0a1b", "snap", "", `prefix "snap"`},
		{"empty prefix argument", "snap-0a1b", "", "", `prefix ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResourceID(tt.in, tt.prefix)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("ResourceID = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ResourceID = %q, %v; want error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestFormatEC2ARN(t *testing.T) {
	tests := []struct {
		shape  IDShape
		region string
		want   string
	}{
		{ShapeRegionInAccount, "us-east-1", "arn:aws:ec2::us-east-1:snapshot/snap-0a1b"},
		{ShapeEmptyAccount, "us-east-1", "arn:aws:ec2:us-east-1::snapshot/snap-0a1b"},
		{ShapeFull, "us-east-1", "arn:aws:ec2:us-east-1:123456789012:snapshot/snap-0a1b"},
		{ShapeFull, "cn-north-1", "arn:aws-cn:ec2:cn-north-1:123456789012:snapshot/snap-0a1b"},
		{ShapeEmptyAccount, "us-gov-east-1", "arn:aws-us-gov:ec2:us-gov-east-1::snapshot/snap-0a1b"},
		{ShapePlainID, "us-east-1", "snap-0a1b"},
	}
	for _, tt := range tests {
		t.Run(tt.shape.String()+"/"+tt.region, func(t *testing.T) {
			got := FormatEC2ARN(tt.shape, tt.region, "123456789012", "snapshot", "snap-0a1b")
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if id, err := ResourceID(got, "snap-"); err != nil || id != "snap-0a1b" {
				t.Fatalf("ResourceID(%q) = %q, %v", got, id, err)
			}
		})
	}
}

func TestIsRegion(t *testing.T) {
	for _, r := range []string{"us-east-1", "us-gov-west-1", "ap-southeast-2", "cn-northwest-1", "eu-central-2", "il-central-1", "us-isob-east-1"} {
		if !IsRegion(r) {
			t.Errorf("IsRegion(%q) = false", r)
		}
	}
	for _, r := range []string{"", "us", "us-east", "us-east-", "useast1", "US-EAST-1", "us-east-100", "u-east-1", "us--1", "123456789012", "us-east-1a"} {
		if IsRegion(r) {
			t.Errorf("IsRegion(%q) = true", r)
		}
	}
}
