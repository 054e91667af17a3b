package serial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// ConvertStream is `iotgw convert`: it reads bytes from in, cuts them into frames by
// the framing of one device of the connector file (connectorFile names the file in
// errors, raw is its content), converts every frame with that device's uplink
// converter, and writes one JSON line per frame to out:
//
//	{"deviceName":"D","deviceType":"T","telemetry":[{"ts":N,"values":{...}}],"attributes":{...}}
//
// device is a device name; "" means the first device. At the end of in, an unfinished
// frame is converted too. Only built-in converters are available here.
func ConvertStream(ctx context.Context, connectorFile string, raw []byte, device string, in io.Reader, out io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	conf, err := parseConfig(raw, log)
	if err != nil {
		return fmt.Errorf("%s: %w", connectorFile, err)
	}
	if len(conf.devices) == 0 {
		return fmt.Errorf("%s: devices: no device configured", connectorFile)
	}
	dc := conf.devices[0]
	if device != "" {
		dc = nil
		names := make([]string, 0, len(conf.devices))
		for _, d := range conf.devices {
			names = append(names, d.name)
			if d.name == device {
				dc = d
			}
		}
		if dc == nil {
			return fmt.Errorf("%s: no device %q (devices: %s)", connectorFile, device, strings.Join(names, ", "))
		}
	}
	conv, err := (connector.BuiltinConverters{Logger: log}).Uplink(dc.uplinkClass, dc.raw)
	if err != nil {
		return fmt.Errorf("%s: %s.converter: %w", connectorFile, dc.path, err)
	}
	w := bufio.NewWriter(out)
	var line []byte
	emit := func(frame []byte, readAt time.Time) error {
		var data *connector.ConvertedData
		if u, ok := conv.(*UplinkConverter); ok {
			data = u.ConvertAt(frame, readAt.UnixMilli())
		} else {
			var cerr error
			data, cerr = conv.Convert(append([]byte(nil), frame...))
			if cerr != nil {
				log.Error("cannot convert frame", "error", cerr)
				return nil
			}
		}
		line = AppendConvertedJSON(line[:0], data)
		line = append(line, '\n')
		_, werr := w.Write(line)
		return werr
	}
	fr := newFramer(dc.framing)
	buf := make([]byte, readBlock)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.Read(buf)
		now := time.Now()
		if n > 0 {
			fr.push(buf[:n], now)
		}
		for {
			frame, ok := fr.next(now)
			if !ok {
				break
			}
			if err := emit(frame, now); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		if k := fr.takeDropped(); k > 0 {
			log.Error("frame longer than maxFrameSize dropped", "frames", k, "maxFrameSize", dc.framing.maxSize)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				return fmt.Errorf("read: %w", rerr)
			}
			if frame, ok := fr.flush(); ok {
				if err := emit(frame, now); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			// Each line is flushed at the end; a live pipe gets them in blocks of 4 KiB.
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		}
		if fr.buffered() == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
}

// AppendConvertedJSON appends the JSON line `iotgw convert` prints for converted data:
// {"deviceName","deviceType","telemetry":[{"ts","values"}],"attributes":{}}.
func AppendConvertedJSON(b []byte, d *connector.ConvertedData) []byte {
	b = append(b, `{"deviceName":`...)
	b = connector.AppendJSONString(b, d.DeviceName)
	b = append(b, `,"deviceType":`...)
	b = connector.AppendJSONString(b, d.DeviceType)
	b = append(b, `,"telemetry":[`...)
	first := true
	for _, e := range d.Telemetry {
		if len(e.Values) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"ts":`...)
		b = appendInt(b, e.TS)
		b = append(b, `,"values":`...)
		b = appendDatapoints(b, e.Values)
		b = append(b, '}')
	}
	b = append(b, `],"attributes":`...)
	b = appendDatapoints(b, d.Attributes)
	return append(b, '}')
}

func appendDatapoints(b []byte, dps []connector.Datapoint) []byte {
	b = append(b, '{')
	for i, dp := range dps {
		if i > 0 {
			b = append(b, ',')
		}
		b = connector.AppendJSONString(b, dp.Key)
		b = append(b, ':')
		b = dp.Value.AppendJSON(b)
	}
	return append(b, '}')
}

func appendInt(b []byte, i int64) []byte {
	return connector.Int(i).AppendJSON(b)
}
