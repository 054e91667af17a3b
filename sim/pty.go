package sim

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// OpenPTY opens a pseudo-terminal for a simulated device: the device (slave) end in
// raw mode, so that bytes pass unchanged both ways, and the master as a non-blocking
// file served by Go's poller, so that a blocked read or write holds no OS thread and
// Close ends it. The gateway opens slave.Name() as its serial port; keeping slave open
// keeps what is written before the gateway opens the port.
func OpenPTY() (master, slave *os.File, err error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := makeRaw(int(tty.Fd())); err != nil {
		_ = ptmx.Close()
		_ = tty.Close()
		return nil, nil, fmt.Errorf("raw mode on %s: %w", tty.Name(), err)
	}
	// pty.Open leaves the master in blocking mode, where Close does not end a
	// pending Read. A non-blocking duplicate goes through Go's poller instead.
	fd, err := unix.Dup(int(ptmx.Fd()))
	_ = ptmx.Close()
	if err == nil {
		unix.CloseOnExec(fd)
		if err = unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		_ = tty.Close()
		return nil, nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(fd), "ptmx"), tty, nil
}

// makeRaw is cfmakeraw(3): no echo, no line editing, no CR/LF translation, 8
// bits, so that bytes go through unchanged both ways.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
