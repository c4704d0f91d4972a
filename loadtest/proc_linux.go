package main

import "syscall"

// serverProcAttr makes the started server get SIGKILL if the load test dies
// without stopping it (a test timeout, say).
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// freeBytes returns the space available to an unprivileged user in the
// filesystem holding path.
func freeBytes(path string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
