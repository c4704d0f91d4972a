//go:build unix

package serve

import (
	"fmt"
	"syscall"
)

// raiseOpenFileLimit raises the soft limit on open files to the hard limit
// and returns both. Go does the same at start on some systems; doing it
// here makes it so on every one, and gives the figures to log. When the
// raise fails, the limits returned are the ones in force.
func raiseOpenFileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if uint64(lim.Cur) < uint64(lim.Max) {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return uint64(lim.Cur), uint64(lim.Max), fmt.Errorf("setrlimit: %w", err)
		}
		lim = raised
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
