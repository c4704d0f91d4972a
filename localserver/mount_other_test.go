//go:build !linux

package main

import "testing"

// mountTmpfs skips t: mounting a small filesystem takes Linux's mount(2).
func mountTmpfs(t *testing.T, _ int64) string {
	t.Helper()
	t.Skip("disk-full tests mount a tmpfs, which needs Linux")
	return ""
}
