package ec2_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/pacing"
)

// failingFaults fails one action with err, count times.
type failingFaults struct {
	action string
	err    error
	count  atomic.Int32
}

func (f *failingFaults) Inject(_ context.Context, service, action string) error {
	if service == "ec2" && action == f.action && f.count.Add(-1) >= 0 {
		return f.err
	}
	return nil
}

func TestFaultInjection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"throttled", awsproto.Throttled("CreateSnapshot"), "RequestLimitExceeded", 503},
		{"server error", awsproto.Internal("injected"), "InternalError", 500},
		{"plain error", errors.New("boom"), "InternalError", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &failingFaults{action: "CreateVolume", err: tc.err}
			f.count.Store(1)
			e := newEnv(t, func(c *ec2.Config) { c.Faults = f })
			_, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1)})
			wantCode(t, err, tc.code)
			var re *smithyhttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != tc.status {
				t.Errorf("HTTP status of %v, want %d", err, tc.status)
			}
			// Only the named call, only as often as asked.
			if _, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1)}); err != nil {
				t.Errorf("second call: %v", err)
			}
		})
	}
}

func TestServerSideThrottling(t *testing.T) {
	e := newEnv(t, func(c *ec2.Config) {
		c.Throttle = map[pacing.Family]pacing.Bucket{pacing.FamilyVolume: {Burst: 2, Refill: 0.001}}
	})
	for range 2 {
		e.createVolume(zoneA, 1)
	}
	_, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1)})
	wantCode(t, err, "RequestLimitExceeded")
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Errorf("throttling answered %v, want HTTP 503", err)
	}
	// Other families are not limited.
	if _, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{}); err != nil {
		t.Errorf("DescribeVolumes: %v", err)
	}
}

// TestRawQuery speaks the Query protocol by hand, as the AWS CLI and older
// SDKs do: GET with the parameters in the URL, and the errors of requests
// no SDK would send.
func TestRawQuery(t *testing.T) {
	e := newEnv(t)
	get := func(params string) (int, string) {
		t.Helper()
		resp, err := http.Get(e.srv.URL + "/?" + params)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get("Action=DescribeAvailabilityZones&Version=2016-11-15&ZoneName.1=us-east-1c")
	if status != 200 || !strings.Contains(body, `<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`) ||
		!strings.Contains(body, "<zoneName>us-east-1c</zoneName>") || strings.Contains(body, "us-east-1a") {
		t.Errorf("GET DescribeAvailabilityZones: %d\n%s", status, body)
	}
	resp, err := http.PostForm(e.srv.URL+"/", url.Values{"Action": {"CreateVolume"}, "Version": {"2016-11-15"}, "AvailabilityZone": {zoneA}, "Size": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "<status>creating</status>") || !strings.Contains(string(b), "<requestId>") {
		t.Errorf("POST CreateVolume: %d\n%s", resp.StatusCode, b)
	}
	for _, tc := range []struct {
		params, code string
	}{
		{"Version=2016-11-15", "MissingAction"},
		{"Action=LaunchRockets&Version=2016-11-15", "InvalidAction"},
		{"Action=DescribeVolumes&Filter.1.Name=status", "InvalidParameterValue"},
		{"Action=DescribeVolumes&MaxResults=many", "InvalidParameterValue"},
	} {
		status, body := get(tc.params)
		if status != 400 || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %d\n%s", tc.params, status, body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	store := &recordingStore{}
	ok := ec2.Config{DataDir: "/tmp/x", Snapshots: store}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*ec2.Config)
		want string
	}{
		{"no dir", func(c *ec2.Config) { c.DataDir = "" }, "DataDir"},
		{"no store", func(c *ec2.Config) { c.Snapshots = nil }, "Snapshots"},
		{"bad region", func(c *ec2.Config) { c.Region = "mars" }, "Region"},
		{"bad zone", func(c *ec2.Config) { c.Zones = []string{"us-west-2a"} }, "zone"},
		{"bad account", func(c *ec2.Config) { c.AccountID = "12" }, "AccountID"},
		{"bad image", func(c *ec2.Config) { c.Catalog = map[string]ec2.Image{"ami-12": {Command: []string{"x"}}} }, "ami-12"},
		{"empty command", func(c *ec2.Config) { c.Catalog = map[string]ec2.Image{testAMI: {}} }, "command is empty"},
		{"bad bucket", func(c *ec2.Config) { c.Throttle = map[pacing.Family]pacing.Bucket{pacing.FamilyVolume: {}} }, "throttle"},
		{"public subnet", func(c *ec2.Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/16") }, "Subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error naming %q", err, tc.want)
			}
			if _, err := ec2.New(c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestLoadCatalog(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"images":{"ami-0123456789abcdef0":{"command":["/bin/app","--flag"],"env":{"K":"V"},"description":"app"}}}`)
	cat, err := ec2.LoadCatalog(good)
	if err != nil {
		t.Fatal(err)
	}
	if im := cat[testAMI]; len(im.Command) != 2 || im.Env["K"] != "V" || im.Description != "app" {
		t.Errorf("loaded %+v", cat)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"not json", `{`, "bad.json"},
		{"no images", `{"images":{}}`, "no images"},
		{"bad id", `{"images":{"ami-zz":{"command":["x"]}}}`, `"ami-zz"`},
		{"no command", `{"images":{"ami-0123456789abcdef0":{"command":[]}}}`, "ami-0123456789abcdef0"},
		{"unknown field", `{"images":{"ami-0123456789abcdef0":{"cmd":["x"]}}}`, "cmd"},
		{"bad env", `{"images":{"ami-0123456789abcdef0":{"command":["x"],"env":{"A=B":"c"}}}}`, "A=B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ec2.LoadCatalog(write("bad.json", tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadCatalog: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if _, err := ec2.LoadCatalog(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing catalog loaded")
	}
}
