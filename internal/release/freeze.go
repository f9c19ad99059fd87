package release

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// FSFreeze freezes the filesystem mounted at a directory with fsfreeze(8)
// (util-linux): on AWS the release volume's mount point. Thaw runs even if
// the caller's context has ended: a filesystem left frozen blocks every
// writer on it.
type FSFreeze struct{}

// Freeze implements Freezer.
func (FSFreeze) Freeze(ctx context.Context, dir string) (func() error, error) {
	if out, err := exec.CommandContext(ctx, "fsfreeze", "--freeze", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fsfreeze --freeze %s: %w: %s (is --volume-dir the release volume's mount point, and is this run as root?)", dir, err, strings.TrimSpace(string(out)))
	}
	return func() error {
		if out, err := exec.Command("fsfreeze", "--unfreeze", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("fsfreeze --unfreeze %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
		}
		return nil
	}, nil
}
