//go:build !linux

package serial

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.bug.st/serial"
)

// serialPort is an open device. Outside Linux only what go.bug.st/serial offers is
// supported: no flow control, no write timeout.
type serialPort struct {
	port serial.Port
}

func openPort(dc *deviceConfig, log *slog.Logger) (*serialPort, error) {
	if dc.rtscts || dc.xonxoff {
		return nil, errors.New("rtscts and xonxoff are supported on Linux only")
	}
	mode := &serial.Mode{BaudRate: dc.baudrate, DataBits: dc.bytesize, StopBits: serial.OneStopBit}
	switch dc.parity {
	case 'E':
		mode.Parity = serial.EvenParity
	case 'O':
		mode.Parity = serial.OddParity
	case 'M':
		mode.Parity = serial.MarkParity
	case 'S':
		mode.Parity = serial.SpaceParity
	}
	if dc.stopbits == 2 {
		mode.StopBits = serial.TwoStopBits
	}
	p, err := serial.Open(dc.port, mode)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dc.port, err)
	}
	if err := p.SetDTR(true); err != nil {
		log.Debug("cannot set DTR on the port", "port", dc.port, "error", err)
	}
	return &serialPort{port: p}, nil
}

func (sp *serialPort) Read(b []byte, timeout time.Duration) (int, error) {
	t := serial.NoTimeout
	if timeout > 0 {
		t = timeout
	}
	if err := sp.port.SetReadTimeout(t); err != nil {
		return 0, err
	}
	return sp.port.Read(b)
}

func (sp *serialPort) Write(b []byte) (int, error) { return sp.port.Write(b) }

func (sp *serialPort) Close() error { return sp.port.Close() }
