//go:build !linux

package tbmqtt

import "net"

// quickAck does nothing where TCP_QUICKACK does not exist.
func quickAck(*net.TCPConn) {}
