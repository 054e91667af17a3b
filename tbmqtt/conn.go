package tbmqtt

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
)

// readBuffer is the size of ackConn's read buffer: many PUBACKs (4 bytes each)
// arrive together and are parsed from one read.
const readBuffer = 4096

// ackConn is the socket as paho sees it. Reads are buffered: paho reads a packet a
// few bytes at a time (type, length, body: three syscalls per PUBACK without a
// buffer). And after every read from the socket TCP_QUICKACK is set again (Linux),
// so that the kernel acknowledges the broker's segments at once instead of delaying
// the ACK up to 40 ms: a broker with Nagle's algorithm on (mosquitto's default,
// set_tcp_nodelay false) holds each further PUBACK until that ACK arrives, which
// stalls a publisher bound by its in-flight window for 40 ms per round trip.
type ackConn struct {
	net.Conn
	r *bufio.Reader
}

// newAckConn wraps conn (TCP, or TLS over TCP).
func newAckConn(conn net.Conn) net.Conn {
	tcp, _ := conn.(*net.TCPConn)
	if tc, ok := conn.(*tls.Conn); ok {
		tcp, _ = tc.NetConn().(*net.TCPConn)
	}
	return &ackConn{Conn: conn, r: bufio.NewReaderSize(quickAckReader{r: conn, tcp: tcp}, readBuffer)}
}

func (c *ackConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// quickAckReader reads from the socket and re-arms TCP_QUICKACK (the kernel clears
// it as it goes).
type quickAckReader struct {
	r   io.Reader
	tcp *net.TCPConn // nil: no quick ACKs
}

func (q quickAckReader) Read(b []byte) (int, error) {
	n, err := q.r.Read(b)
	if n > 0 && q.tcp != nil {
		quickAck(q.tcp)
	}
	return n, err
}
