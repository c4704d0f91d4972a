package testservers

import "syscall"

// DieWithParent makes a child process get SIGKILL if the test binary dies
// before its cleanups run (a -timeout panic, say), so no server outlives the
// test run.
func DieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
