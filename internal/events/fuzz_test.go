package events

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed corpora under testdata/fuzz/<FuzzName>/ are built from the event
// files; f.Add adds those files themselves too, so new event files become
// seeds without regenerating anything.

func addEventSeeds(f *testing.F, add func(b []byte)) {
	for _, name := range eventFiles(f) {
		add(readEvent(f, name))
	}
	sqs, _ := filepath.Glob(filepath.Join("testdata", "sqs", "*"))
	notes, _ := filepath.Glob(filepath.Join("testdata", "notifications", "*.json"))
	for _, p := range append(sqs, notes...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// checkDecoded holds the properties of any Decode outcome.
func checkDecoded(t *testing.T, ev *Event, err error) {
	t.Helper()
	if err != nil {
		if ev != nil {
			t.Fatalf("Decode returned an event with error %v", err)
		}
		if err.Error() == "" || IsIgnored(err) == IsMalformed(err) {
			t.Fatalf("error %v (%T) is not exactly one of ignored or malformed", err, err)
		}
		return
	}
	checkRequired(t, ev)
	checkRoundTrip(t, ev)
}

func FuzzDecode(f *testing.F) {
	addEventSeeds(f, func(b []byte) { f.Add(b) })
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"detail-type":"EBS Volume Notification","source":"aws.ec2","detail":{"event":"createVolume"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		checkDecoded(t, ev, err)
	})
}

func FuzzDecodeSQSBody(f *testing.F) {
	addEventSeeds(f, func(b []byte) {
		f.Add(string(b))
		f.Add(quote(string(b)))
	})
	f.Add(`"`)
	f.Add(`  "{}"  `)
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := DecodeSQSBody(body)
		checkDecoded(t, ev, err)
		if err != nil {
			return
		}
		enc, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{string(enc), quote(string(enc))} {
			got, err := DecodeSQSBody(b)
			if err != nil || !sameEvent(got, ev) {
				t.Fatalf("DecodeSQSBody(%q) = %s, %v; want %s", b, dump(got), err, dump(ev))
			}
		}
	})
}

func FuzzParseARN(f *testing.F) {
	for _, s := range []string{
		"arn:aws:ec2:us-east-1:123456789012:volume/vol-0a1b",
		"arn:aws:ec2::us-west-2:snapshot/snap-01234567",
		"arn:aws:ec2:us-east-1::volume/vol-0a1b",
		"arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-0a1b",
		"arn:aws-us-gov:ec2:us-gov-west-1::snapshot/snap-0a1b",
		"arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:2d7b:autoScalingGroupName/db",
		"arn:aws:kms::us-east-1:key/abc",
		"arn:aws:ec2:us-east-1:us-west-2:snapshot/snap-0a1b",
		"arn:aws:ec2:us-east-1:123456789012:vol-0a1b",
		"arn:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseARN(s)
		if err != nil {
			if a != (ARN{}) || err.Error() == "" {
				t.Fatalf("ParseARN(%q) = %#v, %v", s, a, err)
			}
			return
		}
		if !partitions[a.Partition] || a.Service == "" || a.ResourceType == "" || a.ResourceID == "" {
			t.Fatalf("ParseARN(%q) accepted %#v", s, a)
		}
		if a.Region != "" && !IsRegion(a.Region) || a.Account != "" && !isAccount(a.Account) {
			t.Fatalf("ParseARN(%q) gave region %q account %q", s, a.Region, a.Account)
		}
		out := a.String()
		again, err := ParseARN(out)
		if err != nil || again != a {
			t.Fatalf("ParseARN(%q).String() = %q, which parses to %#v, %v", s, out, again, err)
		}
		// Only the region-in-account quirk is rewritten.
		if out != s {
			quirk := "arn:" + a.Partition + ":" + a.Service + "::" + a.Region + ":"
			if a.Account != "" || !strings.HasPrefix(s, quirk) {
				t.Fatalf("ParseARN(%q).String() = %q", s, out)
			}
		}
	})
}

func FuzzResourceID(f *testing.F) {
	f.Add("snap-0a1b", "snap-")
	f.Add("arn:aws:ec2::us-west-2:snapshot/snap-01234567", "snap-")
	f.Add("arn:aws:ec2:us-east-1::volume/vol-0a1b", "vol-")
	f.Add("arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b", "i-")
	f.Add("arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a1b", "subnet-")
	f.Add("vol-0a1b", "snap-")
	f.Fuzz(func(t *testing.T, s, prefix string) {
		id, err := ResourceID(s, prefix)
		if err != nil {
			if id != "" {
				t.Fatalf("ResourceID(%q, %q) = %q with error %v", s, prefix, id, err)
			}
			return
		}
		if !strings.HasPrefix(id, prefix) || len(id) == len(prefix) || len(id) > maxIDLen {
			t.Fatalf("ResourceID(%q, %q) = %q", s, prefix, id)
		}
		if again, err := ResourceID(id, prefix); err != nil || again != id {
			t.Fatalf("ResourceID(%q, %q) = %q, %v; want the id itself", id, prefix, again, err)
		}
	})
}
