//go:build !linux

package testservers

import "syscall"

// DieWithParent returns nil where the parent-death signal does not exist;
// the tests' cleanups stop their servers.
func DieWithParent() *syscall.SysProcAttr { return nil }
