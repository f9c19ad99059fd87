package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// On AWS the attached volume is a block device. On Nitro instances it is an
// NVMe device whose serial is the volume id without its dash, which udev
// links as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…: the one
// name that proves which volume it is. On Xen instances it keeps the
// attachment's device name, or the kernel's xvd spelling of it.

// nvmeByIDPrefix is how udev names EBS NVMe devices by serial.
const nvmeByIDPrefix = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"

// deviceCandidates are the paths the volume may appear at, most certain
// first.
func deviceCandidates(volumeID, device string) []string {
	c := []string{nvmeByIDPrefix + strings.ReplaceAll(volumeID, "-", ""), device}
	if rest, ok := strings.CutPrefix(device, "/dev/sd"); ok {
		c = append(c, "/dev/xvd"+rest)
	} else if rest, ok := strings.CutPrefix(device, "/dev/xvd"); ok {
		c = append(c, "/dev/sd"+rest)
	}
	return c
}

func (a *run) prepareEBS(ctx context.Context, res *Result) error {
	sys := a.d.System
	cands := deviceCandidates(res.VolumeID, a.cfg.Device)
	err := a.poll(ctx, func() (bool, error) {
		var errs []error
		for _, p := range cands {
			dev, err := sys.Resolve(p)
			if err == nil {
				res.Device = dev
				a.log.Info("state volume's device found", "path", p, "device", dev)
				return true, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return false, errors.Join(errs...)
	})
	if err != nil {
		return a.timeout(err, fmt.Sprintf("the device of volume %s (one of %s) on instance %s", res.VolumeID, strings.Join(cands, ", "), res.InstanceID),
			"EC2 reports the volume attached at "+a.cfg.Device+"; look at `ls -l /dev/disk/by-id/ /dev/nvme* /dev/xvd*` and `dmesg`: "+
				"on Nitro instances udev must be running to make the by-id link")
	}

	mount := filepath.Clean(a.cfg.Mount)
	src, err := sys.MountedAt(mount)
	if err != nil {
		return fmt.Errorf("checking what is mounted at %s: %w", mount, err)
	}
	if src != "" {
		if resolved, err := sys.Resolve(src); err == nil {
			src = resolved
		}
		if src != res.Device {
			return fmt.Errorf("%s already has %s mounted, not volume %s (%s): unmount it, or pick another --mount", mount, src, res.VolumeID, res.Device)
		}
		a.log.Info("state volume already mounted", "device", res.Device, "mount", mount)
		res.StateDir = mount
		return nil
	}

	sig, err := sys.Probe(ctx, res.Device)
	if err != nil {
		return fmt.Errorf("looking for a filesystem on volume %s (%s): %w; handover formats only a device blkid reports blank", res.VolumeID, res.Device, err)
	}
	fsType := sig.Type
	switch {
	case sig.Blank:
		a.log.Info("the state volume is blank; formatting it", "device", res.Device, "fs-type", a.cfg.FSType)
		if err := sys.Format(ctx, res.Device, a.cfg.FSType); err != nil {
			return fmt.Errorf("formatting blank volume %s: %w", res.VolumeID, err)
		}
		res.Formatted, fsType = true, a.cfg.FSType
	case fsType == "":
		return fmt.Errorf("volume %s (%s) carries a signature that is not a filesystem (%s); handover never formats a device that carries any signature: "+
			"if its contents are yours to lose, wipe it (wipefs -a) and start again", res.VolumeID, res.Device, sig.Desc)
	case fsType != a.cfg.FSType:
		a.log.Info("the state volume holds a filesystem of another type than --fs-type; mounting it as it is", "fs-type", fsType, "want", a.cfg.FSType)
	}
	if err := sys.Mount(ctx, res.Device, mount, fsType); err != nil {
		return fmt.Errorf("mounting volume %s: %w", res.VolumeID, err)
	}
	a.log.Info("state volume mounted", "device", res.Device, "mount", mount, "fs-type", fsType)
	res.StateDir = mount
	return nil
}
