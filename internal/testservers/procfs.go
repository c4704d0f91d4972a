package testservers

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ProcStatus returns the value of a field of /proc/PID/status (Linux), such
// as "PPid" or "VmHWM", as written there.
func ProcStatus(pid int, field string) (string, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// ProcStatusBytes reads a field of /proc/PID/status given in kB, such as
// VmRSS, in bytes.
func ProcStatusBytes(pid int, field string) (int64, error) {
	v, err := ProcStatus(pid, field)
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
	}
	return kb << 10, nil
}

// PeakRSS is a running process's peak resident set size (VmHWM), in bytes.
func PeakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	n, err := ProcStatusBytes(pid, "VmHWM")
	require.NoError(t, err)
	return n
}

// CountFDs is how many file descriptors process pid has open, or -1 when
// that cannot be read.
func CountFDs(pid int) int {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}
