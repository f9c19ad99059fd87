package ec2_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

func TestPersistenceAcrossRestart(t *testing.T) {
	e := newEnv(t)
	inst := e.runInstance(zoneA, "", "Name", "survivor")
	iid := aws.ToString(inst.InstanceId)
	e.waitInstance(iid, types.InstanceStateNameRunning)
	e.console(iid, "booted", 1)
	stopped := aws.ToString(e.runInstance(zoneA, "").InstanceId)
	e.waitInstance(stopped, types.InstanceStateNameRunning)
	if _, err := e.client.StopInstances(ctx(t), &awsec2.StopInstancesInput{InstanceIds: []string{stopped}}); err != nil {
		t.Fatal(err)
	}
	e.waitInstance(stopped, types.InstanceStateNameStopped)

	vol := aws.ToString(e.createVolume(zoneA, 3, "db", "orders").VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"data": "acknowledged"})
	if _, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(iid), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	snap := e.snapshot(vol, "kind", "done")
	e.waitSnapshotCompleted(snap)
	if _, err := e.client.CreateLaunchTemplate(ctx(t), &awsec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("kept"), LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)},
	}); err != nil {
		t.Fatal(err)
	}
	tokenIn := &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), Size: aws.Int32(1), ClientToken: aws.String("tok")}
	byToken, err := e.client.CreateVolume(ctx(t), tokenIn)
	if err != nil {
		t.Fatal(err)
	}
	// A slow snapshot still pending when the local cloud stops is resumed
	// by the next one.
	e.cfg.MinSnapshotDuration = time.Hour
	e.restart()
	// Let the reboot log its line before the next restart kills it: the
	// count below depends on it.
	e.console(iid, "booted "+iid, 2)
	pending := e.snapshot(vol)
	e.restart(func(c *ec2.Config) { c.MinSnapshotDuration = 0 })

	// Instances: the running one booted again, the stopped one stays so.
	if got := e.waitInstance(iid, types.InstanceStateNameRunning); len(got.Tags) != 1 || len(got.BlockDeviceMappings) != 1 {
		t.Errorf("instance after restart: %+v", got)
	}
	e.console(iid, "booted "+iid, 3)
	e.processAlive(iid, true)
	e.waitInstance(stopped, types.InstanceStateNameStopped)
	e.processAlive(stopped, false)

	// Volumes, attachments, snapshots, tags, templates, client tokens.
	if v := e.volume(vol); v.State != types.VolumeStateInUse || len(v.Tags) != 1 {
		t.Errorf("volume after restart: %+v", v)
	}
	if b, err := os.ReadFile(filepath.Join(e.instanceDir(iid), "volumes", "sdf", "data")); err != nil || string(b) != "acknowledged" {
		t.Errorf("attached volume after restart: %q %v", b, err)
	}
	if sn := e.waitSnapshotCompleted(snap); len(sn.Tags) != 1 {
		t.Errorf("snapshot after restart: %+v", sn)
	}
	e.waitSnapshotCompleted(pending)
	if _, err := e.client.DescribeLaunchTemplates(ctx(t), &awsec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"kept"}}); err != nil {
		t.Errorf("launch template after restart: %v", err)
	}
	again, err := e.client.CreateVolume(ctx(t), tokenIn)
	if err != nil || aws.ToString(again.VolumeId) != aws.ToString(byToken.VolumeId) {
		t.Errorf("client token after restart: %v %v", again, err)
	}

	// The restored state still works: a volume from the resumed snapshot.
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), SnapshotId: aws.String(pending)})
	if err != nil {
		t.Fatal(err)
	}
	e.waitVolumeAvailable(aws.ToString(out.VolumeId))
	if got := tree(t, e.volumeDir(aws.ToString(out.VolumeId))); got["data"] != "acknowledged" {
		t.Errorf("volume from the resumed snapshot: %v", got)
	}
}

func TestRestartFinishesRestores(t *testing.T) {
	e := newEnv(t)
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"x": "y"})
	snap := e.snapshot(vol)
	e.waitSnapshotCompleted(snap)
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String(snap)})
	if err != nil {
		t.Fatal(err)
	}
	// Whether or not the restore finished before the restart, the volume
	// ends available with the snapshot's contents.
	e.restart()
	id := aws.ToString(out.VolumeId)
	e.waitVolumeAvailable(id)
	if got := tree(t, e.volumeDir(id)); got["x"] != "y" {
		t.Errorf("restored after restart: %v", got)
	}
}
