//go:build !linux

package funcurl

import "syscall"

// dieWithParent returns nil where the parent-death signal does not exist;
// Close stops the emulator on a clean shutdown.
func dieWithParent() *syscall.SysProcAttr { return nil }
