package serial

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// datapoint is one configured telemetry or attribute key.
type datapoint struct {
	key      string
	field    field
	strategy *connector.ReportStrategy
}

// plan is a device configuration compiled for the uplink: everything Convert needs,
// with no lookup by key per frame.
type plan struct {
	deviceName, deviceType string
	telemetry              []datapoint
	attributes             []datapoint
}

// compilePlan compiles the datapoints of a device object. Errors name the key path.
func compilePlan(d obj) (*plan, error) {
	name, typ, err := deviceIdentity(d)
	if err != nil {
		return nil, err
	}
	p := &plan{deviceName: name, deviceType: typ}
	deviceStrategy, err := parseReportStrategy(d, "reportStrategy")
	if err != nil {
		return nil, err
	}
	if p.telemetry, err = compileDatapoints(d, deviceStrategy, "timeseries", "telemetry"); err != nil {
		return nil, err
	}
	if p.attributes, err = compileDatapoints(d, deviceStrategy, "attributes"); err != nil {
		return nil, err
	}
	return p, nil
}

func compileDatapoints(d obj, deviceStrategy *connector.ReportStrategy, keys ...string) ([]datapoint, error) {
	entries, err := d.objects(keys...)
	if err != nil {
		return nil, err
	}
	out := make([]datapoint, 0, len(entries))
	for _, e := range entries {
		k, ok, err := e.str("key")
		if err != nil {
			return nil, err
		}
		if !ok || k == "" {
			return nil, e.errf("key", "a non-empty key name", e.m["key"])
		}
		f, err := compileField(e, datapointKeys)
		if err != nil {
			return nil, err
		}
		rs, err := parseReportStrategy(e, "reportStrategy")
		if err != nil {
			return nil, err
		}
		rs = inheritStrategy(rs, deviceStrategy)
		out = append(out, datapoint{key: k, field: f, strategy: rs})
	}
	return out, nil
}

// inheritStrategy gives a datapoint the device's report strategy when it has none,
// and the device's reportPeriod and ttl when it has its own type without them: the
// gateway resolves the levels from the most specific one that sets each field, and
// the device level reaches it only through the datapoints.
func inheritStrategy(dp, device *connector.ReportStrategy) *connector.ReportStrategy {
	if dp == nil || device == nil {
		if dp == nil {
			return device
		}
		return dp
	}
	m := *dp
	if m.ReportPeriod == 0 {
		m.ReportPeriod = device.ReportPeriod
	}
	if m.TTL == 0 {
		m.TTL = device.TTL
	}
	return &m
}

// UplinkConverter is the built-in SerialUplinkConverter: it turns one frame from a
// serial device into telemetry and attributes by the device's "telemetry" and
// "attributes" entries (see docs/serial.md for the rules).
type UplinkConverter struct {
	plan *plan
	log  *slog.Logger
}

// NewUplinkConverter compiles a device's JSON object from the connector file into a
// converter. It is the factory registered as "SerialUplinkConverter".
func NewUplinkConverter(deviceConfig []byte, log *slog.Logger) (connector.UplinkConverter, error) {
	return newUplink(deviceConfig, log)
}

func newUplink(deviceConfig []byte, log *slog.Logger) (*UplinkConverter, error) {
	if log == nil {
		log = slog.Default()
	}
	d, err := decodeObject(deviceConfig, "")
	if err != nil {
		return nil, fmt.Errorf("serial uplink converter: %w", err)
	}
	p, err := compilePlan(d)
	if err != nil {
		return nil, fmt.Errorf("serial uplink converter: %w", err)
	}
	return &UplinkConverter{plan: p, log: log}, nil
}

// Convert converts one frame, timestamped now.
func (c *UplinkConverter) Convert(frame []byte) (*connector.ConvertedData, error) {
	return c.ConvertAt(frame, time.Now().UnixMilli()), nil
}

// ConvertAt converts one frame read at ts (milliseconds since the epoch). Datapoints
// whose delimiter is not in the frame are left out (logged at debug); a value that
// does not parse is logged as an error with the frame in hex and left out, and the
// others still go. The frame is not retained.
func (c *UplinkConverter) ConvertAt(frame []byte, ts int64) *connector.ConvertedData {
	p := c.plan
	// One allocation for the converted data and its telemetry entry, one for every
	// datapoint of the frame: the values and attributes share one backing array.
	res := &struct {
		cd  connector.ConvertedData
		tel [1]connector.TelemetryEntry
	}{}
	res.cd.DeviceName, res.cd.DeviceType = p.deviceName, p.deviceType
	n := len(p.telemetry) + len(p.attributes)
	var all []connector.Datapoint
	if n > 0 {
		all = make([]connector.Datapoint, 0, n)
	}
	all = c.appendValues(all, p.telemetry, frame, "telemetry")
	nt := len(all)
	if nt > 0 {
		res.tel[0] = connector.TelemetryEntry{TS: ts, Values: all[:nt:nt]}
		res.cd.Telemetry = res.tel[:]
	}
	all = c.appendValues(all, p.attributes, frame, "attribute")
	if len(all) > nt {
		res.cd.Attributes = all[nt:]
	}
	return &res.cd
}

func (c *UplinkConverter) appendValues(dst []connector.Datapoint, dps []datapoint, frame []byte, kind string) []connector.Datapoint {
	for i := range dps {
		dp := &dps[i]
		v, err := dp.field.value(frame)
		if err != nil {
			if errors.Is(err, errAbsent) {
				if c.log.Enabled(context.Background(), slog.LevelDebug) {
					c.log.Debug("datapoint not in frame", "device", c.plan.deviceName, kind, dp.key,
						"where", dp.field.describeText, "frame", hex.EncodeToString(frame))
				}
				continue
			}
			c.log.Error("cannot convert datapoint", "device", c.plan.deviceName, kind, dp.key,
				"type", dp.field.typ.String(), "error", err, "frame", hex.EncodeToString(frame))
			continue
		}
		dst = append(dst, connector.Datapoint{Key: dp.key, Value: v, Strategy: dp.strategy})
	}
	return dst
}

// value extracts and parses the field from a frame.
func (f *field) value(frame []byte) (connector.Value, error) {
	b, err := f.extract(frame)
	if err != nil {
		return connector.Value{}, err
	}
	return f.parse(b)
}

// DeviceName returns the device name the converter was made for.
func (c *UplinkConverter) DeviceName() string { return c.plan.deviceName }
