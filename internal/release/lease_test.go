package release

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// TestPublishWaitsOutAnOrphanSweep: a publish meeting the channel's lease
// held by the release controller's orphan sweep waits until it is let go
// (one pass); held by anything else (a publish, a rollout being
// recovered), it is refused at once, naming the holder.
func TestPublishWaitsOutAnOrphanSweep(t *testing.T) {
	for _, tt := range []struct {
		holder   string
		wantWait bool
	}{
		{"release controller on vm pid 7" + sweepMark, true},
		{"publish on vm pid 8 (v4)", false},
		{"release controller on vm pid 7 (recovering a rollout)", false},
	} {
		t.Run(tt.holder, func(t *testing.T) {
			led := memory.New()
			ctx := t.Context()
			held, err := led.AcquireLease(ctx, ledger.ChannelLease("web"), tt.holder, time.Now(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(300 * time.Millisecond)
				_ = led.ReleaseLease(ctx, held)
			}()
			_, done, err := holdLeaseForPublish(ctx, led, clock.Real{}, slog.New(slog.DiscardHandler), "web", "publish on vm pid 9 (v5)", 5*time.Second)
			if tt.wantWait {
				if err != nil {
					t.Fatalf("a publish behind an orphan sweep: %v, want the lease once the sweep let it go", err)
				}
				done()
				return
			}
			var r *RunningError
			if !IsRunning(err) || !errors.As(err, &r) || r.Holder != tt.holder {
				t.Fatalf("a publish behind %q: %v, want it refused naming the holder", tt.holder, err)
			}
		})
	}
}
