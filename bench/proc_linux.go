package main

import "syscall"

// childAttr makes a started server get SIGKILL if the bench dies without
// stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
