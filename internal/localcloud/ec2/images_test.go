package ec2_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

func imageIDs(out *awsec2.DescribeImagesOutput) string {
	var ids []string
	for _, im := range out.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	return strings.Join(ids, ",")
}

func TestDescribeImages(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	out, err := e.client.DescribeImages(c, &awsec2.DescribeImagesInput{})
	if err != nil {
		t.Fatal(err)
	}
	// The default image is there besides the catalog's, sorted by id.
	if got := imageIDs(out); got != ec2.DefaultImageID+","+testAMI {
		t.Fatalf("images %s", got)
	}
	def := out.Images[0]
	if aws.ToString(def.Name) != "handover-localcloud-default" || def.State != types.ImageStateAvailable || aws.ToString(def.OwnerId) != ec2.DefaultAccountID ||
		aws.ToBool(def.Public) || def.Architecture != types.ArchitectureValuesX8664 || def.ImageType != types.ImageTypeValuesMachine ||
		def.RootDeviceType != types.DeviceTypeEbs || def.VirtualizationType != types.VirtualizationTypeHvm || !strings.Contains(aws.ToString(def.Description), "user data") {
		t.Fatalf("default image %+v", def)
	}
	// A catalog image without a name is named by its id.
	if aws.ToString(out.Images[1].Name) != testAMI {
		t.Fatalf("catalog image name %q", aws.ToString(out.Images[1].Name))
	}

	for _, tc := range []struct {
		name string
		in   awsec2.DescribeImagesInput
		want string
	}{
		{"by id", awsec2.DescribeImagesInput{ImageIds: []string{testAMI}}, testAMI},
		{"image-id filter", awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("image-id"), Values: []string{ec2.DefaultImageID}}}}, ec2.DefaultImageID},
		{"name filter with a wildcard", awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"handover-*"}}}}, ec2.DefaultImageID},
		{"own images", awsec2.DescribeImagesInput{Owners: []string{"self"}}, ec2.DefaultImageID + "," + testAMI},
		{"amazon's images", awsec2.DescribeImagesInput{Owners: []string{"amazon"}}, ""},
		{"public images", awsec2.DescribeImagesInput{ExecutableUsers: []string{"all"}}, ""},
		{"state filter", awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"pending"}}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.DescribeImages(c, &tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := imageIDs(out); got != tc.want {
				t.Fatalf("images %q, want %q", got, tc.want)
			}
		})
	}

	var pages []string
	p := awsec2.NewDescribeImagesPaginator(e.client, &awsec2.DescribeImagesInput{MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(c)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, imageIDs(page))
	}
	if strings.Join(pages, "|") != ec2.DefaultImageID+"|"+testAMI {
		t.Fatalf("pages %v", pages)
	}

	_, err = e.client.DescribeImages(c, &awsec2.DescribeImagesInput{ImageIds: []string{"ami-0fffffffffffffff0"}})
	wantCode(t, err, "InvalidAMIID.NotFound")
	_, err = e.client.DescribeImages(c, &awsec2.DescribeImagesInput{ImageIds: []string{"ami-x"}})
	wantCode(t, err, "InvalidAMIID.Malformed")
	_, err = e.client.DescribeImages(c, &awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"blue"}}}})
	wantCode(t, err, "InvalidParameterValue")
	_, err = e.client.DescribeImages(c, &awsec2.DescribeImagesInput{ImageIds: []string{testAMI}, MaxResults: aws.Int32(5)})
	wantCode(t, err, "InvalidParameterCombination")

	// A catalog entry with the default id replaces the default image.
	e.restart(func(cfg *ec2.Config) {
		cfg.Catalog = map[string]ec2.Image{ec2.DefaultImageID: {Command: []string{"/bin/true"}, Name: "mine"}}
	})
	out, err = e.client.DescribeImages(c, &awsec2.DescribeImagesInput{})
	if err != nil || imageIDs(out) != ec2.DefaultImageID || aws.ToString(out.Images[0].Name) != "mine" {
		t.Fatalf("after replacing the default image: %+v, %v", out, err)
	}
}

