//go:build !linux

package testservers

import "testing"

// PidFD skips t: watching a process for its exit without mistaking a new
// process that reused its PID takes Linux's pidfd_open.
func PidFD(t testing.TB, _ int) int {
	t.Helper()
	t.Skip("watching a process's exit needs pidfd_open (Linux)")
	return -1
}

// WaitGone does nothing: PidFD has skipped the test.
func WaitGone(testing.TB, int) {}

// FreeBytes is not measured outside Linux.
func FreeBytes(string) (int64, bool) { return 0, false }
