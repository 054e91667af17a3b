package tbmqtt

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestAckConnReads checks that the buffered socket hands paho exactly the bytes the
// peer sent, read a byte at a time and in blocks, on a real loopback connection.
func TestAckConnReads(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := bytes.Repeat([]byte{0x40, 0x02, 0x00, 0x01}, 3000) // 3,000 PUBACKs
	sent := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		for p := want; len(p) > 0; {
			n := min(len(p), 1000)
			if _, err := c.Write(p[:n]); err != nil {
				sent <- err
				return
			}
			p = p[n:]
		}
		sent <- nil
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newAckConn(raw)
	defer c.Close()
	if n := c.(*ackConn).r.Size(); n != readBuffer {
		t.Fatalf("buffer %d, want %d", n, readBuffer)
	}
	got := make([]byte, 0, len(want))
	one := make([]byte, 1)
	for len(got) < 100 { // paho's way: a byte at a time
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatal(err)
		}
		got = append(got, one[0])
	}
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, differing from the %d sent", len(got), len(want))
	}
}
