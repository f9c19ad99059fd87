package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The real System's reading of blkid: only exit status 2 with no output
// is blank; everything else is a signature or an error.
func TestProbeReadsBlkid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		out    string
		status int
		runErr error
		want   Signature
		errHas string
	}{
		{"ext4", "DEVNAME=/dev/nvme1n1\nUUID=abc\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n", 0, nil,
			Signature{Type: "ext4", Desc: "DEVNAME=/dev/nvme1n1 UUID=abc VERSION=1.0 TYPE=ext4 USAGE=filesystem"}, ""},
		{"partition table", "DEVNAME=/dev/nvme1n1\nPTUUID=1\nPTTYPE=gpt\n", 0, nil, Signature{Desc: "DEVNAME=/dev/nvme1n1 PTUUID=1 PTTYPE=gpt"}, ""},
		{"blank", "", 2, nil, Signature{Blank: true}, ""},
		{"status 2 with output", "TYPE=ext4\n", 2, nil, Signature{}, "exit status 2 with output"},
		{"ambivalent", "blkid: ambivalent result\n", 8, nil, Signature{}, "exit status 8"},
		{"usage", "", 4, nil, Signature{}, "exit status 4"},
		{"not found", "", 0, errors.New(`exec: "blkid": executable file not found in $PATH`), Signature{}, "executable file not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			s := &execSystem{run: func(_ context.Context, name string, a ...string) ([]byte, int, error) {
				args = append([]string{name}, a...)
				return []byte(tc.out), tc.status, tc.runErr
			}}
			got, err := s.Probe(context.Background(), "/dev/nvme1n1")
			if want := []string{"blkid", "-p", "-o", "export", "/dev/nvme1n1"}; !slices.Equal(args, want) {
				t.Errorf("ran %q, want %q", args, want)
			}
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || got.Blank {
					t.Errorf("got %+v, %v; want an error containing %q", got, err, tc.errHas)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFormatAndMountRunTools(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mnt", "state")
	var ran [][]string
	status := 0
	s := &execSystem{run: func(_ context.Context, name string, a ...string) ([]byte, int, error) {
		ran = append(ran, append([]string{name}, a...))
		return []byte("boom"), status, nil
	}}
	if err := s.Format(context.Background(), "/dev/x", "xfs"); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount(context.Background(), "/dev/x", dir, "xfs"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("mount point not created: %v", err)
	}
	want := [][]string{{"mkfs", "-t", "xfs", "/dev/x"}, {"mount", "-t", "xfs", "/dev/x", dir}}
	if !slices.EqualFunc(ran, want, slices.Equal) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	status = 1
	if err := s.Format(context.Background(), "/dev/x", "xfs"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed mkfs: %v", err)
	}
	if err := s.Mount(context.Background(), "/dev/x", dir, "xfs"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed mount: %v", err)
	}
}

const sampleMountinfo = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 259:3 / /var/lib/handover/state rw,relatime shared:30 - ext4 /dev/nvme1n1 rw
41 22 259:4 / /srv/my\040data rw,relatime - xfs /dev/nvme2n1 rw
42 40 259:5 / /var/lib/handover/state rw,relatime - xfs /dev/nvme3n1 rw
`

func TestParseMountinfo(t *testing.T) {
	t.Parallel()
	got, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{"/", "ext4", "/dev/nvme0n1p1"}, {"/proc", "proc", "proc"},
		{"/var/lib/handover/state", "ext4", "/dev/nvme1n1"}, {"/srv/my data", "xfs", "/dev/nvme2n1"},
		{"/var/lib/handover/state", "xfs", "/dev/nvme3n1"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"1 2 3\n", "22 1 259:1 / / rw,relatime shared:1 ext4 /dev/x rw\n", "22 1 259:1 / / rw - ext4\n"} {
		if _, err := parseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestMountedAt(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(sampleMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &execSystem{mountinfo: p}
	for dir, want := range map[string]string{
		"/var/lib/handover/state":  "/dev/nvme3n1", // the topmost of two
		"/var/lib/handover/state/": "/dev/nvme3n1",
		"/srv/my data":             "/dev/nvme2n1",
		"/var/lib/handover":        "",
	} {
		if got, err := s.MountedAt(dir); err != nil || got != want {
			t.Errorf("MountedAt(%q) = %q, %v; want %q", dir, got, err, want)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add(sampleMountinfo)
	f.Add(`1 2 3:4 / /a\ rw - x y z`)
	f.Add(`1 2 3:4 / /a\04 rw - x y z`)
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" || m.Source == "" {
				t.Errorf("parsed %+v with an empty field", m)
			}
		}
	})
}

// A regular file where the device should be (what a write to a missing
// /dev/sdf leaves) is not the volume.
func TestResolveWantsABlockDevice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "sdf")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewSystem()
	if _, err := s.Resolve(file); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("regular file: %v", err)
	}
	if _, err := s.Resolve(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Resolve("/dev/null"); err == nil {
		t.Error("/dev/null (a character device) resolved as a block device")
	}
}

func TestLinkMount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, mount string)
		errHas string
	}{
		{"absent, parent too", func(*testing.T, string) {}, ""},
		{"an old symlink", func(t *testing.T, m string) {
			mustDo(t, os.MkdirAll(filepath.Dir(m), 0o755))
			mustDo(t, os.Symlink("/nowhere", m))
		}, ""},
		{"an empty directory", func(t *testing.T, m string) { mustDo(t, os.MkdirAll(m, 0o755)) }, ""},
		{"a directory with data", func(t *testing.T, m string) {
			mustDo(t, os.MkdirAll(m, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(m, "keep"), []byte("x"), 0o644))
		}, "not empty"},
		{"a file", func(t *testing.T, m string) {
			mustDo(t, os.MkdirAll(filepath.Dir(m), 0o755))
			mustDo(t, os.WriteFile(m, []byte("x"), 0o644))
		}, "not a directory or a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			target := filepath.Join(root, "volumes", "sdf")
			mustDo(t, os.MkdirAll(target, 0o755))
			mount := filepath.Join(root, "var", "state")
			tc.setup(t, mount)
			err := linkMount(mount, target)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got %v, want an error containing %q", err, tc.errHas)
				}
				if _, err := os.Lstat(mount); err != nil {
					t.Errorf("the refused path went: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.Readlink(mount); err != nil || got != target {
				t.Errorf("%s -> %q, %v; want %s", mount, got, err, target)
			}
			if _, err := os.Lstat(mount + ".handover-tmp"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("temporary link left behind: %v", err)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
