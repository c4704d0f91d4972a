package funcurl

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// listensOn returns nil once process pid holds a listening TCP socket on
// addr's port, as /proc shows it: a port that answers a dial may be
// another process's, one that took it before pid could bind it.
func listensOn(pid int, addr string) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return fmt.Errorf("port of %s: %w", addr, err)
	}
	// Lines of /proc/net/tcp: sl, local_address (hex IP:port), rem_address,
	// st (0A: LISTEN), tx_queue:rx_queue, tr:tm->when, retrnsmt, uid,
	// timeout, inode.
	suffix := fmt.Sprintf(":%04X", port)
	var sockets []string
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			if f := strings.Fields(line); len(f) > 9 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" {
				sockets = append(sockets, "socket:["+f[9]+"]")
			}
		}
	}
	if len(sockets) == 0 {
		return fmt.Errorf("nothing listens on %s", addr)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && slices.Contains(sockets, link) {
			return nil
		}
	}
	return fmt.Errorf("another process than %d listens on %s", pid, addr)
}
