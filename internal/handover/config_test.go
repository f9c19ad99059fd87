package handover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := handover.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*handover.Config)
		want  string
	}{
		{"holder", func(c *handover.Config) { c.Holder = "" }, "holder must not be empty"},
		{"lease TTL", func(c *handover.Config) { c.LeaseTTL = 0 }, "lease TTL must be positive"},
		{"step timeout", func(c *handover.Config) { c.StepTimeout = -time.Second }, "step timeout must be positive, got -1s"},
		{"snapshot timeout", func(c *handover.Config) { c.SnapshotTimeout = 0 }, "snapshot timeout must be positive"},
		{"retry base", func(c *handover.Config) { c.RetryBase = 0 }, "retry base must be positive"},
		{"retry max", func(c *handover.Config) { c.RetryMax = 0 }, "retry max must be positive"},
		{"poll interval", func(c *handover.Config) { c.PollInterval = 0 }, "poll interval must be positive"},
		{"default heartbeat timeout", func(c *handover.Config) { c.DefaultHeartbeatTimeout = 0 }, "default heartbeat timeout must be positive"},
		{"event TTL", func(c *handover.Config) { c.EventTTL = 0 }, "event TTL must be positive"},
		{"max attempts", func(c *handover.Config) { c.MaxAttempts = 0 }, "max attempts must be at least 1, got 0"},
		{"unreachable attempts", func(c *handover.Config) { c.UnreachableAttempts = 0 }, "unreachable attempts must be at least 1, got 0"},
		{"retry max below base", func(c *handover.Config) { c.RetryBase, c.RetryMax = time.Minute, time.Second }, "retry max 1s is below retry base 1m0s"},
		{"device", func(c *handover.Config) { c.Device = "" }, "device must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := handover.DefaultConfig()
			tt.tweak(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error saying %q", err, tt.want)
			}
			if _, err := handover.New(cfg, handover.Deps{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, want it to refuse the config with %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := handover.DefaultConfig()
	cfg.Holder, cfg.Device, cfg.MaxAttempts = "", "", 0
	err := cfg.Validate()
	for _, w := range []string{"holder", "device", "max attempts"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to name %q", err, w)
		}
	}
}

// A first-boot volume without size_gib in the metadata is DefaultSizeGiB
// large; zero or less makes every such first boot fail at CreateVolume
// (and the other unchecked fields misbehave likewise), so Validate must
// refuse them up front.
func TestConfigValidateSizesAndGraces(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*handover.Config)
		want  string
	}{
		{"default size", func(c *handover.Config) { c.DefaultSizeGiB = 0 }, "default size"},
		{"sweep grace", func(c *handover.Config) { c.SweepGrace = -time.Minute }, "sweep grace"},
		{"deadline margin", func(c *handover.Config) { c.DeadlineMargin = -time.Minute }, "deadline margin"},
		{"terminate hold max", func(c *handover.Config) { c.TerminateHoldMax = -time.Minute }, "terminate hold max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := handover.DefaultConfig()
			tt.tweak(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
