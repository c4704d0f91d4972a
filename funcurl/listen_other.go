//go:build !linux

package funcurl

import (
	"net"
	"time"
)

// listensOn returns nil once something listens on addr: where there is no
// /proc, whose socket it is cannot be told.
func listensOn(_ int, addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}
