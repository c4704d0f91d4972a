package testservers

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// PidFD opens a handle on process pid that becomes readable when it exits,
// or returns -1 if it is already gone. Unlike polling /proc, it cannot
// mistake a new process that reused the PID for the old one.
func PidFD(t testing.TB, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return -1
	}
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// WaitGone waits up to 10 s for the process behind fd (from PidFD) to exit.
func WaitGone(t testing.TB, fd int) {
	t.Helper()
	if fd < 0 {
		return
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int((10 * time.Second).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, 1, n, "the process is still running after 10 s")
		return
	}
}

// FreeBytes returns the space available to an unprivileged writer in the
// filesystem holding path.
func FreeBytes(path string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
