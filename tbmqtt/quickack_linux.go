//go:build linux

package tbmqtt

import (
	"net"
	"syscall"
)

// quickAck sets TCP_QUICKACK on c; an error only means delayed ACKs as before.
func quickAck(c *net.TCPConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
