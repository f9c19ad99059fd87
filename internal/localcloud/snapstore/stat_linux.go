package snapstore

import (
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// statExtra returns the change time and inode number, which fs.FileInfo
// does not expose portably.
func statExtra(fi fs.FileInfo) (ctime time.Time, inode uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, 0
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UTC(), st.Ino
}

// startWriteback asks the kernel to start writing f's dirty pages now, so a
// later fsync finds less left to wait for. Advisory: errors are ignored.
func startWriteback(f *os.File) {
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
