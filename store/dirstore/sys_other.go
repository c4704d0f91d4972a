//go:build !linux

package dirstore

import "os"

func defaultSys() sysOps { return portableSys{} }

// fdatasync is fsync where the system has no fdatasync of its own.
func fdatasync(f *os.File) error { return f.Sync() }
