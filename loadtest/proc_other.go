//go:build !linux

package main

import "syscall"

// serverProcAttr returns nil where there is no parent-death signal; the load
// test stops its server itself.
func serverProcAttr() *syscall.SysProcAttr { return nil }

// freeBytes is not measured outside Linux.
func freeBytes(string) (int64, bool) { return 0, false }