// TestDefaultImage: with no catalog at all, the default image runs an
// instance's user data as a shell script and keeps the instance up after
// it, like an operating system; without user data the instance idles.
func TestDefaultImage(t *testing.T) {
	e := newEnv(t, func(cfg *ec2.Config) { cfg.Catalog = nil })
	c := ctx(t)
	out := filepath.Join(t.TempDir(), "written-by-user-data")
	script := "#!/bin/sh\necho \"hello from $HANDOVER_INSTANCE_ID\" > " + out + "\n"
	run, err := e.client.RunInstances(c, &awsec2.RunInstancesInput{ImageId: aws.String(ec2.DefaultImageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))})
	if err != nil {
		t.Fatal(err)
	}
	withData := aws.ToString(run.Instances[0].InstanceId)
	idle, err := e.client.RunInstances(c, &awsec2.RunInstancesInput{ImageId: aws.String(ec2.DefaultImageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	without := aws.ToString(idle.Instances[0].InstanceId)

	deadline := time.Now().Add(waitLonger)
	for {
		b, err := os.ReadFile(out)
		if err == nil && string(b) == "hello from "+withData+"\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user data did not write %s: %q, %v", out, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Both keep running: the one whose user data finished, and the idle one.
	time.Sleep(300 * time.Millisecond)
	for _, id := range []string{withData, without} {
		info, err := e.svc.Instance(c, id)
		if err != nil || info.State != "running" || !info.ProcessAlive || info.ImageID != ec2.DefaultImageID {
			t.Fatalf("instance %s: %+v, %v", id, info, err)
		}
	}
}

// TestInProcessLaunchFromAnImage is what a group on a launch configuration
// asks for: an image, an instance type and user data, no template.
func TestInProcessLaunchFromAnImage(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	info, err := e.svc.Launch(c, ec2.LaunchRequest{ImageID: testAMI, InstanceType: "t3.micro", UserData: []byte("#!/bin/sh\nexec sleep 300\n"),
		Zone: zoneB, Tags: map[string]string{"aws:autoscaling:groupName": "db-asg"}})
	if err != nil {
		t.Fatal(err)
	}
	got := e.waitInstance(info.ID, types.InstanceStateNameRunning)
	if aws.ToString(got.ImageId) != testAMI || got.InstanceType != types.InstanceTypeT3Micro || aws.ToString(got.Placement.AvailabilityZone) != zoneB {
		t.Fatalf("instance %+v", got)
	}
	for _, tg := range got.Tags {
		if strings.HasPrefix(aws.ToString(tg.Key), "aws:ec2launchtemplate:") {
			t.Fatalf("an instance from no template has tag %s", aws.ToString(tg.Key))
		}
	}
	ud, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "instances", info.ID, "user-data"))
	if err != nil || string(ud) != "#!/bin/sh\nexec sleep 300\n" {
		t.Fatalf("user data %q, %v", ud, err)
	}
	d, err := e.svc.Launch(c, ec2.LaunchRequest{ImageID: testAMI})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.waitInstance(d.ID, types.InstanceStateNameRunning); got.InstanceType != types.InstanceTypeM1Small {
		t.Fatalf("default instance type %s", got.InstanceType)
	}
	for _, tc := range []struct {
		name string
		req  ec2.LaunchRequest
		code string
	}{
		{"nothing to launch", ec2.LaunchRequest{}, "MissingParameter"},
		{"image and template", ec2.LaunchRequest{ImageID: testAMI, LaunchTemplateName: "db"}, "InvalidParameterCombination"},
		{"unknown image", ec2.LaunchRequest{ImageID: "ami-0fffffffffffffff0"}, "InvalidAMIID.NotFound"},
		{"malformed image", ec2.LaunchRequest{ImageID: "ami-x"}, "InvalidAMIID.Malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Launch(c, tc.req)
			if ae := awsproto.AsError(err); err == nil || ae.Code != tc.code {
				t.Fatalf("Launch: %v, want %s", err, tc.code)
			}
		})
	}
}
