//go:build !linux

package testservers

import "testing"

// MountTmpfs skips t: mounting a small filesystem takes Linux's mount(2).
func MountTmpfs(t testing.TB, _ int64) string {
	t.Helper()
	t.Skip("this test mounts a tmpfs, which needs Linux")
	return ""
}
