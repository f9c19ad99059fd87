package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// System reaches the instance's block devices. The real one is NewSystem;
// tests use a fake.
type System interface {
	// Resolve returns the block device at p, symlinks followed. While
	// nothing is there it returns an error wrapping fs.ErrNotExist. Safe
	// to repeat.
	Resolve(p string) (string, error)
	// Probe reports the signature on dev. Safe to repeat.
	Probe(ctx context.Context, dev string) (Signature, error)
	// Format makes a filesystem of type fsType on dev. Not safe to repeat,
	// nor to call on a device whose Probe was not Blank: it destroys what
	// is there.
	Format(ctx context.Context, dev, fsType string) error
	// Mount mounts dev, a filesystem of type fsType, at dir, creating dir.
	// Repeating it stacks a second mount: check MountedAt first.
	Mount(ctx context.Context, dev, dir, fsType string) error
	// MountedAt returns the source of what is mounted at dir (the topmost
	// mount), or "" when nothing is. Safe to repeat.
	MountedAt(dir string) (string, error)
}

// Signature is what blkid found on a device.
type Signature struct {
	// Blank is true only when blkid found no signature at all.
	Blank bool
	// Type is the filesystem type (blkid's TYPE); empty when the signature
	// is something else, such as a partition table (PTTYPE).
	Type string
	// Desc is blkid's answer, for messages.
	Desc string
}

// runner runs a program and returns its combined output and exit status;
// err is set only when it could not be run or did not exit normally.
type runner func(ctx context.Context, name string, args ...string) (out []byte, status int, err error)

func execRun(ctx context.Context, name string, args ...string) ([]byte, int, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return out, ee.ExitCode(), nil
	}
	return out, 0, err
}

// execSystem is the System of a Linux instance: blkid, mkfs and mount from
// util-linux and e2fsprogs (or xfsprogs), and /proc/self/mountinfo.
type execSystem struct {
	run       runner
	mountinfo string
}

// NewSystem returns the System that execs the instance's blkid, mkfs and
// mount and reads /proc/self/mountinfo. It needs root.
func NewSystem() System { return &execSystem{run: execRun, mountinfo: "/proc/self/mountinfo"} }

func (s *execSystem) Resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	// A regular file at /dev/sdf is what a write to a missing device
	// leaves behind; it is not the volume.
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
		return "", fmt.Errorf("%s (%s) is not a block device", p, real)
	}
	return real, nil
}

// Probe runs blkid in low-level probe mode (-p), which reads the device
// itself rather than blkid's cache. Its exit status 2 means no signature
// was found; any other failure is an error, never "blank".
func (s *execSystem) Probe(ctx context.Context, dev string) (Signature, error) {
	out, status, err := s.run(ctx, "blkid", "-p", "-o", "export", dev)
	if err != nil {
		return Signature{}, fmt.Errorf("probing %s with blkid: %w", dev, err)
	}
	switch status {
	case 0:
		sig := Signature{Desc: strings.Join(strings.Fields(string(out)), " ")}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "TYPE="); ok {
				sig.Type = v
			}
		}
		return sig, nil
	case 2:
		if len(bytes.TrimSpace(out)) != 0 {
			// blkid says nothing when it finds nothing; anything else
			// is not an answer to trust with a mkfs.
			return Signature{}, fmt.Errorf("probing %s with blkid: exit status 2 with output %q", dev, trim(out))
		}
		return Signature{Blank: true}, nil
	default:
		return Signature{}, fmt.Errorf("probing %s with blkid: exit status %d: %s", dev, status, trim(out))
	}
}

func (s *execSystem) Format(ctx context.Context, dev, fsType string) error {
	out, status, err := s.run(ctx, "mkfs", "-t", fsType, dev)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d: %s", status, trim(out))
	}
	if err != nil {
		return fmt.Errorf("formatting %s as %s: %w", dev, fsType, err)
	}
	return nil
}

func (s *execSystem) Mount(ctx context.Context, dev, dir, fsType string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", dir, err)
	}
	out, status, err := s.run(ctx, "mount", "-t", fsType, dev, dir)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d: %s", status, trim(out))
	}
	if err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", dev, fsType, dir, err)
	}
	return nil
}

// MountReadOnly implements ReadOnlyMounter. noload keeps ext4 from
// replaying its journal, which would write to the device.
func (s *execSystem) MountReadOnly(ctx context.Context, dev, dir, fsType string) error {
	opts := "ro"
	if fsType == "ext4" || fsType == "ext3" {
		opts = "ro,noload"
	}
	out, status, err := s.run(ctx, "mount", "-t", fsType, "-o", opts, dev, dir)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d: %s", status, trim(out))
	}
	if err != nil {
		return fmt.Errorf("mounting %s (%s) read-only at %s: %w", dev, fsType, dir, err)
	}
	return nil
}

// Unmount implements Unmounter, lazily: files the old service still has
// open stay readable until it closes them.
func (s *execSystem) Unmount(ctx context.Context, dir string) error {
	out, status, err := s.run(ctx, "umount", "-l", dir)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d: %s", status, trim(out))
	}
	if err != nil {
		return fmt.Errorf("unmounting %s: %w", dir, err)
	}
	return nil
}

func (s *execSystem) MountedAt(dir string) (string, error) {
	f, err := os.Open(s.mountinfo)
	if err != nil {
		return "", fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return "", fmt.Errorf("reading the mount table %s: %w", s.mountinfo, err)
	}
	dir = filepath.Clean(dir)
	src := ""
	for _, m := range mounts { // later lines are mounted on top
		if m.Point == dir {
			src = m.Source
		}
	}
	return src, nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	Point, FSType, Source string
}

// parseMountinfo reads the mount table in the format of proc(5):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The mount point is field 5; after the optional fields and the "-"
// separator come the filesystem type and the source. Paths escape space,
// tab, newline and backslash as octal (\040).
func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("line %d: malformed: %q", n, trim([]byte(sc.Text())))
		}
		out = append(out, mount{Point: unescapeMount(f[4]), FSType: f[sep+1], Source: unescapeMount(f[sep+2])})
	}
	return out, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 and friends).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// trim shortens a tool's output for an error message.
func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
