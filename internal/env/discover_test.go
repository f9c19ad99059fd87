package env

import (
	"errors"
	"testing"

	"github.com/handover-dev/handover/internal/ledger"
)

func TestDiscoverJoinsTheLedger(t *testing.T) {
	x := newRig(t)
	x.cloud.addGroup("staging", "pool", 2, 4, 2, 0)
	x.cloud.groups["pool"].Hooks = []Hook{
		{Name: "handover-launch", Transition: "autoscaling:EC2_INSTANCE_LAUNCHING", Metadata: `{"database":"kv","count":3}`},
		{Name: "other", Transition: "autoscaling:EC2_INSTANCE_LAUNCHING", Metadata: "plain-db"},
		{Name: "handover-terminate", Transition: "autoscaling:EC2_INSTANCE_TERMINATING"},
	}
	x.cloud.addGroup("prod", "prod-pool", 1, 2, 1, 0)
	x.cloud.buckets = []Bucket{{Name: "staging-assets"}}
	for _, d := range []*ledger.Database{
		{ID: "kv-1", Group: "pool", Volume: "vol-1", Zone: "us-east-1a", Instance: "i-1", Epoch: 3},
		{ID: "kv-2", Group: "pool", Volume: "vol-2", Zone: "us-east-1b", Instance: "i-2", Epoch: 1, Claim: "tok-9"},
		{ID: "legacy", Group: "pool", Volume: "vol-9"},
		{ID: "prod-1", Group: "prod-pool", Volume: "vol-p"},
	} {
		must(t, x.led.SaveDatabase(t.Context(), d))
	}
	inv, err := Discover(t.Context(), x.cloud, x.led, ByName("staging"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Groups) != 1 || inv.Groups[0].Name != "pool" {
		t.Fatalf("groups %+v", inv.Groups)
	}
	want := map[string]string{"kv-1": "vol-1", "kv-2": "vol-2", "kv-3": "", "legacy": "vol-9", "plain-db": ""}
	if len(inv.Databases) != len(want) {
		t.Fatalf("databases %+v, want %v", inv.Databases, want)
	}
	for _, d := range inv.Databases {
		if v, ok := want[d.ID]; !ok || v != d.Volume || d.Group != "pool" {
			t.Errorf("database %+v, want volume %q", d, v)
		}
		if d.ID == "kv-2" && (d.Claim != "tok-9" || d.Epoch != 1) {
			t.Errorf("kv-2 lost its claim or epoch: %+v", d)
		}
	}

	_, err = Discover(t.Context(), x.cloud, x.led, ByName("nope"))
	if !errors.Is(err, ErrUnknownEnvironment) {
		t.Errorf("unknown environment: %v", err)
	}
	if _, err := Discover(t.Context(), x.cloud, x.led, ByStack("staging")); !errors.Is(err, ErrUnknownEnvironment) {
		t.Errorf("a stack selector matched handover:environment tags: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"staging", true}, {"prod-2", true}, {"", false}, {"a b", false}, {"x/y", false}, {string(make([]byte, 65)), false}} {
		if err := CheckName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
