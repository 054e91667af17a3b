//go:build linux

package serial

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// tiocgexcl reads whether a tty is in exclusive mode (Linux ≥ 3.8).
const (
	tiocgexcl = 0x80045440
	cbaud     = 0x100f // the termios speed bits, CBAUD|CBAUDEX
)

func ttyState(t *testing.T, path string) (syscall.Termios, bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tio syscall.Termios
	var excl int32
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var e1, e2 syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, e1 = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&tio)))
		_, _, e2 = syscall.Syscall(syscall.SYS_IOCTL, fd, tiocgexcl, uintptr(unsafe.Pointer(&excl)))
	})
	if e1 != 0 || e2 != 0 {
		t.Fatalf("ioctl: %v %v", e1, e2)
	}
	return tio, excl != 0
}

// The line settings of the connector file reach the tty: stop bits and speed
// (through go.bug.st/serial), flow control and exclusivity (through the second
// descriptor).
func TestPortSettingsReachTheTTY(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading the settings of a tty in exclusive mode needs root")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	newFakePort(t, a)
	newFakePort(t, b)
	raw := []byte(`{"devices":[
		{"name":"a","port":"` + a + `","baudrate":19200,"bytesize":7,"parity":"E","stopbits":2,"rtscts":true,"xonxoff":true,"exclusive":false},
		{"name":"b","port":"` + b + `","parity":"O"}]}`)
	c, err := newConnector(&recGateway{}, factoryConfig(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "ports open", 5*time.Second, c.IsConnected)

	ta, exclA := ttyState(t, a)
	// A Linux pty forces CS8 and clears PARENB whatever is set (pty_set_termios), so
	// data bits and parity cannot be observed here; the rest can.
	if ta.Cflag&syscall.CSTOPB == 0 || ta.Cflag&crtscts == 0 || ta.Iflag&(syscall.IXON|syscall.IXOFF) != syscall.IXON|syscall.IXOFF ||
		ta.Cflag&cbaud != syscall.B19200 || exclA {
		t.Errorf("device a: cflag %#x iflag %#x exclusive %v", ta.Cflag, ta.Iflag, exclA)
	}
	tb, exclB := ttyState(t, b)
	if tb.Cflag&syscall.CSTOPB != 0 ||
		tb.Cflag&crtscts != 0 || tb.Iflag&syscall.IXON != 0 || tb.Cflag&cbaud != syscall.B9600 || !exclB {
		t.Errorf("device b: cflag %#x iflag %#x exclusive %v", tb.Cflag, tb.Iflag, exclB)
	}
}
