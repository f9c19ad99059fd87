package snapstore

import (
	"io/fs"
	"syscall"
	"time"
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
