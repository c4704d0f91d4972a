package dirstore

import (
	"time"

	"golang.org/x/sys/unix"
)

// stampFolder sets the folder's mtime to a value no earlier change left
// and no later one leaves by itself (see foldIndex), and returns the
// folder's stat with it; ok is false when the folder does not hold that
// value to the nanosecond.
func stampFolder(dirfd int) (id folderID, stamp folderStamp, ok bool) {
	_, before, err := statFolder(dirfd)
	if err != nil {
		return id, stamp, false
	}
	// time.Now reads CLOCK_REALTIME without a system call (the vDSO);
	// ClockGettime makes one, for the coarse clock only.
	fine := time.Now().UnixNano()
	var tick unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &tick) != nil {
		return id, stamp, false
	}
	v := max(fine, before.mtime.Nano()+1)
	if v == tick.Nano() {
		v++
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(v)}
	if unix.UtimesNanoAt(dirfd, ".", ts, 0) != nil {
		return id, stamp, false
	}
	id, stamp, err = statFolder(dirfd)
	return id, stamp, err == nil && stamp.mtime.Nano() == v
}
