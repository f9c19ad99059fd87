package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// On the local cloud an attached volume is a directory the local cloud
// links into the instance as InstanceDir/volumes/<device basename>; the
// link can lag the attachment EC2 reports, so the agent waits for it.

func (a *run) prepareLocal(ctx context.Context, res *Result) error {
	link := filepath.Join(a.cfg.InstanceDir, "volumes", path.Base(a.cfg.Device))
	err := a.poll(ctx, func() (bool, error) {
		fi, err := os.Stat(link) // through the link: its target must exist too
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("looking for the volume at %s: %w", link, err)
		case !fi.IsDir():
			return false, fmt.Errorf("%s is not a directory", link)
		}
		return true, nil
	})
	if err != nil {
		return a.timeout(err, fmt.Sprintf("volume %s to appear at %s in instance %s", res.VolumeID, link, res.InstanceID),
			"EC2 reports it attached; is $HANDOVER_INSTANCE_DIR this instance's directory in the local cloud's data directory (ec2/instances/"+res.InstanceID+")?")
	}
	res.Device, res.StateDir = link, link
	if a.cfg.Mount == "" {
		return nil
	}
	if err := linkMount(a.cfg.Mount, link); err != nil {
		return fmt.Errorf("making --mount %s point at volume %s: %w", a.cfg.Mount, res.VolumeID, err)
	}
	a.log.Info("state directory linked", "mount", a.cfg.Mount, "target", link)
	res.StateDir = a.cfg.Mount
	return nil
}

// linkMount makes mount a symlink to target: the local cloud's mount. An
// existing symlink or empty directory is replaced; anything else might be
// someone's data and is refused. The link is renamed into place, so mount
// is never missing to a reader.
func linkMount(mount, target string) error {
	fi, err := os.Lstat(mount)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
	case fi.IsDir():
		empty, err := isEmptyDir(mount)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%s is a directory that is not empty; refusing to replace it (move its contents away, or pick another --mount)", mount)
		}
		if err := os.Remove(mount); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s exists and is not a directory or a symlink; refusing to replace it", mount)
	}
	if err := os.MkdirAll(filepath.Dir(mount), 0o755); err != nil {
		return err
	}
	tmp := mount + ".handover-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, mount); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
