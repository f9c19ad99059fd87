package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

func TestInject(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		rule     Rule
		service  string
		action   string
		wantCode string
	}{
		{"ec2 throttle", Rule{Service: "ec2", Action: "CreateSnapshot", Kind: Throttle}, "ec2", "CreateSnapshot", "RequestLimitExceeded"},
		{"autoscaling throttle", Rule{Service: "autoscaling", Kind: Throttle}, "autoscaling", "CompleteLifecycleAction", "Throttling"},
		{"5xx any action", Rule{Service: "ec2", Action: "*", Kind: Error}, "ec2", "DescribeVolumes", "InternalError"},
		{"other action untouched", Rule{Service: "ec2", Action: "CreateSnapshot", Kind: Error}, "ec2", "CreateVolume", ""},
		{"other service untouched", Rule{Service: "sqs", Kind: Error}, "ec2", "CreateVolume", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := New(1)
			if _, err := in.Add(tc.rule); err != nil {
				t.Fatal(err)
			}
			err := in.Inject(ctx, tc.service, tc.action)
			var ae *awsproto.Error
			switch {
			case tc.wantCode == "" && err != nil:
				t.Errorf("unexpected fault %v", err)
			case tc.wantCode != "" && (!errors.As(err, &ae) || ae.Code != tc.wantCode):
				t.Errorf("got %v, want %s", err, tc.wantCode)
			}
		})
	}
}

func TestCountAndRemove(t *testing.T) {
	ctx := context.Background()
	in := New(1)
	r, err := in.Add(Rule{Service: "ec2", Kind: Error, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	fails := 0
	for range 5 {
		if in.Inject(ctx, "ec2", "X") != nil {
			fails++
		}
	}
	if fails != 2 || in.Rules()[0].Hits != 2 {
		t.Errorf("count 2 hit %d calls", fails)
	}
	if !in.Remove(r.ID) || in.Remove(r.ID) || len(in.Rules()) != 0 {
		t.Error("remove")
	}
}

func TestRate(t *testing.T) {
	in := New(7)
	if _, err := in.Add(Rule{Service: "ec2", Kind: Error, Rate: 0.25}); err != nil {
		t.Fatal(err)
	}
	fails := 0
	for range 4000 {
		if in.Inject(context.Background(), "ec2", "X") != nil {
			fails++
		}
	}
	if fails < 800 || fails > 1200 {
		t.Errorf("rate 0.25 failed %d of 4000", fails)
	}
}

func TestLatency(t *testing.T) {
	in := New(1)
	var slept time.Duration
	in.sleep = func(_ context.Context, d time.Duration) error { slept += d; return nil }
	if _, err := in.Add(Rule{Service: "ec2", Kind: Latency, Delay: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := in.Inject(context.Background(), "ec2", "X"); err != nil || slept != 3*time.Second {
		t.Errorf("latency: %v after %s", err, slept)
	}
}

func TestEvents(t *testing.T) {
	in := New(1)
	for _, r := range []Rule{
		{Service: "events", Action: "EBS Snapshot Notification", Kind: Drop},
		{Service: "events", Kind: Duplicate},
		{Service: "events", Kind: Delay, Delay: time.Second},
	} {
		if _, err := in.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if f := in.Event("EBS Snapshot Notification"); !f.Drop {
		t.Errorf("snapshot events should drop: %+v", f)
	}
	if f := in.Event("EC2 Instance Launch Successful"); f.Drop || !f.Duplicate || f.Delay != time.Second {
		t.Errorf("launch events: %+v", f)
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Rule{
		{Service: "ec2", Kind: "explode"},
		{Service: "ec2", Kind: Latency},
		{Service: "ec2", Kind: Drop},
		{Service: "events", Kind: Throttle},
		{Service: "ec2", Kind: Error, Rate: 2},
	} {
		if _, err := New(1).Add(r); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

func TestSnapshotFaults(t *testing.T) {
	in := New(1)
	if d, err := in.SnapshotFault("snap-1", "vol-1"); d != 0 || err != nil {
		t.Fatalf("no rules: %s %v", d, err)
	}
	if _, err := in.Add(Rule{Service: "ec2", Kind: SlowSnapshot, Delay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Add(Rule{Service: "ec2", Kind: FailSnapshot, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if d, err := in.SnapshotFault("snap-1", "vol-1"); d != time.Minute || err == nil {
		t.Errorf("first snapshot: %s %v", d, err)
	}
	if d, err := in.SnapshotFault("snap-2", "vol-1"); d != time.Minute || err != nil {
		t.Errorf("second snapshot: %s %v", d, err)
	}
	// Snapshot faults never fail an API call.
	if err := in.Inject(context.Background(), "ec2", "CreateSnapshot"); err != nil {
		t.Errorf("Inject: %v", err)
	}
}
