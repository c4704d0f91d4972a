//go:build !linux

package dirstore

func defaultSys() sysOps { return portableSys{} }
