//go:build linux

package serial

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"
	"unsafe"

	"go.bug.st/serial"
)

// crtscts is the termios flag for RTS/CTS hardware flow control (not in package syscall).
const crtscts = 0x80000000

// serialPort is an open device: the go.bug.st/serial port for reading and line
// settings, and a second descriptor of the same tty for what that library does not
// offer: RTS/CTS and XON/XOFF flow control, giving up exclusive access, and writes
// with a deadline (writeTimeout). Both descriptors share the tty's settings.
type serialPort struct {
	port         serial.Port
	aux          *os.File
	writeTimeout time.Duration
}

// openPort opens and configures a device's port.
func openPort(dc *deviceConfig, log *slog.Logger) (*serialPort, error) {
	// The second descriptor is opened first: go.bug.st/serial sets TIOCEXCL, after
	// which no other open of the tty succeeds (except for root). O_NONBLOCK keeps the
	// open from waiting for carrier detect on a port without CLOCAL, and makes the
	// file use the runtime poller, so that write deadlines work.
	aux, err := os.OpenFile(dc.port, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dc.port, err)
	}
	mode := &serial.Mode{BaudRate: dc.baudrate, DataBits: dc.bytesize, Parity: parityOf(dc.parity), StopBits: serial.OneStopBit}
	if dc.stopbits == 2 {
		mode.StopBits = serial.TwoStopBits
	}
	// InitialStatusBits stays nil: setting DTR/RTS during open fails on a pty.
	p, err := serial.Open(dc.port, mode)
	if err != nil {
		aux.Close()
		return nil, fmt.Errorf("open %s: %w", dc.port, err)
	}
	sp := &serialPort{port: p, aux: aux, writeTimeout: dc.writeTimeout}
	if err := sp.setFlowControl(dc.rtscts, dc.xonxoff); err != nil {
		log.Debug("cannot set flow control on the port, continuing without", "port", dc.port, "error", err)
	}
	if !dc.exclusive {
		if err := sp.ioctl(syscall.TIOCNXCL, nil); err != nil {
			log.Debug("cannot release exclusive access to the port", "port", dc.port, "error", err)
		}
	}
	// pyserial raises DTR and RTS on open; a pty has no modem lines, so errors are
	// expected there and harmless.
	if err := p.SetDTR(true); err != nil {
		log.Debug("cannot set DTR on the port", "port", dc.port, "error", err)
	}
	if !dc.rtscts {
		if err := p.SetRTS(true); err != nil {
			log.Debug("cannot set RTS on the port", "port", dc.port, "error", err)
		}
	}
	return sp, nil
}

func parityOf(p byte) serial.Parity {
	switch p {
	case 'E':
		return serial.EvenParity
	case 'O':
		return serial.OddParity
	case 'M':
		return serial.MarkParity
	case 'S':
		return serial.SpaceParity
	}
	return serial.NoParity
}

// ioctl runs an ioctl on the second descriptor without making it blocking (which
// File.Fd would, and then write deadlines stop working).
func (sp *serialPort) ioctl(req uintptr, arg unsafe.Pointer) error {
	rc, err := sp.aux.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

func (sp *serialPort) setFlowControl(rtscts, xonxoff bool) error {
	var t syscall.Termios
	if err := sp.ioctl(syscall.TCGETS, unsafe.Pointer(&t)); err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	if rtscts {
		t.Cflag |= crtscts
	} else {
		t.Cflag &^= crtscts
	}
	if xonxoff {
		t.Iflag |= syscall.IXON | syscall.IXOFF
	} else {
		t.Iflag &^= syscall.IXON | syscall.IXOFF
	}
	if err := sp.ioctl(syscall.TCSETS, unsafe.Pointer(&t)); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}

// Read reads what is available, waiting at most timeout (0: no limit). It returns
// (0, nil) when the timeout passes.
//
// It reads the second, non-blocking descriptor through Go's runtime poller rather
// than go.bug.st/serial's Read, which blocks an OS thread in select(2) per port and
// crashes on a descriptor number of 1024 or more (its FD_SET is fixed-size): a
// gateway with a few hundred ports would die, and one thread per idle port costs
// memory and scheduler time.
func (sp *serialPort) Read(b []byte, timeout time.Duration) (int, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := sp.aux.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := sp.aux.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, nil
	}
	if err == io.EOF {
		// A tty whose other end is gone (unplugged adapter, closed pty) reads EOF
		// or EIO: both mean the port failed.
		return n, fmt.Errorf("read %s: %w", sp.aux.Name(), io.ErrUnexpectedEOF)
	}
	return n, err
}

// Write writes b, within writeTimeout when one is configured.
func (sp *serialPort) Write(b []byte) (int, error) {
	if sp.writeTimeout > 0 {
		if err := sp.aux.SetWriteDeadline(time.Now().Add(sp.writeTimeout)); err != nil {
			return 0, err
		}
	}
	return sp.aux.Write(b)
}

// Close closes both descriptors; a Read in progress returns at once. It is safe to
// call more than once and concurrently with Read.
func (sp *serialPort) Close() error {
	err := sp.port.Close()
	if aerr := sp.aux.Close(); err == nil && aerr != nil && !errors.Is(aerr, os.ErrClosed) {
		err = aerr
	}
	return err
}
